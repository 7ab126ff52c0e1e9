"""The database and schema a client names at sign-in: Snowflake signs it in even when they do not exist or
the role may not use them, with none current, which dbt relies on to connect to the schema it is about to
create. Tried as the security review's role LOW (tests/support/security.py): PUB it may use, ACC not."""
from __future__ import annotations

from client_protocol import sessions


def signed_in(**names) -> tuple[str | None, str | None]:
    opened = sessions.sign_in("low", "low-password", address="127.0.0.1", **names)
    assert (opened.record.database or None, opened.record.schema or None) == (opened.session.database,
                                                                              opened.session.schema)
    return opened.session.database, opened.session.schema


def test_names_the_role_may_use_become_current(low_account):
    assert signed_in(database="pub", schema="s") == ("PUB", "S")
    assert signed_in(database="pub") == ("PUB", "PUBLIC")


def test_a_schema_not_yet_created_leaves_the_database_current_and_no_schema(low_account):
    assert signed_in(database="pub", schema="analytics") == ("PUB", None)


def test_a_database_missing_or_not_authorized_signs_in_with_none_and_reads_alike(low_account):
    assert signed_in(database="nope", schema="s") == (None, None)
    assert signed_in(database="acc", schema="s") == (None, None)
    assert signed_in(database="acc") == (None, None)
