"""The worksheet in a real browser: the seed's SQL (CREATE TABLE, INSERT … GENERATOR, CREATE TABLE AS,
SELECT, FINETUNE('SHOW')) typed into the highlighting editor and run with Ctrl+Enter into result grids;
an error shown inline with the failing statement selected; running a selection; loading a statement
back from the history; saving the worksheet. Screenshot: test-artifacts/screenshots/worksheet.png."""
from __future__ import annotations

import re

import pytest

from studio.models import Worksheet
from studio.tests.browser.support import requires_chromium, screenshot

pytestmark = requires_chromium

# The seed's setup (tests/test_seed_examples.py) in a database of this test's own.
SEED_SQL = """CREATE DATABASE IF NOT EXISTS ui_ws;
CREATE SCHEMA IF NOT EXISTS ui_ws.myschema;
USE SCHEMA ui_ws.myschema;
-- the seed's training table
CREATE OR REPLACE TABLE train (a VARCHAR, b INT, c INT, d VARCHAR);
INSERT INTO train SELECT 'Ticket ' || SEQ4() || ': ' || IFF(SEQ4() % 2 = 0, 'refund please', 'parcel lost'),
                         SEQ4(), SEQ4(), 'Thank you for contacting ACME support.'
                  FROM TABLE(GENERATOR(ROWCOUNT => 12));
CREATE OR REPLACE TABLE my_training_data AS SELECT a AS prompt, d AS completion FROM train;
SELECT prompt, completion FROM my_training_data ORDER BY prompt LIMIT 5;
SELECT SNOWFLAKE.CORTEX.FINETUNE('SHOW');"""


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def run_with_keyboard(page, text: str, shift: bool = False) -> None:
    page.fill("#ws-sql", text)
    page.focus("#ws-sql")
    page.keyboard.press("Control+Shift+Enter" if shift else "Control+Enter")


def test_the_seed_sql_runs_in_the_worksheet(login):
    page = login("admin")
    page.click("nav.sidenav >> text=Worksheets")
    page.wait_for_url("**/worksheets/")
    run_with_keyboard(page, SEED_SQL)
    results = page.locator(".ws-result")
    expect(results).to_have_count(8)
    expect(page.locator(".ws-result.failed")).to_have_count(0)
    # The highlighter has drawn the text: keywords, strings, numbers and the comment.
    for kind in ("keyword", "string", "number", "comment"):
        assert page.locator(f"#ws-highlight .token.{kind}").count() > 0, kind
    inserted = results.nth(4)
    expect(inserted.locator("thead")).to_contain_text("number of rows inserted")
    expect(inserted.locator("tbody")).to_contain_text("12")
    grid = results.nth(6)
    expect(grid.locator("thead th")).to_have_text([re.compile(r"PROMPT\s*TEXT"), re.compile(r"COMPLETION\s*TEXT")])
    expect(grid.locator("tbody tr")).to_have_count(5)
    expect(grid.locator("tbody tr").first).to_contain_text("Thank you for contacting ACME support.")
    expect(results.nth(7).locator("thead")).to_contain_text("FINETUNE")
    expect(page.locator("#worksheet-context")).to_contain_text("Database UI_WS · Schema MYSCHEMA")
    screenshot(page, "worksheet")

    # An error: shown inline with its code and place, the failing statement selected in the editor.
    run_with_keyboard(page, "SELECT COUNT(*) AS n FROM train;\nSELECT * FROM missing_table;\nSELECT 3")
    error = page.locator(".ws-error")
    expect(error).to_contain_text("002003 (42S02): SQL compilation error: Object 'UI_WS.MYSCHEMA.MISSING_TABLE' "
                                  "does not exist or not authorized.")
    expect(error).to_contain_text("Statement 2 of 3, line 2, column 1. The statements after it did not run.")
    assert page.evaluate("(() => { const t = document.getElementById('ws-sql'); "
                         "return t.value.slice(t.selectionStart, t.selectionEnd); })()") == "SELECT * FROM missing_table"

    # Run selection: only the selected statement runs.
    page.fill("#ws-sql", "SELECT 1 AS first_one;\nSELECT 2 AS second_one;")
    page.evaluate("(() => { const t = document.getElementById('ws-sql'); const at = t.value.indexOf('SELECT 2'); "
                  "t.setSelectionRange(at, at + 'SELECT 2 AS second_one'.length); })()")
    page.click("#ws-run")
    expect(results).to_have_count(1)
    expect(results.first.locator("thead")).to_contain_text("SECOND_ONE")

    # The history: newest first; a click loads a statement back into the editor.
    history = page.locator(".ws-history .ws-load")
    expect(history.first).to_have_attribute("data-sql", "SELECT 2 AS second_one")
    page.locator(".ws-history .ws-load[data-sql^='CREATE OR REPLACE TABLE train']").click()
    assert page.input_value("#ws-sql") == "CREATE OR REPLACE TABLE train (a VARCHAR, b INT, c INT, d VARCHAR)"

    # Saving: the worksheet opens under its name and is listed for its owner.
    page.fill("#ws-sql", SEED_SQL)
    page.fill(".ws-save input[name=name]", "Seed SQL")
    page.click("#ws-save")
    page.wait_for_url(re.compile(r".*/worksheets/saved/\d+/$"))
    expect(page.locator("main h1")).to_have_text("Seed SQL")
    expect(page.locator(".ws-saved li.current")).to_contain_text("Seed SQL")
    assert page.input_value("#ws-sql") == SEED_SQL
    assert Worksheet.objects.get(name="Seed SQL").text == SEED_SQL


@pytest.fixture(autouse=True)
def no_saved_worksheets_left(stack):
    yield
    Worksheet.objects.filter(name="Seed SQL").delete()
