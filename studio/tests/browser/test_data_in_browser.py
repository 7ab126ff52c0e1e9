"""The Data page in a real browser: a table's preview opened from the tree without a reload, and a CSV
with one bad row uploaded into an existing table: the progress bar, then the load report listing the
row that failed. Screenshots: test-artifacts/screenshots/data.png and upload.png."""
from __future__ import annotations

import pytest

from studio.tests.browser.support import requires_chromium, screenshot
from tests.support.cortex import admin_session, sql_value

pytestmark = requires_chromium

CSV = b"prompt,completion,score\nWhere is my parcel?,It is on its way.,5\nRefund please,Done.,not-a-number\nHello,Hi!,4\n"


@pytest.fixture
def scores_table(stack) -> None:
    for statement in ("CREATE DATABASE IF NOT EXISTS ui_data",
                      "CREATE OR REPLACE TABLE ui_data.public.replies (prompt VARCHAR, completion VARCHAR, score NUMBER)",
                      "INSERT INTO ui_data.public.replies VALUES ('First prompt', 'First completion', 1)"):
        sql_value(admin_session(), statement)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_preview_a_table_and_upload_a_csv_with_a_bad_row(login, scores_table):
    page = login("admin")
    page.click("nav.sidenav >> text=Data")
    page.wait_for_url("**/data/")
    page.evaluate("window.__sameDocument = true")

    # The preview: opened from the tree in place, the address updated for a refresh.
    page.click("#data-tree a[href='/data/tables/UI_DATA/PUBLIC/REPLIES/']")
    preview = page.locator("#table-preview")
    expect(preview.locator("h2")).to_have_text("UI_DATA.PUBLIC.REPLIES")
    expect(preview.locator("thead th")).to_have_text(["PROMPTVARCHAR(16777216)", "COMPLETIONVARCHAR(16777216)",
                                                      "SCORENUMBER(38,0)"])
    expect(preview.locator("tbody")).to_contain_text("First completion")
    page.wait_for_url("**/data/tables/UI_DATA/PUBLIC/REPLIES/")
    assert page.evaluate("window.__sameDocument === true")
    screenshot(page, "data")

    # The upload: into the existing table, the bar filled, then the report with the failed row.
    page.check("input[name=mode][value=existing]")
    page.select_option("select[name=existing]", "UI_DATA.PUBLIC.REPLIES")
    page.set_input_files("#upload-file", files=[{"name": "replies.csv", "mimeType": "text/csv", "buffer": CSV}])
    page.click("text=Upload and load")
    report = page.locator("#load-report")
    expect(report).to_contain_text("PARTIALLY_LOADED")
    expect(report).to_contain_text("2 of 3 rows of replies.csv loaded into UI_DATA.PUBLIC.REPLIES")
    progress = page.locator("#upload-progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_attribute("data-state", "done")
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    expect(progress).to_contain_text("Uploaded and loaded.")
    failed = report.locator("table.row-errors tbody tr")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("Numeric value 'not-a-number' is not recognized")
    expect(failed.locator("td").nth(0)).to_have_text("2")  # the second data row
    expect(failed.locator("td").nth(2)).to_have_text('"REPLIES"["SCORE":3]')
    # The tree's row count follows the load, without a reload.
    row = page.locator("#data-tree tr").filter(has=page.locator("a[href='/data/tables/UI_DATA/PUBLIC/REPLIES/']"))
    expect(row.locator("td.num")).to_have_text("3")
    assert page.evaluate("window.__sameDocument === true")
    screenshot(page, "upload")
    assert sql_value(admin_session(), "SELECT COUNT(*) FROM ui_data.public.replies") == 3
