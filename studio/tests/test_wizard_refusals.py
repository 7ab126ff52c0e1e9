"""A refusal from FINETUNE CREATE, started from the wizard's review, is shown on the step that changes the
argument it names (UserError.field), and the statement the review shows gets the very same message in
SQL. Each case walks the happy path, then breaks one thing before Start."""
from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model

from access.session import Session
from catalog.models import BaseModel
from errors import UserError
from jobs.models import FineTuneJob
from sqlengine.executor import Executor
from studio.tests.test_wizard import account, ana, walk_to  # noqa: F401 (fixtures)
from tests.support.cortex import admin_session, make_table
from warehouses.models import Warehouse

VALIDATION = {"validation": {"table": "WIZ.PUBLIC.HELD_OUT"}}


def admin(*statements: str) -> None:
    for statement in statements:
        Executor(admin_session()).execute(statement)


def private_warehouse() -> None:
    Warehouse.objects.create(name="PRIVATE_WH")
    admin("GRANT USAGE ON WAREHOUSE private_wh TO ROLE ui_analyst")


def draft_name(client, name: str) -> None:
    """A draft whose name the name step would not have let through (the review still renders it)."""
    session = client.session
    session["finetune_wizard"] = session["finetune_wizard"] | {"name": name}
    session.save()


@dataclass(frozen=True)
class Case:
    field: str
    step: str
    label: str
    says: str  # a part of the message
    before: Callable = lambda tmp_path: None  # runs before the walk
    breaks: Callable = lambda client, tmp_path: None  # runs between the walk and Start
    walk: dict = field(default_factory=dict)


CASES = {
    "base model not installed": Case("base_model", "model", "Base model", "is not installed",
                                     walk={"model": {"base_model": "mistral-7b"}}),
    "base model disabled": Case("base_model", "model", "Base model", "is disabled",
                                breaks=lambda c, t: BaseModel.objects.filter(name="tiny-llama").update(enabled=False)),
    "role lost CORTEX_USER": Case(
        "role", "role", "Role", "function 'FINETUNE'",
        breaks=lambda c, t: admin("REVOKE DATABASE ROLE SNOWFLAKE.CORTEX_USER FROM ROLE ui_analyst")),
    "warehouse usage revoked": Case(
        "warehouse", "role", "Warehouse", "warehouse 'PRIVATE_WH'",
        before=lambda t: private_warehouse(),
        breaks=lambda c, t: admin("REVOKE USAGE ON WAREHOUSE private_wh FROM ROLE ui_analyst"),
        walk={"role": {"role": "UI_ANALYST", "warehouse": "PRIVATE_WH"}}),
    "warehouse dropped": Case(
        "warehouse", "role", "Warehouse", "Warehouse 'PRIVATE_WH' does not exist",
        before=lambda t: private_warehouse(),
        breaks=lambda c, t: Warehouse.objects.filter(name="PRIVATE_WH").delete(),
        walk={"role": {"role": "UI_ANALYST", "warehouse": "PRIVATE_WH"}}),
    "schema dropped": Case(
        "schema", "database", "Database", "Schema 'WIZ.MODELS' does not exist",
        before=lambda t: admin("CREATE SCHEMA wiz.models",
                               "GRANT USAGE, CREATE MODEL ON SCHEMA wiz.models TO ROLE ui_analyst"),
        breaks=lambda c, t: admin("DROP SCHEMA wiz.models"), walk={"database": {"location": "WIZ.MODELS"}}),
    "CREATE MODEL revoked": Case(
        "schema", "database", "Database", "Insufficient privileges to operate on schema 'PUBLIC'",
        breaks=lambda c, t: admin("REVOKE CREATE MODEL ON SCHEMA wiz.public FROM ROLE ui_analyst")),
    "name with a fourth part": Case("name", "name", "Model name", "Invalid identifier",
                                    breaks=lambda c, t: draft_name(c, "parcel.helper")),
    "training table no longer readable": Case(
        "training_data", "training", "Training data", "the training query failed",
        breaks=lambda c, t: admin("REVOKE SELECT ON TABLE wiz.public.tickets FROM ROLE ui_analyst")),
    "prompt column not text": Case("prompt", "prompt", "Prompt column", "PROMPT is",
                                   walk={"prompt": {"column": "ticket"}}),
    "completion column not text": Case("completion", "completion", "Completion column", "COMPLETION is",
                                       walk={"completion": {"column": "ticket"}}),
    "validation table no longer readable": Case(
        "validation_data", "validation", "Validation data", "the validation query failed", walk=VALIDATION,
        breaks=lambda c, t: admin("REVOKE SELECT ON TABLE wiz.public.held_out FROM ROLE ui_analyst")),
    # The validation query's PROMPT is the training query's column: another validation table fixes it.
    "validation prompt column not text": Case(
        "validation_data", "validation", "Validation data", "PROMPT is", walk=VALIDATION,
        breaks=lambda c, t: make_table(t, "WIZ", "HELD_OUT", [{"ticket": 1, "question": 7, "answer": "a"}])),
}


def shown(pattern: str, page: str) -> str:
    return html.unescape(re.search(pattern, page, re.S).group(1))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_refusal_from_create_lands_on_the_step_of_its_argument_with_the_message_sql_gets(ana, tmp_path, case):
    case.before(tmp_path)
    walk_to(ana, "validation", **case.walk)
    case.breaks(ana, tmp_path)
    sql = shown(r'<code class="query">(.*?)</code>', ana.get("/studio/fine-tune/review/").content.decode())

    response = ana.post("/studio/fine-tune/review/", {"direction": "start"})
    assert response.url == f"/studio/fine-tune/{case.step}/"
    page = ana.get(response.url).content.decode()
    label, message = re.search(r'id="create-error"><strong>(.*?):</strong> (.*?)</p>', page, re.S).groups()
    assert (label, case.says in html.unescape(message)) == (case.label, True), html.unescape(message)
    assert FineTuneJob.objects.count() == 0

    warehouse = case.walk.get("role", {}).get("warehouse", "COMPUTE_WH")
    as_ana = Session(get_user_model().objects.get(username="ana"), role="UI_ANALYST", warehouse=warehouse)
    with pytest.raises(UserError) as caught:
        Executor(as_ana).execute(sql)
    assert caught.value.message == html.unescape(message)
    assert caught.value.field == case.field
