"""HTTP plumbing every web entry point shares (the Studio's pages, the SQL API, the stage API, the inference
APIs): request bodies, streamed responses, the URL converter for Snowflake names. No domain logic."""
