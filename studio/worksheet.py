"""The SQL worksheet: run statements in the browser, one result grid per statement; saved worksheets.

The session (role, warehouse, database, schema), the text and the last statements' history live in the
Django session, so USE carries over from one run to the next and a reload keeps what was typed. Each run
opens its session from those names again through access/roles.open_session, with USE's checks: a database
whose USAGE was revoked since is refused, not used. Saved worksheets are rows of studio.models.Worksheet
that only their owner lists or opens. Works as plain form posts; with htmx only the results fragment is
swapped.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import sqlglot
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from access.roles import open_session
from access.session import Session
from access.web import current_role, current_warehouse
from errors import UserError
from sqlapi.resultsets import infer_type
from sqlengine.executor import Executor
from sqlengine.parsing import parse
from sqlengine.redaction import redact
from sqlengine.results import format_value
from studio.models import Worksheet

SESSION_KEY = "worksheet"
HISTORY_LENGTH = 20
MAX_ROWS_SHOWN = 1000  # the page stays usable; the SQL API returns everything
SESSION_FIELDS = ("role", "warehouse", "database", "schema")
NAME_LENGTH = Worksheet._meta.get_field("name").max_length
INFERRED_TYPE_NAMES = {"fixed": "NUMBER", "real": "FLOAT"}


@dataclass
class Statement:
    """One statement of the worksheet's text and where it is: offsets into the text, 1-based line and column."""

    text: str
    start: int
    end: int
    line: int
    column: int
    number: int = 1


@dataclass
class Outcome:
    """One statement's result (or error) as the page shows it."""

    statement: Statement
    duration_ms: int
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, Snowflake type)
    rows: list[list[tuple[str, bool]]] = field(default_factory=list)  # (cell text, is NULL)
    row_count: int = 0
    error: UserError | None = None

    @property
    def text(self) -> str:
        return self.statement.text

    @property
    def error_code(self) -> str:
        return f"{self.error.code:06d}" if self.error else ""

    @property
    def truncated(self) -> bool:
        return self.row_count > len(self.rows)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def split_statements(text: str, offset: int = 0, full_text: str | None = None) -> list[Statement]:
    """The statements of `text` (split at semicolons outside strings and comments), each with its place
    in `full_text`, where `text` starts at `offset` (a selection)."""
    full_text = text if full_text is None else full_text
    try:
        tokens = sqlglot.tokenize(text, read="snowflake")
    except sqlglot.errors.TokenError:
        tokens = None  # an unterminated string: parse() words the error, for the whole text
    groups: list[list] = [[]]
    for token in tokens or []:
        if token.token_type == sqlglot.tokens.TokenType.SEMICOLON:
            groups.append([])
        else:
            groups[-1].append(token)
    if tokens is None:
        stripped = text.strip()
        groups_bounds = [(text.index(stripped), text.index(stripped) + len(stripped))] if stripped else []
    else:
        groups_bounds = [(g[0].start, g[-1].end + 1) for g in groups if g]
    statements = []
    for number, (start, end) in enumerate(groups_bounds, 1):
        line, column = _position(full_text, offset + start)
        statements.append(Statement(text[start:end], offset + start, offset + end, line, column, number))
    return statements


def _column_types(result) -> list[str]:
    if result.types and len(result.types) == len(result.columns):
        return [str(t or "") for t in result.types]
    # The SQL API's rowType kinds, in the type names Snowflake's grids show.
    return [INFERRED_TYPE_NAMES.get(kind, kind.upper()) for kind in
            (infer_type([row[i] for row in result.rows[:100]]) for i in range(len(result.columns)))]


def _with_absolute_line(error: UserError, statement: Statement) -> UserError:
    """A syntax error names the line inside its statement; the editor's line is what the user can find."""
    match = re.search(r"syntax error line (\d+) at position", error.message)
    if not match:
        return error
    line = statement.line + int(match.group(1)) - 1
    message = error.message[:match.start(1)] + str(line) + error.message[match.end(1):]
    return UserError(message, code=error.code, sqlstate=error.sqlstate)


def run_statements(session: Session, statements: list[Statement]) -> list[Outcome]:
    """Run the statements in order; stops at the first error, which ends the list."""
    executor = Executor(session)
    outcomes = []
    for statement in statements:
        started = time.monotonic()
        try:
            for parsed in parse(statement.text):
                result = executor.run(parsed)
        except UserError as error:
            outcomes.append(Outcome(statement, _ms_since(started), error=_with_absolute_line(error, statement)))
            break
        rows = [[(format_value(v), v is None) for v in row] for row in result.rows[:MAX_ROWS_SHOWN]]
        outcomes.append(Outcome(statement, _ms_since(started), list(zip(map(str, result.columns), _column_types(result))),
                                rows, len(result.rows)))
    return outcomes


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# -- the session's state ---------------------------------------------------------------------------

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


def _remember(state: dict, session: Session, text: str, outcomes: list[Outcome]) -> None:
    state.update({name: getattr(session, name) for name in SESSION_FIELDS}, text=text)
    now = timezone.localtime().strftime("%H:%M:%S")
    entries = [{"text": redact(o.text)[:2000], "status": "failed" if o.error else "success", "duration_ms": o.duration_ms,
                "rows": o.row_count, "error": o.error_code, "at": now} for o in outcomes]
    state["history"] = (list(reversed(entries)) + state["history"])[:HISTORY_LENGTH]


def _selection(request, text: str) -> tuple[int, int] | None:
    """The selected range to run, from the editor's selection_start/selection_end; None runs everything."""
    try:
        start, end = int(request.POST.get("selection_start", "")), int(request.POST.get("selection_end", ""))
    except ValueError:
        return None
    if not 0 <= start < end <= len(text) or not text[start:end].strip():
        return None
    return start, end


def _owned(request, pk) -> Worksheet | None:
    if not pk:
        return None
    return Worksheet.objects.filter(pk=pk, owner=request.user).first()


def _render(request, context: dict, status: int = 200):
    if request.htmx:  # a Save refused: its reason where results go
        return render(request, "studio/_worksheet_results.html", {**context, "part": "results"}, status=status)
    context.setdefault("outcomes", [])
    context.setdefault("problem", None)
    context["saved"] = Worksheet.objects.filter(owner=request.user).only("pk", "name", "updated")
    return render(request, "studio/worksheet.html", context, status=status)


# -- views -----------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def worksheet(request):
    state = _state(request)
    if request.method == "GET" and request.GET.get("new"):
        state.update(text="", current=None)
        request.session[SESSION_KEY] = state
    context = {"state": state, "outcomes": [], "text": state.get("text", ""), "problem": None,
               "current": _owned(request, request.POST.get("worksheet") or state.get("current"))}
    status = 200
    if request.method == "POST":
        text = request.POST.get("sql", "").replace("\r\n", "\n")
        context["text"] = text
        selection = _selection(request, text)
        statements = split_statements(text[slice(*selection)], selection[0], text) if selection else split_statements(text)
        if not statements:
            context["problem"] = "Type one or more SQL statements first."
            status = 400
        else:
            context["ran"] = len(statements)
            try:
                session = open_session(request.user, **{name: state.get(name) for name in SESSION_FIELDS},
                                       entry_point="worksheet")
            except UserError as error:
                # What earlier runs made current is no longer allowed (a grant revoked since, or a session
                # edited by hand): nothing runs, and the next run starts from the header's role and warehouse.
                context["outcomes"] = [Outcome(statements[0], 0, error=error)]
                state.update(state["web"], database=None, schema=None, text=text)
            else:
                context["outcomes"] = run_statements(session, statements)
                _remember(state, session, text, context["outcomes"])
        state["current"] = context["current"].pk if context["current"] else None
        request.session[SESSION_KEY] = state
    if request.htmx:
        return render(request, "studio/_worksheet_results.html", {**context, "oob": True}, status=status)
    return _render(request, context, status)


@login_required
@require_http_methods(["GET"])
def open_saved(request, pk: int):
    sheet = get_object_or_404(Worksheet, pk=pk, owner=request.user)
    state = _state(request)
    state.update(text=sheet.text, current=sheet.pk)
    request.session[SESSION_KEY] = state
    return _render(request, {"state": state, "text": sheet.text, "current": sheet})


def _clean_name(request) -> str:
    return " ".join(request.POST.get("name", "").split())[:NAME_LENGTH]


@login_required
@require_POST
def save(request):
    """Save the editor's text: into the open worksheet (renamed if the name changed), else as a new one."""
    text = request.POST.get("sql", "").replace("\r\n", "\n")
    name = _clean_name(request)
    sheet = _owned(request, request.POST.get("worksheet"))
    state = _state(request)
    if not name:
        return _render(request, {"state": state, "text": text, "current": sheet,
                                 "problem": "Name the worksheet to save it."}, status=400)
    try:
        with transaction.atomic():  # a savepoint: the unique name's IntegrityError leaves the request usable
            sheet = _store(request, sheet, name, text)
    except IntegrityError:
        return _render(request, {"state": state, "text": text, "current": _owned(request, request.POST.get("worksheet")),
                                 "problem": f"You already have a worksheet named '{name}'."}, status=400)
    messages.success(request, f"Saved worksheet '{sheet.name}'.")
    if request.htmx:  # the editor's form posts through htmx: the browser goes to the saved worksheet's page
        return HttpResponseClientRedirect(reverse("worksheet_open", args=[sheet.pk]))
    return redirect("worksheet_open", pk=sheet.pk)


def _store(request, sheet: Worksheet | None, name: str, text: str) -> Worksheet:
    if sheet is None:
        return Worksheet.objects.create(owner=request.user, name=name, text=text)
    sheet.name, sheet.text = name, text
    sheet.save(update_fields=["name", "text", "updated"])
    return sheet


@login_required
@require_POST
def rename(request, pk: int):
    sheet = get_object_or_404(Worksheet, pk=pk, owner=request.user)
    name = _clean_name(request)
    if not name:
        messages.error(request, "A worksheet needs a name.")
    elif Worksheet.objects.filter(owner=request.user, name=name).exclude(pk=pk).exists():
        messages.error(request, f"You already have a worksheet named '{name}'.")
    else:
        sheet.name = name
        sheet.save(update_fields=["name", "updated"])
        messages.success(request, f"Renamed to '{name}'.")
    return redirect("worksheet_open", pk=sheet.pk)


@login_required
@require_POST
def delete(request, pk: int):
    sheet = get_object_or_404(Worksheet, pk=pk, owner=request.user)
    sheet.delete()
    state = _state(request)
    if state.get("current") == pk:
        state["current"] = None
        request.session[SESSION_KEY] = state
    messages.success(request, f"Deleted worksheet '{sheet.name}'.")
    return redirect("worksheet")
