"""The Models pages in a real browser: from the registry to a model's page, GRANT USAGE to a role and
REVOKE it again without leaving the page, then the admin console. Screenshots: model.png, admin.png."""
from __future__ import annotations

import datetime
import uuid

import pytest
from django.utils import timezone

from access.models import Grant
from catalog import accountdata
from inference.models import CompletionUsage
from models_registry.models import FineTunedModel
from studio.tests.browser.support import requires_chromium, screenshot
from tests.support.cortex import admin_session, sql_value

DATABASE = "UI_MODELS"

pytestmark = requires_chromium


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def tuned(stack, tmp_path):
    """A model owned by ACCOUNTADMIN with a few days of usage, and a role to grant it to (unique names:
    the browser tests share one committed database)."""
    suffix = uuid.uuid4().hex[:6].upper()
    accountdata.create_database(DATABASE, if_not_exists=True)
    model = FineTunedModel.objects.create(
        schema=accountdata.get_schema(DATABASE, "PUBLIC"), name=f"SUPPORT_{suffix}", base_model="tiny-llama",
        owner_role="ACCOUNTADMIN", adapter_path=str(tmp_path / "adapter"),
        metrics={"training_loss": 0.41, "validation_loss": 0.52, "trained_tokens": 2048, "epochs": 2})
    role = f"UI_READERS_{suffix}"
    sql_value(admin_session(), f"CREATE ROLE {role}")
    today = timezone.now()
    CompletionUsage.objects.bulk_create([CompletionUsage(
        user_name="admin", role="ACCOUNTADMIN", model_name=model.qualified_name, base_model="tiny-llama",
        entry_point="sql", input_tokens=40 * (day + 1), output_tokens=20, status="SUCCESS",
        started_on=today - datetime.timedelta(days=day)) for day in (0, 1, 3)])
    yield model, role
    CompletionUsage.objects.filter(model_name=model.qualified_name).delete()
    Grant.objects.filter(object_name=model.qualified_name).delete()
    model.delete()
    sql_value(admin_session(), f"DROP ROLE IF EXISTS {role}")


def test_grant_and_revoke_usage_from_the_models_page(login, tuned):
    model, role = tuned
    page = login("admin")
    page.goto(f"/models/?q={model.name}")
    page.get_by_role("link", name=model.name).click()
    page.wait_for_url(f"**/models/{model.qualified_name}/")
    expect(page.locator("nav.sidenav a.active")).to_have_text("Models")
    expect(page.locator(".page-head h1")).to_have_text(model.qualified_name)
    expect(page.get_by_role("link", name="Open in playground")).to_have_attribute(
        "href", f"/playground/?model={model.qualified_name}")
    assert page.locator("#usage rect.bar").count() == 3

    page.fill("#grant-role", role.lower())  # an unquoted identifier: stored upper-case
    page.get_by_role("button", name="Grant", exact=True).click()
    row = page.locator(f"#grants tr[data-grantee='{role}']")
    expect(row).to_contain_text("USAGE")
    expect(page.locator("#grants .message")).to_have_text(f"Granted USAGE on {model.qualified_name} to role {role}.")
    assert Grant.objects.filter(object_name=model.qualified_name, grantee_name=role, privilege="USAGE").exists()
    screenshot(page, "model")

    row.get_by_role("button", name=f"Revoke USAGE from {role}").click()
    expect(row).to_have_count(0)
    expect(page.locator("#grants .message")).to_have_text(f"Revoked USAGE on {model.qualified_name} from role {role}.")
    assert not Grant.objects.filter(object_name=model.qualified_name, grantee_name=role).exists()

    page.get_by_role("link", name="Admin").click()
    page.wait_for_url("**/admin/")
    expect(page.get_by_role("link", name="← Back to the studio")).to_be_visible()
    screenshot(page, "admin")
