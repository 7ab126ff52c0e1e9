"""The Jobs pages in a real browser: signing in and reaching Jobs by keyboard, a job trained by the
stack's worker going to SUCCESS on its page without a reload, cancelling a running job from its page,
and the refusals a role without CORTEX_USER sees. Screenshots go to test-artifacts/screenshots/."""
from __future__ import annotations

import re

import pytest

from jobs import finetune
from jobs.models import FineTuneJob
from studio.tests.browser.support import requires_chromium, screenshot
from tests.support.cortex import admin_session, make_table, sql_value
from warehouses.models import Warehouse

DATABASE = "UI_BROWSER"
IDLE_WAREHOUSE = "UI_IDLE_WH"  # no worker listens on its queue: its jobs stay PENDING
REPLY = "Thank you for contacting ACME support."
EXAMPLES = [{"prompt": f"Ticket {i}: {text}", "completion": REPLY} for i, text in enumerate([
    "I was charged twice.", "My parcel never arrived.", "The app crashes on start.", "I forgot my password.",
    "Please refund my order.", "The courier lost my box.", "Checkout shows error 500.", "Change my email.",
])]
QUERY = "SELECT prompt, completion FROM ui_browser.public.replies"

pytestmark = requires_chromium


@pytest.fixture
def table(stack, tmp_path) -> str:
    make_table(tmp_path, DATABASE, "REPLIES", EXAMPLES)
    return QUERY


@pytest.fixture(autouse=True)
def no_job_left_unfinished(stack):
    """Cancel what a test leaves queued or training, so the shared worker is free for the next tests."""
    yield
    for job in FineTuneJob.objects.filter(database=DATABASE).exclude(status__in=FineTuneJob.FINAL_STATUSES):
        finetune.cancel(admin_session(), job.id)


def create_job(name: str, warehouse: str = "COMPUTE_WH", epochs: int = 2, query: str = QUERY) -> str:
    """FINETUNE('CREATE') through the service layer, as ACCOUNTADMIN."""
    Warehouse.objects.get_or_create(name=warehouse, defaults={"concurrency": 0})
    session = admin_session(database=DATABASE, schema="PUBLIC", warehouse=warehouse)
    return finetune.create(session, name, "tiny-llama", query, None, {"max_epochs": epochs})


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def mark_document(page) -> None:
    """Tag the loaded document; the tag is lost if the page reloads or navigates."""
    page.evaluate("window.__sameDocument = true")


def same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_sign_in_and_reach_the_jobs_list_by_keyboard(login, table):
    job_id = create_job("listed_model", warehouse=IDLE_WAREHOUSE)
    page = login("admin")
    expect(page.locator("nav.sidenav a.active")).to_have_text("Studio")
    # Tab from the top: the skip link first, then on through the header to the navigation's Jobs link.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Jobs":
            break
    else:
        pytest.fail("Tab never reached the navigation's Jobs link")
    page.keyboard.press("Enter")
    page.wait_for_url("**/jobs/")
    expect(page.locator("nav.sidenav a.active")).to_have_text("Jobs")
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_contain_text("PENDING")
    expect(row).to_contain_text("tiny-llama")
    expect(row).to_contain_text("UI_BROWSER.PUBLIC.LISTED_MODEL")
    expect(row.locator("progress")).to_have_attribute("value", "0.0")
    screenshot(page, "jobs-list")


def test_a_job_goes_to_success_on_its_page_without_a_reload(login, table):
    job_id = create_job("browser_replies", epochs=3)
    page = login("admin")
    page.goto(f"/jobs/{job_id}/")
    assert page.locator("#job-status").inner_text() in ("PENDING", "IN_PROGRESS")
    mark_document(page)
    expect(page.locator("#job-status")).to_have_text("SUCCESS", timeout=120_000)
    assert same_document(page), "the page reloaded instead of updating in place"

    # The loss chart: a training curve through every step written, the validation points per epoch.
    job = FineTuneJob.objects.get(pk=job_id)
    points = page.locator("svg.chart polyline.train").get_attribute("points").split()
    assert len(points) == len(job.history) >= 2
    assert all(re.fullmatch(r"[\d.]+,[\d.]+", p) for p in points)
    assert page.locator("svg.chart circle.val").count() == len(job.validation_history) == 3
    expect(page.locator(".progress-line")).to_contain_text("100%")
    expect(page.locator(".stats")).to_contain_text(str(job.trained_tokens))
    expect(page.locator("#cancel-job")).to_have_count(0)
    screenshot(page, "job-success")

    # Its model link opens the model's page; the registry lists it.
    page.click(".result a")
    page.wait_for_url("**/models/UI_BROWSER.PUBLIC.BROWSER_REPLIES/")
    expect(page.locator("main")).to_contain_text("UI_BROWSER.PUBLIC.BROWSER_REPLIES")
    expect(page.locator("main")).to_contain_text("tiny-llama")
    page.click("nav.sidenav >> text=Models")
    page.fill("#model-search", "BROWSER_REPLIES")
    page.keyboard.press("Enter")
    page.wait_for_url("**/models/?q=BROWSER_REPLIES")
    row = page.locator("tr#ui_browserpublicbrowser_replies")
    expect(row).to_contain_text("tiny-llama")
    expect(row).to_contain_text("ACCOUNTADMIN")
    screenshot(page, "models")
    for section, name in (("Data", "data"), ("Worksheets", "worksheets"), ("Studio", "studio")):
        page.click(f"nav.sidenav >> text={section}")
        expect(page.locator("nav.sidenav a.active")).to_have_text(section)
        screenshot(page, name)
    expect(page.locator("main")).to_contain_text(job_id)  # the Studio page's recent jobs


def test_cancel_a_running_job_from_its_page(login, stack, tmp_path):
    make_table(tmp_path, DATABASE, "MANY_CODES",
               [{"prompt": f"Code for colour number {i}?", "completion": f"N-{i:04d}"} for i in range(400)])
    job_id = create_job("long_run", epochs=10, query="SELECT prompt, completion FROM ui_browser.public.many_codes")
    page = login("admin")
    page.goto(f"/jobs/{job_id}/")
    mark_document(page)
    # Running and training: the chart is drawn before anything is cancelled.
    expect(page.locator("svg.chart polyline.train")).to_have_count(1, timeout=60_000)
    expect(page.locator("#job-status")).to_have_text("IN_PROGRESS")
    # Cancel by keyboard: the button keeps the focus while the live part around it is replaced. (Enter is
    # pressed once htmx has settled the new part; in the 20 ms before that the form posts without htmx and
    # the page reloads with the same answer.)
    # (Waited for through an attribute: wait_for_function evaluates its string with eval, which the pages'
    # Content-Security-Policy refuses.)
    page.evaluate("document.body.addEventListener('htmx:afterSettle', () => document.body.dataset.settled = 'yes')")
    page.focus("#cancel-job")
    expect(page.locator("body[data-settled=yes]")).to_have_count(1)
    assert page.evaluate("document.activeElement.id") == "cancel-job"
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("CANCELLED")
    expect(page.locator("#job-live")).to_contain_text(f"Canceled Cortex Fine-tuning job: {job_id}")
    expect(page.locator("#cancel-job")).to_have_count(0)
    assert same_document(page)
    assert FineTuneJob.objects.get(pk=job_id).status == "CANCELLED"
    screenshot(page, "job-cancelled")


def test_a_role_without_cortex_user_sees_the_refusals(login, cast, table):
    page = login(cast.nina)
    page.click("nav.sidenav >> text=Jobs")
    expect(page.locator("main")).to_contain_text("Insufficient privileges to operate on function 'FINETUNE'")
    expect(page.locator("main")).to_contain_text(f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {cast.nina_role}")
    expect(page.locator("nav.sidenav >> text=Admin")).to_have_count(0)
    screenshot(page, "jobs-refused")

    # A job page left open: once CORTEX_USER is revoked, its next update shows the refusal instead.
    job = FineTuneJob.objects.create(base_model="tiny-llama", database=DATABASE, schema="PUBLIC",
                                     requested_name="ANAS_MODEL", training_data=QUERY, warehouse=IDLE_WAREHOUSE,
                                     role=cast.ana_role)
    ana = login(cast.ana)
    ana.goto(f"/jobs/{job.id}/")
    expect(ana.locator("#cancel-job")).to_be_visible()
    mark_document(ana)
    sql_value(admin_session(), f"REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM ROLE {cast.ana_role}")
    expect(ana.locator("#job-live")).to_contain_text("Insufficient privileges to operate on function 'FINETUNE'")
    expect(ana.locator("#cancel-job")).to_have_count(0)
    assert same_document(ana)
    assert FineTuneJob.objects.get(pk=job.pk).status == "PENDING"
