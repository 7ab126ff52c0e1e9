"""The SQL worksheet: run statements in the browser, one result table per statement.

The session (role, warehouse, database, schema), the text and the last statements' history live in the
Django session, so USE carries over from one run to the next and a reload keeps what was typed. Works
as a plain form post; with htmx only the results fragment is swapped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from access.session import Session
from access.web import current_role, current_warehouse
from sqlengine.executor import Executor
from sqlengine.parsing import parse
from sqlengine.results import format_value
from sqlengine.statements.users import redact
from studio.errors import StudioError

SESSION_KEY = "worksheet"
HISTORY_LENGTH = 20
MAX_ROWS_SHOWN = 1000  # the page stays usable; the SQL API returns everything
SESSION_FIELDS = ("role", "warehouse", "database", "schema")


@dataclass
class Outcome:
    """One statement's result (or error) as the page shows it."""

    text: str
    duration_ms: int
    columns: list[str] = field(default_factory=list)
    rows: list[list[tuple[str, bool]]] = field(default_factory=list)  # (cell text, is NULL)
    row_count: int = 0
    error: StudioError | None = None

    @property
    def error_code(self) -> str:
        return f"{self.error.code:06d}" if self.error else ""

    @property
    def truncated(self) -> bool:
        return self.row_count > len(self.rows)


def _state(request) -> dict:
    state = request.session.get(SESSION_KEY)
    if not state:
        state = {"database": None, "schema": None, "text": "", "history": []}
    # The worksheet starts from the header menus' role and warehouse, and follows them when they change;
    # a USE ROLE / USE WAREHOUSE run in the worksheet holds until the next switch in the header.
    web = {"role": current_role(request), "warehouse": current_warehouse(request)}
    if state.get("web") != web:
        state.update(web, web=web)
    return state


def run_statements(session: Session, text: str) -> list[Outcome]:
    """Run `text` statement by statement; stops at the first error, which ends the list."""
    started = time.monotonic()
    try:
        statements = parse(text)
    except StudioError as error:
        return [Outcome(text.strip(), _ms_since(started), error=error)]
    executor = Executor(session)
    executor.entry_point = "worksheet"
    outcomes = []
    for statement in statements:
        started = time.monotonic()
        sql = statement.sql(dialect="snowflake")
        try:
            result = executor.run(statement)
        except StudioError as error:
            outcomes.append(Outcome(sql, _ms_since(started), error=error))
            break
        rows = [[(format_value(v), v is None) for v in row] for row in result.rows[:MAX_ROWS_SHOWN]]
        outcomes.append(Outcome(sql, _ms_since(started), [str(c) for c in result.columns], rows, len(result.rows)))
    return outcomes


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _remember(state: dict, session: Session, text: str, outcomes: list[Outcome]) -> None:
    state.update({name: getattr(session, name) for name in SESSION_FIELDS}, text=text)
    now = timezone.localtime().strftime("%H:%M:%S")
    entries = [{"text": redact(o.text)[:300], "status": "failed" if o.error else "success", "duration_ms": o.duration_ms,
                "rows": o.row_count, "error": o.error_code, "at": now} for o in outcomes]
    state["history"] = (list(reversed(entries)) + state["history"])[:HISTORY_LENGTH]


@login_required
@require_http_methods(["GET", "POST"])
def worksheet(request):
    state = _state(request)
    context = {"state": state, "outcomes": [], "text": state.get("text", ""), "problem": None}
    status = 200
    if request.method == "POST":
        text = request.POST.get("sql", "")
        context["text"] = text
        if not text.strip():
            context["problem"] = "Type one or more SQL statements first."
            status = 400
        else:
            session = Session(request.user, **{name: state.get(name) for name in SESSION_FIELDS})
            context["outcomes"] = run_statements(session, text)
            _remember(state, session, text, context["outcomes"])
            request.session[SESSION_KEY] = state
    if request.htmx:
        return render(request, "studio/_worksheet_results.html", {**context, "oob": True}, status=status)
    return render(request, "studio/worksheet.html", context, status=status)
