import hashlib

import duckdb
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from access.bootstrap import bootstrap
from access.tokens import create_token
from catalog import accountdata
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

CSV = b"prompt,completion\nWhere is my parcel?,SHIPPING\nI was charged twice,BILLING\n"


@pytest.fixture
def account(db, tmp_path, settings):
    settings.STAGE_DIR = tmp_path / "stages"
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    accountdata.create_database("UPDB")
    con = duckdb.connect(str(accountdata.database_file("UPDB")))
    con.execute('CREATE TABLE "PUBLIC"."EXAMPLES" ("PROMPT" VARCHAR, "COMPLETION" VARCHAR)')
    con.close()
    admin = get_user_model().objects.get(username="admin")
    _token, secret = create_token(admin, "uploads")
    return {"admin": admin, "auth": {"HTTP_AUTHORIZATION": f"Bearer {secret}"}}


def sql(text):
    return Executor(admin_session(database="UPDB", schema="PUBLIC")).execute(text)[-1]


def test_a_raw_body_upload_with_a_token_lands_in_the_user_stage(account, client):
    response = client.post("/api/v2/stages/~/files?name=batch1/examples.csv", data=CSV,
                           content_type="text/csv", **account["auth"])
    assert response.status_code == 201
    assert response.json() == {"stage": "@~", "name": "batch1/examples.csv", "size": len(CSV),
                               "md5": hashlib.md5(CSV).hexdigest()}
    assert sql("LIST @~").rows[0][:3] == ("batch1/examples.csv", len(CSV), hashlib.md5(CSV).hexdigest())


def test_a_multipart_upload_into_a_named_stage_can_be_copied_into_a_table(account, client, tmp_path):
    sql("CREATE STAGE uploads")
    source = tmp_path / "tickets.csv"
    source.write_bytes(CSV)
    with open(source, "rb") as handle:
        response = client.post("/api/v2/stages/UPDB.PUBLIC.UPLOADS/files", {"file": handle}, **account["auth"])
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "uploads/tickets.csv"
    result = sql("COPY INTO examples FROM @uploads FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1)")
    assert result.rows[0][:4] == ("uploads/tickets.csv", "LOADED", 2, 2)
    assert sql("SELECT completion FROM examples ORDER BY 1").rows == [("BILLING",), ("SHIPPING",)]


def test_a_stage_whose_quoted_name_holds_a_slash_takes_uploads_with_the_slash_escaped(account, client):
    sql('CREATE STAGE "raw/2024 ~q"')
    sql("CREATE STAGE raw")  # what a slash read as a path separator would reach instead
    url = "/api/v2/stages/UPDB.PUBLIC.%22raw~2F2024%20~7Eq%22/files?name=examples.csv"
    response = client.post(url, data=CSV, content_type="text/csv", **account["auth"])
    assert response.status_code == 201, response.content
    assert response.json()["stage"] == '@UPDB.PUBLIC."raw/2024 ~q"'
    assert [r[0] for r in sql('LIST @"raw/2024 ~q"').rows] == ["raw/2024 ~q/examples.csv"]
    assert sql("LIST @raw").rows == []
    # A ~ that starts no escape names no stage.
    assert client.post("/api/v2/stages/UPDB.PUBLIC.RAW~/files?name=x.csv", data=CSV, content_type="text/csv",
                       **account["auth"]).status_code == 404


def test_an_unauthenticated_upload_gets_401_and_stores_nothing(account, client):
    response = client.post("/api/v2/stages/~/files?name=x.csv", data=CSV, content_type="text/csv")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required: send Authorization: Bearer <token> or log in."}
    bad = client.post("/api/v2/stages/~/files?name=x.csv", data=CSV, content_type="text/csv",
                      HTTP_AUTHORIZATION="Bearer sft_not-a-token")
    assert bad.status_code == 401
    assert sql("LIST @~").rows == []


def test_an_existing_file_is_kept_unless_overwrite(account, client):
    url = "/api/v2/stages/~/files?name=x.csv"
    assert client.post(url, data=CSV, content_type="text/csv", **account["auth"]).status_code == 201
    again = client.post(url, data=b"new", content_type="text/csv", **account["auth"])
    assert again.status_code == 409
    assert again.json()["error"] == ("File 'x.csv' already exists in stage @~; add ?overwrite=true to replace it.")
    assert client.post(url + "&overwrite=true", data=b"new", content_type="text/csv",
                       **account["auth"]).json()["size"] == 3


def test_an_unknown_stage_is_404_and_a_path_outside_the_stage_is_400(account, client):
    missing = client.post("/api/v2/stages/UPDB.PUBLIC.NOPE/files?name=x.csv", data=CSV, content_type="text/csv",
                          **account["auth"])
    assert missing.status_code == 404
    assert "Stage 'UPDB.PUBLIC.NOPE' does not exist or not authorized." in missing.json()["error"]
    escape = client.post("/api/v2/stages/~/files?name=../../x.csv", data=CSV, content_type="text/csv",
                         **account["auth"])
    assert escape.status_code == 400
    assert sql("LIST @~").rows == []


def test_a_table_stage_is_named_with_a_url_encoded_percent(account, client):
    response = client.post("/api/v2/stages/UPDB.PUBLIC.%25EXAMPLES/files?name=t.csv", data=CSV,
                           content_type="text/csv", **account["auth"])
    assert response.status_code == 201, response.content
    assert [r[0] for r in sql("LIST @%examples").rows] == ["t.csv"]


def test_a_browser_session_needs_the_csrf_token(account):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(account["admin"])
    refused = browser.post("/api/v2/stages/~/files?name=x.csv", data=CSV, content_type="text/csv")
    assert refused.status_code == 403
    token = "k" * 32  # any 32-character token works when the cookie and the header agree
    browser.cookies["csrftoken"] = token
    accepted = browser.post("/api/v2/stages/~/files?name=x.csv", data=CSV, content_type="text/csv",
                            HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content
    assert sql("LIST @~").rows[0][0] == "x.csv"
