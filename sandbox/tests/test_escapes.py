"""Every escape attempt of sandbox/tests/escapes.py, as the low-privilege role, through every entry point it
applies to: it is refused with Snowflake's error, nothing secret is in any response, and nothing in the
account changed (no job, no table, no row)."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils.html import escape

from catalog.models import BaseModel, SchemaObject
from errors import UserError
from inference.models import CompletionUsage
from jobs.data_preview import preview
from jobs.models import FineTuneJob
from sandbox.tests.escapes import QUERIES, STATEMENTS
from sqlengine.executor import Executor
from tests.support.cortex import sql_literal
from tests.support.security import PUBLIC_ROWS, SECRET_ROWS, leaks

REFUSED_QUERIES = [(sql, expected) for sql, expected in QUERIES if expected is not None]
# The cast may INSERT into PUB.S.SINK; with UPDATE and DELETE too, only what those statements read refuses them.
SINK_GRANT = "GRANT UPDATE, DELETE ON TABLE pub.s.sink TO ROLE low"
ANSWERED_QUERIES = [sql for sql, expected in QUERIES if expected is None]


def test_the_corpus_has_at_least_sixty_attempts():
    assert len(REFUSED_QUERIES) + len(STATEMENTS) >= 60


def reason(message: str) -> str:
    """An error without the prefixes an entry point adds (which query of a job it concerns)."""
    for prefix in ("SQL compilation error: ", "the training query failed: ", "the validation query failed: "):
        message = message.removeprefix(prefix)
    return message


class Outcomes:
    """Collects what went wrong over a whole corpus, so one run names every attempt that got through."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def refused(self, sql: str, expected: str, message: str | None, shown: object = "") -> None:
        if message is None:
            self.problems.append(f"ran: {sql} -> {str(shown)[:200]}")
        elif not reason(message).startswith(reason(expected)):
            self.problems.append(f"wrong error: {sql} -> {message}")
        if leaks(message) or leaks(shown):
            self.problems.append(f"LEAK: {sql} -> {message} {str(shown)[:200]}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def unchanged(account) -> None:
    """The secret table and the low role's writable table are as the cast left them."""
    admin = Executor(account.admin)
    assert admin.execute("SELECT * FROM acc.s.t ORDER BY id")[-1].rows == SECRET_ROWS
    assert admin.execute("SELECT COUNT(*) FROM pub.s.sink")[-1].rows == [(0,)]
    assert admin.execute("SELECT * FROM pub.s.x ORDER BY id")[-1].rows == PUBLIC_ROWS


def test_every_attempt_is_refused_through_sql(low_account):
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES + STATEMENTS:
        try:
            result = low_account.sql(sql, database="PUB", schema="S")
            outcomes.refused(sql, expected, None, result[-1].rows)
        except UserError as error:
            outcomes.refused(sql, expected, error.message)
    outcomes.check()
    unchanged(low_account)


def test_every_attempt_is_refused_through_manage_py_sql(low_account):
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES + STATEMENTS:
        try:
            call_command("sql", "-e", sql, "--user", "low", "--role", "low", "--database", "pub", "--schema", "s",
                         stdout=open("/dev/null", "w"))
            outcomes.refused(sql, expected, None, "(printed rows)")
        except CommandError as error:
            # manage.py sql prints Snowflake's errno and SQLSTATE first: 002003 (02000): SQL compilation error…
            code, _, message = str(error).partition(": ")
            outcomes.refused(sql, expected, message)
            assert code[:6].isdigit() and code[7] == "(", str(error)
    outcomes.check()
    unchanged(low_account)


def test_every_attempt_is_refused_through_the_sql_api(committed_low_account, client):
    outcomes = Outcomes()
    headers = {"Authorization": f"Bearer {committed_low_account.token}"}
    for sql, expected in REFUSED_QUERIES + STATEMENTS:
        body = {"statement": sql, "database": "PUB", "schema": "S", "role": "LOW"}
        if ";" in sql:
            body["parameters"] = {"MULTI_STATEMENT_COUNT": "0"}
        response = client.post("/api/v2/statements", json.dumps(body), content_type="application/json",
                               headers=headers)
        payload = response.json()
        if response.status_code == 200 and "statementHandle" in payload and body.get("parameters"):
            # A multi-statement request reports the failing statement in the parent's message.
            pass
        if response.status_code in (200, 202) and "data" in payload and not payload.get("message", "").startswith(
                "Statement executed"):
            outcomes.refused(sql, expected, None, payload.get("data"))
            continue
        assert response.status_code in (200, 422), (sql, response.status_code, payload)
        if response.status_code == 422:
            assert payload["sqlState"] and payload["code"].isdigit(), payload
        outcomes.refused(sql, expected, payload["message"], json.dumps(payload))
    outcomes.check()
    unchanged(committed_low_account)


def test_every_attempt_is_refused_through_the_worksheet(low_account):
    browser = Client()
    assert browser.login(username="low", password="low-password")
    browser.post("/worksheets/", {"sql": "USE ROLE low; USE SCHEMA pub.s"})
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES + STATEMENTS:
        # The results fragment, without the statements it echoes in the history (the attempts' own text,
        # which may name a secret table).
        fragment = browser.post("/worksheets/", {"sql": sql}, headers={"HX-Request": "true"}).content.decode()
        if 'class="error ws-error"' not in fragment:
            outcomes.refused(sql, expected, None, fragment[-400:])
            continue
        if escape(reason(expected)) not in fragment:
            outcomes.problems.append(f"wrong error: {sql} -> {fragment[fragment.find('error'):][:300]}")
        for sent, _ in REFUSED_QUERIES + STATEMENTS:
            fragment = fragment.replace(escape(sent), "")
        if leaks(fragment):
            outcomes.problems.append(f"LEAK: {sql}")
    outcomes.check()
    unchanged(low_account)


@pytest.fixture(autouse=True)
def sink_grants(request):
    for name in ("low_account", "committed_low_account"):
        if name in request.fixturenames:
            Executor(request.getfixturevalue(name).admin).execute(SINK_GRANT)


@pytest.fixture
def low_with_a_base_model(low_account, tiny_llama):
    return low_account


def test_every_query_is_refused_as_a_finetune_training_or_validation_query(low_with_a_base_model):
    account = low_with_a_base_model
    good = "SELECT note AS prompt, note AS completion FROM pub.s.x"
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES:
        for training, validation in ((sql, None), (good, sql)):
            call = (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'pub.s.loot', 'tiny-llama', {sql_literal(training)}, "
                    f"{sql_literal(validation) if validation else 'NULL'})")
            try:
                account.sql(call, database="PUB", schema="S")
                outcomes.refused(sql, expected, None, "a job was created")
            except UserError as error:
                purpose = "training" if validation is None else "validation"
                if f"the {purpose} query" not in error.message and not expected.startswith("Insufficient"):
                    outcomes.problems.append(f"not named as the {purpose} query: {sql} -> {error.message}")
                outcomes.refused(sql, expected, error.message)
    outcomes.check()
    assert not FineTuneJob.objects.exists()
    unchanged(account)


def test_every_query_is_refused_as_the_wizards_preview(low_with_a_base_model):
    account = low_with_a_base_model
    base = BaseModel.objects.get(name="tiny-llama")
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES:
        try:
            shown = preview(account.session(database="PUB", schema="S"), base, sql)
            outcomes.refused(sql, expected, None, shown)
        except UserError as error:
            outcomes.refused(sql, expected, error.message)
    outcomes.check()


def test_every_query_is_refused_as_the_rows_of_complete(low_account):
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES:
        wrapped = f"SELECT SNOWFLAKE.CORTEX.COMPLETE('smollm2-135m', 'Say yes.') FROM ({sql}) AS q"
        try:
            outcomes.refused(sql, expected, None, low_account.sql(wrapped, database="PUB", schema="S")[-1].rows)
        except UserError as error:
            outcomes.refused(sql, expected, error.message)
    outcomes.check()
    assert not CompletionUsage.objects.exists()


@pytest.mark.parametrize("make", [
    "CREATE TABLE pub.s.loot AS {q}",
    "CREATE VIEW pub.s.loot AS {q}",
    "INSERT INTO pub.s.sink SELECT 1, CAST(COUNT(*) AS VARCHAR) FROM ({q}) AS q",
])
def test_every_query_is_refused_inside_a_statement_that_writes(low_account, make):
    Executor(low_account.admin).execute("GRANT CREATE TABLE, CREATE VIEW ON SCHEMA pub.s TO ROLE low")
    outcomes = Outcomes()
    for sql, expected in REFUSED_QUERIES:
        try:
            outcomes.refused(sql, expected, None, low_account.sql(make.format(q=sql), database="PUB", schema="S"))
        except UserError as error:
            outcomes.refused(sql, expected, error.message)
    outcomes.check()
    assert not SchemaObject.objects.filter(name="LOOT").exists()
    assert Executor(low_account.admin).execute("SHOW TABLES LIKE 'LOOT' IN ACCOUNT")[-1].rows == []
    unchanged(low_account)


def test_what_the_metadata_queries_answer_holds_nothing_of_acc(low_account):
    for sql in ANSWERED_QUERIES:
        rows = low_account.sql(sql, database="PUB", schema="S")[-1].rows
        assert not leaks(rows) and "ACC" not in str(rows), (sql, rows)
