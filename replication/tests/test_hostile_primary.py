"""A primary is another deployment: what its manifest says is checked before the replica runs any of it.
Here the manifest is written by the test, as a compromised primary would write it, and handed to the step
that builds the replica's next database file."""
from __future__ import annotations

import duckdb
import pytest

from catalog import accountdata
from replication import refresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def replica(settings, tmp_path):
    settings.DUCKDB_DIR, settings.DATA_DIR = tmp_path / "duckdb", tmp_path
    (tmp_path / "secret-key.txt").write_text("the-secret")
    return accountdata.create_database("MIRROR")


def build(database, views):
    manifest = {"schemas": ["PUBLIC"], "tables": [], "views": views}
    outcome = refresh.Outcome("MIRROR", "STUDIO_ORG.ACCT2.SALES")
    path = refresh._build_file(database, manifest, {}, outcome)
    con = duckdb.connect(str(path), read_only=True)
    try:
        made = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    finally:
        con.close()
        path.unlink()
    return made, outcome.notes


def view(name, sql):
    return {"schema": "PUBLIC", "name": name, "sql": sql}


def test_a_view_that_reads_a_file_of_this_server_is_not_replicated(replica, tmp_path):
    made, notes = build(replica, [view("LEAK", f"CREATE VIEW PUBLIC.LEAK AS SELECT * FROM read_csv('{tmp_path}/secret-key.txt')")])
    assert made == set()
    assert "View PUBLIC.LEAK was not replicated" in notes[0] and "the-secret" not in notes[0]


@pytest.mark.parametrize("sql, why", [
    ("CREATE VIEW PUBLIC.V AS SELECT 1 AS a; ATTACH '/tmp/x.duckdb' AS x", "not a single CREATE VIEW"),
    ("CREATE TABLE PUBLIC.V AS SELECT 1 AS a", "not a single CREATE VIEW"),
    ("CREATE VIEW PUBLIC.OTHER AS SELECT 1 AS a", "creates another object"),
    ("CREATE VIEW other_db.PUBLIC.V AS SELECT 1 AS a", "creates another object"),
    ("INSTALL httpfs", "not a single CREATE VIEW"),
])
def test_only_the_one_create_view_it_claims_to_be_runs(replica, sql, why):
    made, notes = build(replica, [view("V", sql)])
    assert made == set() and why in notes[0]


def test_an_honest_view_is_replicated(replica):
    made, notes = build(replica, [view("V", "CREATE VIEW PUBLIC.V AS SELECT 1 AS a")])
    assert made == {"V"} and notes == []


@pytest.mark.parametrize("manifest, why", [
    ({"database": "SALES", "schemas": "PUBLIC"}, "its schemas are not a list of names"),
    ({"database": "SALES", "schemas": ["INFORMATION_SCHEMA"]}, "schema INFORMATION_SCHEMA is reserved"),
    ({"database": "SALES", "schemas": ["PUBLIC"], "models": [{"schema": "ELSEWHERE", "name": "M"}]},
     "one of its models is not in a schema it lists"),
    ({"database": "SALES", "schemas": ["PUBLIC"], "tables": [{"schema": "PUBLIC", "name": "T"}] * 2},
     "table PUBLIC.T is listed twice"),
])
def test_a_manifest_that_does_not_hold_together_is_refused_before_anything_is_copied(manifest, why):
    from organization.models import Account

    primary = Account(organization="STUDIO_ORG", name="ACCT2", url="http://127.0.0.1:1/", key="k" * 32)
    with pytest.raises(refresh.UserError, match=f"cannot use \\({why}\\); nothing was copied"):
        refresh._check_manifest(primary, manifest)
