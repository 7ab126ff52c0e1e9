"""The Content-Security-Policy in a real browser: every Studio page and the admin console's pages come
with the policy (scripts, styles and images from this site only, nothing inline), chromium reports no
violation of it on any of them, and what the pages do still works under it: htmx partials and polling,
the charts, the worksheet's editor, the playground's stream, the header's menus (static/js/studio.js
instead of inline handlers) and the worksheet's Delete confirmation. The API tokens page is never cached.
"""
from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from catalog import accountdata
from inference.models import CompletionUsage
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from studio.models import Worksheet
from studio.tests.browser.support import requires_chromium
from tests.support.cortex import admin_session, sql_value

pytestmark = requires_chromium

POLICY = {"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self'",
          "object-src": "'none'", "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'"}
# Each securitypolicyviolation event, kept on the page for the test to read (an init script runs before
# the page's own and is not itself subject to the policy).
RECORD_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => {
  (window.__violations = window.__violations || []).push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});"""


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def policy(header: str) -> dict[str, str]:
    return dict(directive.strip().split(" ", 1) for directive in header.split(";"))


class Watch:
    """What a page reports: CSP violations (console and events) and uncaught script errors."""

    def __init__(self, page) -> None:
        self.page, self.console, self.errors = page, [], []
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def visit(self, path: str):
        response = self.page.goto(path)
        assert response.status == 200, (path, response.status)
        assert policy(response.headers["content-security-policy"]) == POLICY, path
        self.page.wait_for_load_state("load")
        return response

    def assert_clean(self, where: str) -> None:
        events = self.page.evaluate("window.__violations || []")
        assert (self.console, events, self.errors) == ([], [], []), where


@pytest.fixture
def pages(stack, tmp_path):
    """A job with a loss history (still running, so its page polls), a model with usage (its bar chart),
    a role to grant to, a saved worksheet and a table to preview; unique names (one committed database)."""
    suffix = uuid.uuid4().hex[:6].upper()
    database = f"UI_CSP_{suffix}"
    sql_value(admin_session(), f"CREATE DATABASE {database}")
    sql_value(admin_session(), f"CREATE TABLE {database}.public.notes (note VARCHAR)")
    sql_value(admin_session(), f"INSERT INTO {database}.public.notes VALUES ('a note')")
    history = [{"step": s, "total_steps": 8, "epoch": s / 4, "loss": 3.0 / s, "at": 0} for s in range(1, 5)]
    job = FineTuneJob.objects.create(status="IN_PROGRESS", phase="training", progress=0.5, base_model="tiny-llama",
                                     database=database, schema="PUBLIC", requested_name="CSP_MODEL",
                                     training_data="SELECT 1", role="ACCOUNTADMIN", warehouse="UI_CSP_NO_WORKER",
                                     history=history, validation_history=[{"epoch": 1, "validation_loss": 1.2}],
                                     started_on=timezone.now())
    model = FineTunedModel.objects.create(schema=accountdata.get_schema(database, "PUBLIC"), name="CSP_MODEL",
                                          base_model="tiny-llama", owner_role="ACCOUNTADMIN",
                                          adapter_path=str(tmp_path / "adapter"))
    CompletionUsage.objects.create(user_name="admin", role="ACCOUNTADMIN", model_name=model.qualified_name,
                                   base_model="tiny-llama", entry_point="sql", input_tokens=30, output_tokens=10,
                                   status="SUCCESS", started_on=timezone.now() - datetime.timedelta(hours=1))
    role = f"UI_CSP_READERS_{suffix}"
    sql_value(admin_session(), f"CREATE ROLE {role}")
    sheet = Worksheet.objects.create(owner=get_user_model().objects.get(username="admin"), name=f"csp {suffix}",
                                     text="SELECT 1")
    yield {"database": database, "job": job, "model": model, "role": role, "sheet": sheet}
    FineTuneJob.objects.filter(pk=job.pk).update(status="CANCELLED")
    CompletionUsage.objects.filter(model_name=model.qualified_name).delete()
    model.delete()


def test_every_studio_page_has_the_policy_and_breaks_none_of_it(login, pages):
    page = login("admin")
    watch = Watch(page)
    for path in ("/", "/studio/fine-tune/", "/jobs/", "/models/", "/playground/", "/worksheets/", "/data/",
                 "/account/tokens/", "/accounts/password/", f"/models/{pages['model'].qualified_name}/",
                 f"/jobs/{pages['job'].pk}/", f"/worksheets/saved/{pages['sheet'].pk}/"):
        watch.visit(path)
        watch.assert_clean(path)

    # The job page: its loss chart drawn, and htmx polling the live part, swapped in without a reload.
    watch.visit(f"/jobs/{pages['job'].pk}/")
    expect(page.locator(".loss-chart polyline.train")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    with page.expect_response(lambda r: r.url.endswith(f"/jobs/{pages['job'].pk}/")
                              and r.request.headers.get("hx-request") == "true", timeout=10_000):
        pass
    expect(page.locator("#job-live")).to_be_visible()
    assert page.evaluate("window.__sameDocument === true")
    watch.assert_clean("job page polling")

    # The model page: its usage bar chart, and GRANT through the htmx form.
    watch.visit(f"/models/{pages['model'].qualified_name}/")
    expect(page.locator("#usage rect.bar")).to_have_count(1)
    page.fill("#grant-role", pages["role"])
    page.get_by_role("button", name="Grant", exact=True).click()
    expect(page.locator(f"#grants tr[data-grantee='{pages['role']}']")).to_contain_text("USAGE")
    watch.assert_clean("model page grant")

    # The Data page: a table's preview through htmx.
    watch.visit("/data/")
    page.click(f"#data-tree a[href='/data/tables/{pages['database']}/PUBLIC/NOTES/']")
    expect(page.locator("#table-preview tbody")).to_contain_text("a note")
    watch.assert_clean("data preview")


def test_the_editor_the_playground_and_the_header_menus_work_under_the_policy(login, pages):
    page = login("admin")
    watch = Watch(page)

    # The worksheet: highlighted as typed, run with Ctrl+Enter into a result grid.
    watch.visit("/worksheets/")
    page.fill("#ws-sql", "SELECT 'csp' AS word, 42 AS answer")
    page.focus("#ws-sql")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".ws-result tbody")).to_contain_text("42")
    assert page.locator("#ws-highlight .token.keyword").count() > 0
    expect(page.locator("#ws-running")).to_be_hidden()
    watch.assert_clean("worksheet run")

    # Delete asks first (data-confirm): dismissed, the worksheet stays; accepted, it goes.
    watch.visit(f"/worksheets/saved/{pages['sheet'].pk}/")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete").click()
    assert asked == [f"Delete worksheet “{pages['sheet'].name}”?"]
    assert Worksheet.objects.filter(pk=pages["sheet"].pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Delete").click()
    assert not Worksheet.objects.filter(pk=pages["sheet"].pk).exists()
    watch.assert_clean("worksheet delete")

    # The playground: the base model's answer streams in.
    watch.visit("/playground/?model=tiny-llama")
    page.fill("#pg-max-tokens", "4")
    page.fill("#pg-message", "Hello")
    page.click("#pg-send")
    expect(page.locator(".pg-column[data-column='main'] .pg-assistant .pg-tokens")).to_contain_text("completion tokens")
    watch.assert_clean("playground stream")

    # The header's role menu submits itself when a role is chosen (no inline onchange).
    page.locator("select[name=role]").select_option("PUBLIC")
    expect(page.locator(".messages")).to_contain_text("Now using role PUBLIC.")
    page.locator("select[name=role]").select_option("ACCOUNTADMIN")
    expect(page.locator(".messages")).to_contain_text("Now using role ACCOUNTADMIN.")
    watch.assert_clean("role menu")


def test_a_new_tokens_secret_is_never_cached(login):
    page = login("admin")
    watch = Watch(page)
    assert "no-store" in watch.visit("/account/tokens/").headers["cache-control"]

    page.fill("input[name=name]", f"csp {uuid.uuid4().hex[:6]}")
    with page.expect_navigation() as created:
        page.get_by_role("button", name="Create token").click()

    assert re.fullmatch(r"sft_\S+", page.locator("#token-secret").inner_text())
    assert "no-store" in created.value.headers["cache-control"].split(", ")
    watch.assert_clean("token page")


def test_the_admin_console_has_the_policy_and_breaks_none_of_it(login, pages):
    page = login("admin")
    watch = Watch(page)
    admin_id = get_user_model().objects.get(username="admin").pk
    for path in ("/admin/",
                 "/admin/models_registry/finetunedmodel/",  # no actions of its own
                 f"/admin/models_registry/finetunedmodel/?q={pages['model'].name}",
                 "/admin/jobs/finetunejob/",  # with actions
                 "/admin/access/role/", "/admin/inference/inferenceserver/", "/admin/catalog/basemodel/",
                 f"/admin/models_registry/finetunedmodel/{pages['model'].pk}/change/",
                 f"/admin/auth/user/{admin_id}/change/"):
        watch.visit(path)
        watch.assert_clean(path)
    # Django's own scripts run: the theme toggle switches the theme.
    watch.visit("/admin/")
    before = page.evaluate("document.documentElement.dataset.theme || 'auto'")
    page.locator("button.theme-toggle").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") != before
    watch.assert_clean("admin theme toggle")


def test_the_sign_in_page_has_the_policy_and_breaks_none_of_it(chromium, web_url, stack):
    context = chromium.new_context(base_url=web_url)
    try:
        page = context.new_page()
        watch = Watch(page)
        watch.visit("/accounts/login/")
        watch.visit("/admin/login/")
        watch.assert_clean("sign-in pages")
    finally:
        context.close()
