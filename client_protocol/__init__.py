"""Snowflake's own client protocol (the one snowflake-connector-python, Snowpark and snowflake-ml speak):
sign-in, session tokens, query requests and their results, over the same executor, sessions and privileges
as the SQL API."""
