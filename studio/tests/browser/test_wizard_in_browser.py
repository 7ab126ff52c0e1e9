"""The fine-tune wizard in a real browser: from the login form through every step (keyboard where it
matters, the live name check, the previews, a refresh that keeps the draft) to a job the stack's worker
trains to SUCCESS, with the loss chart drawn on its page. Screenshots of each step go to
test-artifacts/screenshots/ (wizard.png is the review step)."""
from __future__ import annotations

import re
import uuid

import pytest

from jobs import finetune
from jobs.models import FineTuneJob
from studio.tests.browser.support import requires_chromium, screenshot
from tests.support.cortex import admin_session, make_table, sql_value

DATABASE = "UI_WIZARD"
EXAMPLES = [{"ticket": i, "question": f"Ticket {i}: {text}", "answer": "Thank you for contacting ACME support."}
            for i, text in enumerate(["I was charged twice.", "My parcel never arrived.", "The app crashes on start.",
                                      "I forgot my password.", "Please refund my order.", "The courier lost my box.",
                                      "Checkout shows error 500.", "Change my email.", "Where is my invoice?",
                                      "Cancel my subscription."], 1)]

pytestmark = requires_chromium


@pytest.fixture(autouse=True)
def no_job_left_unfinished(stack):
    yield
    for job in FineTuneJob.objects.filter(database=DATABASE).exclude(status__in=FineTuneJob.FINAL_STATUSES):
        finetune.cancel(admin_session(), job.id)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_the_wizard_from_login_to_a_trained_model(login, cast, stack, tmp_path):
    make_table(tmp_path, DATABASE, "TICKETS", EXAMPLES)
    for statement in (f"GRANT USAGE ON DATABASE {DATABASE} TO ROLE {cast.ana_role}",
                      f"GRANT USAGE, CREATE MODEL ON SCHEMA {DATABASE}.PUBLIC TO ROLE {cast.ana_role}",
                      f"GRANT SELECT ON TABLE {DATABASE}.PUBLIC.TICKETS TO ROLE {cast.ana_role}"):
        sql_value(admin_session(), statement)
    name = f"wizard_{uuid.uuid4().hex[:6]}"

    page = login(cast.ana)
    page.click("#create-fine-tune")
    page.wait_for_url("**/studio/fine-tune/model/")
    expect(page.locator("nav.sidenav a.active")).to_have_text("Studio")
    # Base model: each model with its limits and whether it is installed.
    expect(page.locator(".choice", has_text="llama3.1-70b")).to_contain_text("not installed")
    # An installed model comes first and is chosen; arrow keys move between the radio buttons.
    expect(page.locator(".choice").first).to_contain_text("installed")
    chosen = page.locator("input[name=base_model]:checked").get_attribute("value")
    page.focus("input[name=base_model]:checked")
    page.keyboard.press("ArrowDown")
    assert page.locator("input[name=base_model]:checked").get_attribute("value") != chosen
    page.keyboard.press("ArrowUp")
    expect(page.locator(f"input[name=base_model][value='{chosen}']")).to_be_checked()
    page.check("input[name=base_model][value=tiny-llama]")
    page.evaluate("window.scrollTo(0, 0)")  # a full-page screenshot of a scrolled page repeats the sticky header
    screenshot(page, "wizard-1-model")
    page.click("#next")

    # Role and warehouse: only ana's role granted CORTEX_USER is offered.
    page.wait_for_url("**/role/")
    assert page.locator("#id_role option").all_inner_texts() == [cast.ana_role]
    page.select_option("#id_warehouse", "COMPUTE_WH")
    screenshot(page, "wizard-2-role")
    page.click("#next")

    page.wait_for_url("**/database/")
    page.select_option("#id_location", f"{DATABASE}.PUBLIC")
    screenshot(page, "wizard-3-database")
    page.click("#next")

    # Name: the identifier rule is checked as you type; Enter goes forward.
    page.wait_for_url("**/name/")
    page.locator("#id_name").type("support-replies")
    expect(page.locator("#name-problem")).to_contain_text("'support-replies' is not a valid unquoted name")
    page.fill("#id_name", "")
    page.locator("#id_name").type(name)
    expect(page.locator("#name-final")).to_contain_text(f"{DATABASE}.PUBLIC.{name.upper()}")
    screenshot(page, "wizard-4-name")
    page.keyboard.press("Enter")

    # Training table: its first rows.
    page.wait_for_url("**/training/")
    page.select_option("#id_table", f"{DATABASE}.PUBLIC.TICKETS")
    expect(page.locator("#first-rows")).to_contain_text("Ticket 1: I was charged twice.")
    expect(page.locator("#row-count")).to_have_text("10")
    screenshot(page, "wizard-5-training")
    page.click("#next")

    page.wait_for_url("**/prompt/")
    page.select_option("#id_column", "question")
    expect(page.locator("#first-rows th.col-prompt")).to_contain_text("question")
    screenshot(page, "wizard-6-prompt")
    page.click("#next")

    # Completion: the rows rendered through the chat template, the trained-on tokens highlighted.
    page.wait_for_url("**/completion/")
    page.select_option("#id_column", "answer")
    expect(page.locator("#stat-rows")).to_have_text("10")
    trained = "".join(page.locator("#example-1 .tok.trained").all_inner_texts())
    assert trained.startswith("Thank you for contacting ACME support.")
    assert "Ticket 1" in page.locator("#example-1 pre").inner_text() and "Ticket 1" not in trained
    expect(page.locator("#stat-over")).to_have_text("0")
    screenshot(page, "wizard-7-completion")
    page.click("#next")

    page.wait_for_url("**/validation/")
    page.select_option("#id_table", "__skip__")
    screenshot(page, "wizard-8-validation")
    page.click("#next")

    # Review: every choice, kept across a refresh, with the data's statistics.
    page.wait_for_url("**/review/")
    page.reload()
    review = page.locator("#review")
    for text in ("tiny-llama", cast.ana_role, "COMPUTE_WH", f"{DATABASE}.PUBLIC.{name.upper()}",
                 f"{DATABASE}.PUBLIC.TICKETS", "question", "answer", "skipped"):
        expect(review).to_contain_text(text)
    expect(page.locator("#stat-prompt")).to_be_visible()
    screenshot(page, "wizard")
    page.click("#start-training")

    # The last step: the Job ID and the link to the job page, as Snowsight shows them.
    page.wait_for_url("**/studio/fine-tune/started/*/")
    job_id = page.locator("#job-id").inner_text()
    job = FineTuneJob.objects.get(pk=job_id)
    assert (job.role, job.warehouse, job.requested_name) == (cast.ana_role, "COMPUTE_WH", name.upper())
    screenshot(page, "wizard-started")
    page.click("#open-job")
    page.wait_for_url(f"**/jobs/{job_id}/")
    expect(page.locator("#job-status")).to_have_text("SUCCESS", timeout=90_000)
    job.refresh_from_db()
    points = page.locator("svg.chart polyline.train").get_attribute("points").split()
    assert len(points) == len(job.history) >= 2
    assert all(re.fullmatch(r"[\d.]+,[\d.]+", p) for p in points)
    expect(page.locator(".result")).to_contain_text(f"{DATABASE}.PUBLIC.{name.upper()}")
    screenshot(page, "wizard-job-success")
