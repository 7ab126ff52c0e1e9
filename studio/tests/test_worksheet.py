import pytest
from django.contrib.auth import get_user_model

from access.bootstrap import bootstrap
from tests.support.cortex import make_table

URL = "/worksheets/"


@pytest.fixture
def account(db, tmp_path):
    bootstrap(password="pw-for-tests", demo=False)
    make_table(tmp_path, "WSDB", "PEOPLE", [{"name": "Ada", "age": 36}, {"name": "Alan", "age": None}])


@pytest.fixture
def admin_client(account, client):
    client.login(username="admin", password="pw-for-tests")
    return client


def run(client, sql, **headers):
    return client.post(URL, {"sql": sql}, headers=headers)


def test_the_worksheet_requires_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_page_shows_the_editor_and_the_session(admin_client):
    page = admin_client.get(URL).content.decode()
    assert '<textarea id="ws-sql" name="sql"' in page and "js/htmx.min.js" in page
    assert "Role <strong>ACCOUNTADMIN</strong>" in page and "Warehouse <strong>COMPUTE_WH</strong>" in page
    assert 'href="/worksheets/"' in page  # the header links here


def test_running_a_statement_shows_its_rows(admin_client):
    response = run(admin_client, "SELECT name, age FROM wsdb.public.people ORDER BY name")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<th>NAME</th>" in page and "<td>Ada</td>" in page and "<td>36</td>" in page
    assert '<td class="null">NULL</td>' in page and "2 rows" in page
    assert "SELECT name, age FROM wsdb.public.people ORDER BY name</textarea>" in page


def test_an_error_shows_inline_with_code_and_sqlstate_and_keeps_the_text(admin_client):
    text = "SELECT 1 AS one;\nSELECT * FROM wsdb.public.missing;\nSELECT 3 AS three"
    page = run(admin_client, text).content.decode()
    assert '<p class="error"><strong>002003 (42S02):</strong>' in page and "MISSING" in page.upper()
    assert "<td>1</td>" in page  # the statement before the error still shows its result
    assert "THREE" not in page.upper().split("</TEXTAREA>")[1]  # the one after it did not run
    assert text + "</textarea>" in page


def test_use_carries_over_to_the_next_run(admin_client):
    run(admin_client, "USE DATABASE wsdb")
    page = run(admin_client, "SELECT COUNT(*) AS n FROM people").content.decode()
    assert "<td>2</td>" in page and "Database <strong>WSDB</strong>" in page and "Schema <strong>PUBLIC</strong>" in page
    assert "Database <strong>WSDB</strong>" in admin_client.get(URL).content.decode()


def test_history_lists_statements_with_status_newest_first(admin_client):
    run(admin_client, "SELECT 1 AS first_one")
    run(admin_client, "SELECT * FROM wsdb.public.nope")
    history = admin_client.get(URL).content.decode().split("<h2>History</h2>")[1]
    assert history.upper().index("NOPE") < history.upper().index("FIRST_ONE")
    assert "failed 002003" in history and "success" in history and " ms</td>" in history


def test_history_keeps_the_last_twenty(admin_client):
    for i in range(23):
        run(admin_client, f"SELECT {i} AS n{i}")
    history = admin_client.get(URL).content.decode().split("<h2>History</h2>")[1]
    assert "N22" in history.upper() and "AS N2\n" not in history and history.count("<tr>") == 21


def test_htmx_gets_only_the_results_fragment_with_the_session(admin_client):
    response = run(admin_client, "USE DATABASE wsdb", HX_Request="true")
    page = response.content.decode()
    assert response.status_code == 200 and "<textarea" not in page and "<html" not in page
    assert 'id="worksheet-context" class="ws-context" hx-swap-oob="true"' in page and "WSDB" in page


def test_an_empty_run_is_a_400_with_the_reason(admin_client):
    response = run(admin_client, "   ", HX_Request="true")
    assert response.status_code == 400 and "Type one or more SQL statements" in response.content.decode()


def test_sessions_are_per_user(admin_client, client):
    run(admin_client, "USE DATABASE wsdb")
    get_user_model().objects.create_user("bob", password="pw-bob")
    client.logout()
    client.login(username="bob", password="pw-bob")
    page = client.get(URL).content.decode()
    assert "Role <strong>PUBLIC</strong>" in page and "WSDB" not in page
