"""The worksheet page: running statements (all or the selection), results with column types, errors
inline with where they are, the session's history, and saved worksheets that only their owner sees."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from access.bootstrap import bootstrap
from studio.models import Worksheet
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


@pytest.fixture
def bob_client(account):
    get_user_model().objects.create_user("bob", password="pw-bob")
    other = Client()
    other.login(username="bob", password="pw-bob")
    return other


def run(client, sql, **fields):
    headers = {"HX-Request": "true"} if fields.pop("htmx", False) else {}
    return client.post(URL, {"sql": sql, **fields}, headers=headers)


def history_of(client) -> str:
    return client.get(URL).content.decode().split("<h2>History</h2>")[1]


def test_the_worksheet_requires_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_page_shows_the_highlighting_editor_and_the_session(admin_client):
    page = admin_client.get(URL).content.decode()
    assert '<textarea id="ws-sql" name="sql"' in page and '<code id="ws-highlight">' in page
    assert "js/prism-sql.min.js" in page and "js/worksheet.js" in page and "js/htmx.min.js" in page
    assert "Role <strong>ACCOUNTADMIN</strong>" in page and "Warehouse <strong>COMPUTE_WH</strong>" in page
    assert 'id="ws-run"' in page and 'id="ws-run-all"' in page and "Ctrl+Enter" in page
    assert "Name a worksheet and press Save" in page  # the saved list's empty state


def test_running_a_statement_shows_a_grid_with_column_names_and_types(admin_client):
    response = run(admin_client, "SELECT name, age FROM wsdb.public.people ORDER BY name")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<th scope="col">NAME <span class="type">TEXT</span></th>' in page
    assert '<th scope="col">AGE <span class="type">NUMBER</span></th>' in page
    assert "<td>Ada</td>" in page and "<td>36</td>" in page and '<td class="null">NULL</td>' in page
    assert "2 rows" in page
    assert "SELECT name, age FROM wsdb.public.people ORDER BY name</textarea>" in page


def test_an_error_shows_inline_with_code_sqlstate_and_the_statements_position(admin_client):
    text = "SELECT 1 AS one;\n\n  SELECT * FROM wsdb.public.missing;\nSELECT 3 AS three"
    page = run(admin_client, text).content.decode()
    assert "<strong>002003 (42S02):</strong> SQL compilation error: Object &#x27;WSDB.PUBLIC.MISSING&#x27; does not exist" in page
    assert "Statement 2 of 3, line 3, column 3. The statements after it did not run." in page
    assert 'data-error-start="20" data-error-end="53"' in page and text[20:53] == "SELECT * FROM wsdb.public.missing"
    assert "<td>1</td>" in page  # the statement before the error still shows its result
    assert "THREE" not in page.upper().split("</TEXTAREA>")[1]  # the one after it did not run
    assert text + "</textarea>" in page


def test_a_syntax_error_names_the_line_in_the_editor(admin_client):
    page = run(admin_client, "SELECT 1;\n\nSELEC 2 FROM").content.decode()
    assert "001003 (42000):</strong> SQL compilation error: syntax error line 3 at position" in page
    assert "Statement 2 of 2, line 3, column 1." in page


def test_an_unterminated_string_is_an_error_not_a_crash(admin_client):
    page = run(admin_client, "SELECT 1;\nSELECT 'abc").content.decode()
    assert "001003 (42000):</strong> SQL compilation error:" in page and "Is a quote missing" in page
    assert "Statement 1 of 1, line 1, column 1." in page


def test_a_semicolon_inside_a_string_does_not_split_the_statement(admin_client):
    page = run(admin_client, "SELECT 'a;b' AS s; -- done;\n").content.decode()
    assert "<td>a;b</td>" in page and "failed" not in page.split("<h2>History</h2>")[0]


def test_run_selection_runs_only_the_selected_text(admin_client):
    text = "SELECT 1 AS first_one;\nSELECT 2 AS second_one;\nSELECT 3 AS third_one"
    start = text.index("SELECT 2")
    page = run(admin_client, text, selection_start=start, selection_end=start + len("SELECT 2 AS second_one")).content.decode()
    results = page.split("<h2>History</h2>")[0].split("</textarea>")[1].upper()
    assert "SECOND_ONE" in results and "FIRST_ONE" not in results and "THIRD_ONE" not in results
    assert "line 2 ·" in page
    assert text + "</textarea>" in page  # the editor keeps the whole text
    history = history_of(admin_client).upper()
    assert "SECOND_ONE" in history and "FIRST_ONE" not in history


def test_an_empty_selection_runs_everything(admin_client):
    page = run(admin_client, "SELECT 1 AS a1; SELECT 2 AS a2", selection_start=5, selection_end=5).content.decode()
    assert page.upper().count("1 ROW<") == 2


def test_use_carries_over_to_the_next_run(admin_client):
    run(admin_client, "USE DATABASE wsdb")
    page = run(admin_client, "SELECT COUNT(*) AS n FROM people").content.decode()
    assert "<td>2</td>" in page and "Database <strong>WSDB</strong>" in page and "Schema <strong>PUBLIC</strong>" in page
    assert "Database <strong>WSDB</strong>" in admin_client.get(URL).content.decode()


def test_history_lists_statements_with_status_newest_first_to_load_back(admin_client):
    run(admin_client, "SELECT 1 AS first_one")
    run(admin_client, "SELECT * FROM wsdb.public.nope")
    history = history_of(admin_client)
    assert history.upper().index("NOPE") < history.upper().index("FIRST_ONE")
    assert "failed 002003" in history and "success" in history and " ms</td>" in history
    assert 'class="ws-load" data-sql="SELECT 1 AS first_one"' in history


def test_history_hides_passwords(admin_client):
    run(admin_client, "CREATE USER carl PASSWORD = 'hunter2-secret'")
    history = history_of(admin_client)
    assert "hunter2-secret" not in history and "***" in history


def test_history_keeps_the_last_twenty(admin_client):
    for i in range(23):
        run(admin_client, f"SELECT {i} AS n{i}")
    history = history_of(admin_client)
    assert "N22" in history.upper() and 'data-sql="SELECT 2 AS n2"' not in history and history.count("<tr>") == 21


def test_htmx_gets_only_the_results_fragment_with_the_session(admin_client):
    response = run(admin_client, "USE DATABASE wsdb", htmx=True)
    page = response.content.decode()
    assert response.status_code == 200 and "<textarea" not in page and "<html" not in page
    assert 'id="worksheet-context" class="ws-context" hx-swap-oob="true"' in page and "WSDB" in page


def test_an_empty_run_is_a_400_with_the_reason(admin_client):
    response = run(admin_client, "  -- only a comment\n ", htmx=True)
    assert response.status_code == 400 and "Type one or more SQL statements" in response.content.decode()


def test_sessions_are_per_user(admin_client, bob_client):
    run(admin_client, "USE DATABASE wsdb")
    page = bob_client.get(URL).content.decode()
    assert "Role <strong>PUBLIC</strong>" in page and "WSDB" not in page


# -- saved worksheets ------------------------------------------------------------------------------

def save(client, name, sql, worksheet="", htmx=False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/worksheets/saved/", {"name": name, "sql": sql, "worksheet": worksheet}, headers=headers)


def test_saving_creates_a_worksheet_and_opens_it(admin_client):
    response = save(admin_client, "  Training   data ", "SELECT * FROM wsdb.public.people")
    sheet = Worksheet.objects.get()
    assert sheet.name == "Training data" and sheet.text == "SELECT * FROM wsdb.public.people"
    assert sheet.owner.username == "admin"
    assert response.status_code == 302 and response["Location"] == f"/worksheets/saved/{sheet.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "<h1>Training data</h1>" in page and "Saved worksheet &#x27;Training data&#x27;." in page
    assert "SELECT * FROM wsdb.public.people</textarea>" in page
    assert f'<input type="hidden" name="worksheet" value="{sheet.pk}">' in page
    assert f'aria-current="page">Training data</a>' in page


def test_saving_an_open_worksheet_updates_it(admin_client):
    sheet = Worksheet.objects.create(owner=get_user_model().objects.get(username="admin"), name="a", text="SELECT 1")
    save(admin_client, "b", "SELECT 2", worksheet=sheet.pk)
    sheet.refresh_from_db()
    assert (sheet.name, sheet.text) == ("b", "SELECT 2") and Worksheet.objects.count() == 1


def test_saving_through_htmx_sends_the_browser_to_the_worksheet(admin_client):
    response = save(admin_client, "hx", "SELECT 1", htmx=True)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/worksheets/saved/{Worksheet.objects.get().pk}/"


def test_saving_needs_a_unique_name_and_keeps_the_text(admin_client):
    response = save(admin_client, "  ", "SELECT 42")
    assert response.status_code == 400 and "Name the worksheet to save it." in response.content.decode()
    assert "SELECT 42</textarea>" in response.content.decode()
    save(admin_client, "mine", "SELECT 1")
    response = save(admin_client, "mine", "SELECT 2")
    assert response.status_code == 400 and "You already have a worksheet named &#x27;mine&#x27;." in response.content.decode()
    assert Worksheet.objects.get().text == "SELECT 1"


def test_renaming_and_deleting(admin_client):
    save(admin_client, "old name", "SELECT 1")
    sheet = Worksheet.objects.get()
    response = admin_client.post(f"/worksheets/saved/{sheet.pk}/rename", {"name": "new name"})
    sheet.refresh_from_db()
    assert response.status_code == 302 and sheet.name == "new name"
    response = admin_client.post(f"/worksheets/saved/{sheet.pk}/delete")
    assert response.status_code == 302 and response["Location"] == URL and not Worksheet.objects.exists()
    assert "Deleted worksheet &#x27;new name&#x27;." in admin_client.get(URL).content.decode()


def test_only_the_owner_lists_opens_renames_or_deletes_a_worksheet(admin_client, bob_client):
    save(admin_client, "admin's secret sheet", "SELECT 'classified'")
    sheet = Worksheet.objects.get()
    assert "secret sheet" not in bob_client.get(URL).content.decode()
    assert bob_client.get(f"/worksheets/saved/{sheet.pk}/").status_code == 404
    assert bob_client.post(f"/worksheets/saved/{sheet.pk}/rename", {"name": "mine now"}).status_code == 404
    assert bob_client.post(f"/worksheets/saved/{sheet.pk}/delete").status_code == 404
    # Saving "into" someone else's worksheet makes a new one of one's own.
    save(bob_client, "bob's", "SELECT 2", worksheet=sheet.pk)
    sheet.refresh_from_db()
    assert (sheet.name, sheet.text) == ("admin's secret sheet", "SELECT 'classified'")
    assert Worksheet.objects.get(name="bob's").owner.username == "bob"
    assert "secret sheet" in admin_client.get(URL).content.decode()


def test_a_new_worksheet_starts_empty(admin_client):
    save(admin_client, "kept", "SELECT 1")
    page = admin_client.get(URL + "?new=1").content.decode()
    assert '></textarea>' in page and "<h1>Worksheet</h1>" in page and ">kept</a>" in page
