"""The Data page: the databases → schemas → tables tree with row counts, a table's preview, and uploading
CSV / JSON lines / Parquet files into a new or an existing table with the per-row error report; a role
without the privileges gets the service's refusal."""
import json

import duckdb
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from access.bootstrap import bootstrap
from catalog.models import SchemaObject
from tests.support.cortex import admin_session, make_table, sql_value

URL = "/data/"
UPLOAD = "/data/upload"
PASSWORD = "pw-for-tests"


@pytest.fixture
def account(db, tmp_path, settings):
    # DuckDB files and staged files outlive the test's database rollback.
    settings.DUCKDB_DIR, settings.STAGE_DIR = tmp_path / "duckdb", tmp_path / "stages"
    bootstrap(password=PASSWORD, demo=False)
    make_table(tmp_path, "DATADB", "EXAMPLES", [{"prompt": f"question {i}", "completion": f"answer {i}"}
                                                for i in range(25)])
    sql_value(admin_session(), "CREATE TABLE datadb.public.scores (name VARCHAR, score NUMBER)")


@pytest.fixture
def admin(account) -> Client:
    client = Client()
    client.login(username="admin", password=PASSWORD)
    return client


@pytest.fixture
def reader(account) -> Client:
    """rita, whose role may use DATADB.PUBLIC and read its tables, but neither create tables nor insert."""
    for statement in ("CREATE ROLE reader", "GRANT USAGE ON DATABASE datadb TO ROLE reader",
                      "GRANT USAGE ON SCHEMA datadb.public TO ROLE reader",
                      "GRANT SELECT ON TABLE datadb.public.scores TO ROLE reader",
                      f"CREATE USER rita PASSWORD = '{PASSWORD}' DEFAULT_ROLE = reader",
                      "GRANT ROLE reader TO USER rita"):
        sql_value(admin_session(), statement)
    client = Client()
    client.login(username="rita", password=PASSWORD)
    return client


def upload(client, name: str, content: bytes, htmx: bool = False, **fields):
    data = {"mode": "new", "schema": "DATADB.PUBLIC", "new_table": "", "existing": "", **fields}
    if content is not None:
        data["file"] = SimpleUploadedFile(name, content)
    return client.post(UPLOAD, data, headers={"HX-Request": "true"} if htmx else {})


def rows(sql: str) -> list:
    from sqlengine.executor import Executor

    return Executor(admin_session()).execute(sql)[-1].rows


def user_stage_files() -> list:
    from django.conf import settings

    root = settings.STAGE_DIR / "user"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# -- browsing --------------------------------------------------------------------------------------

def test_the_data_page_requires_login(client, db):
    assert client.get(URL)["Location"].startswith("/accounts/login/")


def test_it_lists_databases_schemas_and_tables_with_row_counts_and_preview_links(admin):
    page = admin.get(URL).content.decode()
    assert "<strong>DATADB</strong>" in page and "<code>DATADB.PUBLIC</code>" in page
    assert 'href="/data/tables/DATADB/PUBLIC/EXAMPLES/"' in page and 'hx-target="#table-preview"' in page
    assert '<td class="num">25</td>' in page and '<td class="num">0</td>' in page
    assert "Choose a table to see its columns" in page  # the preview's empty state
    assert "<option>DATADB.PUBLIC</option>" in page and "<option>DATADB.PUBLIC.SCORES</option>" in page


def test_the_preview_shows_column_types_and_the_first_twenty_rows(admin):
    page = admin.get("/data/tables/DATADB/PUBLIC/EXAMPLES/").content.decode()
    assert "<h2><code>DATADB.PUBLIC.EXAMPLES</code></h2>" in page and "first 20 of 25 rows" in page
    assert '<th scope="col">prompt<span class="type">VARCHAR(16777216)</span></th>' in page
    assert page.count("<td>question ") == 20 and "<td>question 19</td>" in page
    assert "<strong>DATADB</strong>" in page  # the full page, tree included


def test_htmx_gets_the_preview_alone(admin):
    response = admin.get("/data/tables/DATADB/PUBLIC/SCORES/", headers={"HX-Request": "true"})
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page and "data-tree" not in page
    assert '<th scope="col">SCORE<span class="type">NUMBER(38,0)</span></th>' in page and "The table is empty." in page


def test_a_missing_table_is_a_404_with_the_message(admin):
    response = admin.get("/data/tables/DATADB/PUBLIC/NOPE/", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "Object &#x27;DATADB.PUBLIC.NOPE&#x27; does not exist or not authorized." in response.content.decode()


def test_a_role_without_usage_sees_neither_the_database_nor_its_preview(account):
    get_user_model().objects.create_user("pat", password=PASSWORD)
    client = Client()
    client.login(username="pat", password=PASSWORD)
    assert "DATADB" not in client.get(URL).content.decode()
    response = client.get("/data/tables/DATADB/PUBLIC/EXAMPLES/", headers={"HX-Request": "true"})
    # As for a database that does not exist: neither the status nor the words tell that DATADB does.
    assert response.status_code == 404
    assert "Database &#x27;DATADB&#x27; does not exist or not authorized." in response.content.decode()
    missing = client.get("/data/tables/NOSUCH/PUBLIC/EXAMPLES/", headers={"HX-Request": "true"})
    assert missing.status_code == 404
    assert "Database &#x27;NOSUCH&#x27; does not exist or not authorized." in missing.content.decode()


# -- uploading -------------------------------------------------------------------------------------

def test_a_csv_file_becomes_a_new_table(admin):
    content = b'prompt,completion,tokens\n"Hi, there",Hello,3\nBye,"See you",2\n'
    response = upload(admin, "greetings.csv", content, new_table="greetings")
    page = response.content.decode()
    assert response.status_code == 200
    assert "LOADED</span>" in page and "2 of 2 rows of <code>greetings.csv</code> loaded into" in page
    assert "<code>DATADB.PUBLIC.GREETINGS</code></a> (a new table)" in page
    assert "<code>PROMPT VARCHAR(16777216)</code>, <code>COMPLETION VARCHAR(16777216)</code>, <code>TOKENS NUMBER(38,0)</code>" in page
    assert rows("SELECT prompt, completion, tokens FROM datadb.public.greetings ORDER BY tokens") == [
        ("Bye", "See you", 2), ("Hi, there", "Hello", 3)]
    assert SchemaObject.objects.get(name="GREETINGS").owner_role == "ACCOUNTADMIN"
    assert user_stage_files() == []  # the upload's staged copy is gone once loaded


def test_json_lines_and_parquet_files_become_new_tables(admin, tmp_path):
    lines = b"".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}).encode() + b"\n" for i in range(3))
    assert upload(admin, "examples.jsonl", lines, new_table="from_json").status_code == 200
    assert rows("SELECT COUNT(*), MIN(prompt) FROM datadb.public.from_json") == [(3, "p0")]
    parquet = tmp_path / "examples.parquet"
    duckdb.sql(f"COPY (SELECT 'q' || i AS prompt, 'a' || i AS completion FROM range(4) t(i)) TO '{parquet}' (FORMAT parquet)")
    response = upload(admin, "examples.parquet", parquet.read_bytes(), new_table="from_parquet")
    assert response.status_code == 200 and "4 of 4 rows" in response.content.decode()
    assert rows("SELECT MAX(completion) FROM datadb.public.from_parquet") == [("a3",)]


def test_a_bad_row_in_an_existing_table_is_reported_and_the_others_load(admin):
    content = b"name,score\nada,10\nbob,abc\ncy,30\n"
    response = upload(admin, "scores.csv", content, mode="existing", existing="DATADB.PUBLIC.SCORES")
    page = response.content.decode()
    assert response.status_code == 200
    assert "PARTIALLY_LOADED</span>" in page and "2 of 3 rows" in page and "1 row failed." in page
    report = page.split("Rows that failed")[1]
    assert '<td class="num">2</td><td class="num">3</td>' in report  # row 2 of the data, line 3 of the file
    assert '<code>&quot;SCORES&quot;[&quot;SCORE&quot;:2]</code>' in report
    assert "Numeric value &#x27;abc&#x27; is not recognized" in report
    assert rows("SELECT name, score FROM datadb.public.scores ORDER BY name") == [("ada", 10), ("cy", 30)]


def test_bad_json_lines_are_reported_by_line(admin):
    content = b'{"name": "ada", "score": 1}\nnot json\n{"name": "bob", "score": "many"}\n'
    page = upload(admin, "scores.jsonl", content, mode="existing", existing="DATADB.PUBLIC.SCORES").content.decode()
    assert "1 of 3 rows" in page and "2 rows failed." in page
    assert "Error parsing JSON: not json" in page and "Numeric value &#x27;many&#x27; is not recognized" in page


def test_htmx_gets_the_report_with_the_tree_and_table_list_updated(admin):
    response = upload(admin, "more.csv", b"name,score\nzed,1\n", htmx=True, mode="existing",
                      existing="DATADB.PUBLIC.SCORES")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page and 'name="file"' not in page
    assert 'id="data-tree" hx-swap-oob="true"' in page and 'id="upload-tables" hx-swap-oob="true"' in page
    assert "1 of 1 row " in page
    tree = page.split('id="data-tree"')[1]
    assert 'SCORES</code></a></td>\n          <td>table</td><td class="num">1</td>' in tree


def test_the_form_keeps_its_choices_and_says_what_is_missing(admin):
    response = upload(admin, "x.csv", None, new_table="kept_name")
    page = response.content.decode()
    assert response.status_code == 400 and "Choose a file to upload." in page
    assert 'value="kept_name"' in page
    response = upload(admin, "notes.txt", b"hello", new_table="t")
    assert response.status_code == 400 and "upload a CSV (.csv, with a header row)" in response.content.decode()
    response = upload(admin, "a.csv", b"a\n1\n", new_table="")
    assert response.status_code == 400 and "Name the new table." in response.content.decode()
    response = upload(admin, "a.csv", b"a\n1\n", new_table="bad name!")
    assert response.status_code == 400 and "Invalid identifier" in response.content.decode()


def test_a_new_table_that_exists_already_is_refused(admin):
    response = upload(admin, "scores.csv", b"name,score\nx,1\n", new_table="scores")
    assert response.status_code == 400 and "Object &#x27;SCORES&#x27; already exists." in response.content.decode()
    assert rows("SELECT COUNT(*) FROM datadb.public.scores") == [(0,)]


def test_a_role_without_create_table_cannot_make_a_new_table(reader):
    response = upload(reader, "t.csv", b"a\n1\n", htmx=True, new_table="not_mine")
    assert response.status_code == 403
    assert "Insufficient privileges to operate on schema &#x27;PUBLIC&#x27;" in response.content.decode()
    assert not SchemaObject.objects.filter(name="NOT_MINE").exists()
    assert user_stage_files() == []


def test_a_role_without_insert_cannot_load_into_a_table(reader):
    response = upload(reader, "s.csv", b"name,score\nx,1\n", htmx=True, mode="existing", existing="DATADB.PUBLIC.SCORES")
    assert response.status_code == 403
    assert "Insufficient privileges to operate on table &#x27;SCORES&#x27;" in response.content.decode()
    assert rows("SELECT COUNT(*) FROM datadb.public.scores") == [(0,)]


def test_uploading_needs_a_login_and_the_csrf_token(account):
    assert Client().post(UPLOAD, {})["Location"].startswith("/accounts/login/")
    client = Client(enforce_csrf_checks=True)
    client.login(username="admin", password=PASSWORD)
    assert upload(client, "a.csv", b"a\n1\n", new_table="t").status_code == 403
    assert not SchemaObject.objects.filter(name="T").exists()
