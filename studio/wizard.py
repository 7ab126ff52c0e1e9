"""The fine-tune wizard (AI & ML » Studio » Create Custom LLM » Fine-tune), Snowsight's steps in order:
base model; role and warehouse; where to store the model; its name; training table or view; prompt
column; completion column; validation table or skip; review and start.

The draft is kept server-side in the user's Django session, so Back, Forward and a refresh keep every
choice; "Start over" clears it. Each step lists only what the service layer offers the wizard's role
(SHOW, DESCRIBE and SELECT run through the SQL executor; privileges.* decide roles, warehouses and
schemas), previews data through jobs.data_preview, and the job is started by finetune.create, the
function FINETUNE('CREATE') calls, with the chosen role and warehouse. Its refusals are shown on the
step they concern.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import privileges
from access.roles import may_use_role, usable_roles, visible_warehouses, warehouse_access
from access.session import Session
from access.web import session_for
from catalog.identifiers import QualifiedName, quote, split_parts
from catalog.models import BaseModel
from errors import UserError
from jobs import data_preview, finetune
from jobs.models import FineTuneJob
from jobs.training_data import check_query
from models_registry.registry import name_if_finished_now
from sqlengine import show
from sqlengine.executor import Executor
from studio import wizard_forms as forms

DRAFT_KEY = "finetune_wizard"
FIRST_ROWS = 8


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    fields: tuple[str, ...]  # draft keys this step sets; the step is done when all are set


STEPS = (
    Step("model", "Base model", ("base_model",)),
    Step("role", "Role and warehouse", ("role", "warehouse")),
    Step("database", "Database", ("database", "schema")),
    Step("name", "Model name", ("name",)),
    Step("training", "Training data", ("training",)),
    Step("prompt", "Prompt column", ("prompt",)),
    Step("completion", "Completion column", ("completion",)),
    Step("validation", "Validation data", ("validation",)),
    Step("review", "Review and start", ()),
)
STEP_KEYS = [s.key for s in STEPS]


# The draft ------------------------------------------------------------------------------------------

class Draft:
    """The user's choices so far, in the Django session. A choice that changes clears the choices that
    depend on it (a new table has other columns)."""

    DEPENDENTS = {"role": ("database", "schema", "name", "training", "prompt", "completion", "validation"),
                  "database": ("name",), "schema": ("name",), "training": ("prompt", "completion")}

    def __init__(self, request) -> None:
        self.request = request
        self.data: dict[str, Any] = dict(request.session.get(DRAFT_KEY) or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def update(self, **values: Any) -> None:
        for key, value in values.items():
            if self.data.get(key) != value:
                for dependent in self.DEPENDENTS.get(key, ()):
                    if dependent not in values:
                        self.data.pop(dependent, None)
            self.data[key] = value
        self.save()

    def set_error(self, step: str, field: str, message: str) -> None:
        self.data["error"] = {"step": step, "field": field, "message": message}
        self.save()

    def pop_error(self, step: str) -> dict | None:
        error = self.data.get("error")
        if error and error["step"] == step:
            self.data.pop("error")
            self.save()
            return error
        return None

    def clear(self) -> None:
        self.data = {}
        self.save()

    def save(self) -> None:
        self.request.session[DRAFT_KEY] = self.data

    def done(self, step: Step) -> bool:
        return all(field in self.data for field in step.fields)

    def first_open_step(self) -> Step:
        return next((s for s in STEPS if not self.done(s)), STEPS[-1])

    def reachable(self, step: Step) -> bool:
        return all(self.done(s) for s in STEPS[:STEP_KEYS.index(step.key)])

    @property
    def table(self) -> str | None:
        return self.data.get("training")

    @property
    def validation_table(self) -> str | None:
        return self.data.get("validation") or None

    @property
    def model_location(self) -> str | None:
        if "database" not in self.data:
            return None
        return f"{quote(self.data['database'])}.{quote(self.data['schema'])}"

    def query(self, table: str | None = None, prompt: str | None = None, completion: str | None = None) -> str:
        """The SELECT … AS prompt, … AS completion that FINETUNE reads, as SQL users would write it."""
        return (f"SELECT {quote(prompt or self.data['prompt'])} AS prompt, "
                f"{quote(completion or self.data['completion'])} AS completion FROM {table or self.table}")

    def create_arguments(self) -> dict[str, Any]:
        return {"name": f"{self.model_location}.{self.data['name']}", "base_model": self.data["base_model"],
                "training_query": self.query(),
                "validation_query": self.query(self.validation_table) if self.validation_table else None}


def wizard_session(request, draft: Draft) -> Session:
    """The session the wizard works in: the role and warehouse chosen in it, else the header's. A role
    the user may no longer use falls back to the header's, as session_for does."""
    base = session_for(request)
    role = draft.get("role")
    if not role or not may_use_role(request.user, role):
        role = base.role
    return Session(request.user, role=role, warehouse=draft.get("warehouse") or base.warehouse, entry_point="web")


# What the service layer offers the wizard's role ----------------------------------------------------

def cortex_roles(user) -> list[str]:
    """The user's roles that are granted SNOWFLAKE.CORTEX_USER (directly, inherited, or through the user)."""
    return [role for role in usable_roles(user) if privileges.holds_cortex_user(Session(user, role=role))]


def _show(session: Session, kind: str) -> list[dict]:
    result = show.run(session, show.ShowSpec(kind=kind, scope_kind="ACCOUNT"))
    return [dict(zip(result.columns, row)) for row in result.rows]


def model_locations(session: Session) -> list[str]:
    """`DB.SCHEMA` of each schema where the role may create a model (USAGE, and CREATE MODEL or OWNERSHIP)."""
    found = []
    for schema in _show(session, "SCHEMAS"):
        try:
            privileges.require_create_in_schema(session, "MODEL", schema["database_name"], schema["name"])
        except UserError:
            continue
        found.append(f"{quote(schema['database_name'])}.{quote(schema['name'])}")
    return found


def relations(session: Session) -> list[dict]:
    """The tables and views SHOW lists for the role, each with its qualified name and row count."""
    found = [t | {"kind": "TABLE"} for t in _show(session, "TABLES")]
    found += [v | {"kind": "VIEW", "rows": None} for v in _show(session, "VIEWS")]
    for item in found:
        item["qualified"] = str(QualifiedName(item["database_name"], item["schema_name"], item["name"]))
        item["location"] = f"{quote(item['database_name'])}.{quote(item['schema_name'])}"
    return sorted(found, key=lambda r: r["qualified"])


def columns(session: Session, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns, as DESCRIBE TABLE gives them to the role."""
    result = Executor(session).execute(f"DESCRIBE TABLE {table}")[-1]
    return [(row[0], row[1]) for row in result.rows]


def first_rows(session: Session, table: str):
    return Executor(session).execute(f"SELECT * FROM {table} LIMIT {FIRST_ROWS}")[-1]


# Where CREATE's refusals belong --------------------------------------------------------------------

# The argument a refusal names (finetune.create's fields) -> the step that changes it, and the label the
# refusal is shown under there.
FIELD_STEPS = {
    "base_model": ("model", "Base model"),
    "role": ("role", "Role"),
    "warehouse": ("role", "Warehouse"),
    "schema": ("database", "Database"),
    "name": ("name", "Model name"),
    "training_data": ("training", "Training data"),
    "prompt": ("prompt", "Prompt column"),
    "completion": ("completion", "Completion column"),
    "validation_data": ("validation", "Validation data"),
}
# A refusal naming nothing the wizard has a step for stays where Start was pressed.
UNPLACED = ("review", "Fine-tuning job")


def error_step(error: UserError) -> tuple[str, str]:
    return FIELD_STEPS.get(error.field, UNPLACED)


# Views ----------------------------------------------------------------------------------------------

def _step(key: str) -> Step:
    if key not in STEP_KEYS:
        raise Http404(f"No wizard step {key}")
    return STEPS[STEP_KEYS.index(key)]


def _neighbour(step: Step, offset: int) -> Step | None:
    at = STEP_KEYS.index(step.key) + offset
    return STEPS[at] if 0 <= at < len(STEPS) else None


@login_required
@require_GET
def start(request):
    return redirect("wizard_step", step=Draft(request).first_open_step().key)


@login_required
@require_http_methods(["GET", "POST"])
def step_view(request, step: str):
    draft = Draft(request)
    current = _step(step)
    if not draft.reachable(current):
        return redirect("wizard_step", step=draft.first_open_step().key)
    session = wizard_session(request, draft)
    if current.key == "review":
        return _review(request, draft, session)
    handler = HANDLERS[current.key]
    if request.method == "POST":
        if request.POST.get("direction") == "back":
            previous = _neighbour(current, -1)
            return redirect("wizard_step", step=previous.key) if previous else redirect("wizard_step", step=step)
        form = handler.form(request.POST, draft=draft, session=session, request=request)
        if form.is_valid():
            try:
                handler.save(form, draft, session)
            except StepRefusal as refusal:
                form.add_error(refusal.field, refusal.message)
            except UserError as error:
                form.add_error(handler.field, error.message)
            else:
                draft.pop_error(current.key)
                return redirect("wizard_step", step=_neighbour(current, 1).key)
        return _render_step(request, draft, current, session, form, status=400)
    form = handler.form(None, draft=draft, session=session, request=request)
    return _render_step(request, draft, current, session, form)


def _render_step(request, draft: Draft, step: Step, session: Session, form, *, status: int = 200):
    context = {
        "step": step, "steps": _step_list(draft, step), "draft": draft.data, "form": form,
        "previous": _neighbour(step, -1), "role": session.role, "warehouse": session.warehouse,
        "create_error": draft.pop_error(step.key),
    }
    context |= HANDLERS[step.key].context(draft, session, form)
    return render(request, f"studio/wizard/step_{step.key}.html", context, status=status)


def _step_list(draft: Draft, current: Step) -> list[dict]:
    return [{"step": s, "number": n, "current": s == current, "done": bool(s.fields) and draft.done(s),
             "reachable": draft.reachable(s)} for n, s in enumerate(STEPS, 1)]


def _review(request, draft: Draft, session: Session):
    context = {"step": STEPS[-1], "steps": _step_list(draft, STEPS[-1]), "draft": draft.data,
               "previous": _neighbour(STEPS[-1], -1), "role": session.role, "warehouse": session.warehouse,
               "arguments": draft.create_arguments(), "create_error": draft.pop_error("review")}
    base = BaseModel.objects.filter(name=draft.get("base_model")).first()
    context["base"] = base
    context["final_name"] = _final_name(draft)
    context["sql"] = _sql(context["arguments"])
    if request.method == "GET":
        return render(request, "studio/wizard/step_review.html", context)
    if request.POST.get("direction") == "back":
        return redirect("wizard_step", step="validation")
    try:
        job_id = finetune.create(session, **context["arguments"])
    except UserError as error:
        step, field = error_step(error)
        draft.set_error(step, field, error.message)
        return redirect("wizard_step", step=step)
    draft.clear()
    request.session["finetune_wizard_last_job"] = job_id
    return redirect("wizard_started", job_id=job_id)


def _sql(arguments: dict[str, Any]) -> str:
    def literal(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    parts = ["'CREATE'", literal(arguments["name"]), literal(arguments["base_model"]),
             literal(arguments["training_query"])]
    if arguments["validation_query"]:
        parts.append(literal(arguments["validation_query"]))
    return "SELECT SNOWFLAKE.CORTEX.FINETUNE(\n  " + ",\n  ".join(parts) + "\n);"


def _final_name(draft: Draft, name: str | None = None) -> dict[str, Any]:
    """The model's name as stored, and the name it gets if that one is taken when the job finishes."""
    name = name if name is not None else draft.get("name")
    stored = split_parts(name)[0]
    final = name_if_finished_now(draft.get("database"), draft.get("schema"), stored)
    location = draft.model_location
    return {"stored": f"{location}.{quote(stored)}", "final": f"{location}.{quote(final)}",
            "suffixed": final != stored, "name": stored}


@login_required
@require_POST
def start_over(request):
    Draft(request).clear()
    messages.success(request, "The draft was cleared: choose a base model to start again.")
    return redirect("wizard_step", step="model")


@login_required
@require_GET
def started(request, job_id: str):
    """The last step, as Snowsight shows it: the job started, its Job ID and a link to its page."""
    job = FineTuneJob.objects.filter(pk=job_id, user=request.user).first()
    if job is None:
        raise Http404(f"No fine-tuning job {job_id} started by you")
    return render(request, "studio/wizard/started.html", {"job": job, "steps": None})


# Fragments ------------------------------------------------------------------------------------------

@login_required
@require_GET
def check_name(request):
    """The name step's live check: the identifier rule's verdict and the name the model will get."""
    draft = Draft(request)
    text = request.GET.get("name", "")
    if not text.strip():
        return render(request, "studio/wizard/_name_check.html", {"empty": True})
    try:
        name = forms.check_model_name(text)
        final = _final_name(draft, name) if draft.model_location else None
    except UserError as error:
        return render(request, "studio/wizard/_name_check.html", {"problem": error.message}, status=400)
    return render(request, "studio/wizard/_name_check.html", {"final": final, "typed": name})


def _table_param(request, draft: Draft, session: Session, key: str) -> str | None:
    """The table a preview is for: the one being chosen (a query parameter), else the draft's. It must be
    one SHOW lists for the role."""
    table = request.GET.get("table") or draft.get(key)
    if not table or table == forms.SKIP:
        return None
    if table not in {r["qualified"] for r in relations(session)}:
        raise UserError(f"Table or view {table} does not exist or is not visible to role {session.role}.")
    return table


def _column(request, draft: Draft, key: str) -> str | None:
    """The prompt or completion column a preview shows: the one being chosen (`column` with `as`), else
    the draft's."""
    if request.GET.get("as") == key and request.GET.get("column"):
        return request.GET["column"]
    return draft.get(key)


@login_required
@require_GET
def preview_rows(request):
    """The first rows of the table being chosen, with the chosen prompt and completion columns marked."""
    draft = Draft(request)
    session = wizard_session(request, draft)
    which = "validation" if request.GET.get("which") == "validation" else "training"
    try:
        table = _table_param(request, draft, session, which)
        if table is None:
            return render(request, "studio/wizard/_rows.html", {"table": None, "which": which})
        result = first_rows(session, table)
    except UserError as error:
        return render(request, "studio/wizard/_preview_error.html", {"problem": error.message}, status=400)
    # The validation query selects the same columns as the training query.
    marks = {_column(request, draft, "prompt"): "prompt", _column(request, draft, "completion"): "completion"}
    count = next((r["rows"] for r in relations(session) if r["qualified"] == table), None)
    return render(request, "studio/wizard/_rows.html", {
        "table": table, "result": result, "which": which, "row_count": count,
        "header": [(c, marks.get(c)) for c in result.columns], "limit": FIRST_ROWS})


@login_required
@require_GET
def preview_examples(request):
    """The chosen columns rendered through the base model's chat template, trained-on tokens marked, with
    the row count, token statistics and the rows over the model's limits."""
    draft = Draft(request)
    session = wizard_session(request, draft)
    which = "validation" if request.GET.get("which") == "validation" else "training"
    base = BaseModel.objects.filter(name=draft.get("base_model")).first()
    prompt, completion = _column(request, draft, "prompt"), _column(request, draft, "completion")
    try:
        table = _table_param(request, draft, session, which)
        if base is None or table is None or not prompt or not completion:
            return render(request, "studio/wizard/_examples.html", {"incomplete": True})
        found = data_preview.preview(session, base, draft.query(table, prompt, completion), purpose=which)
    except UserError as error:
        return render(request, "studio/wizard/_preview_error.html", {"problem": error.message}, status=400)
    return render(request, "studio/wizard/_examples.html", {"preview": found, "which": which, "table": table})


# Each step's form, what it saves and what its page lists ---------------------------------------------

class StepRefusal(UserError):
    """A service refusal that belongs to one field of the step's form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class StepHandler:
    field = ""  # the form field a service refusal is shown on

    def form(self, data, *, draft: Draft, session: Session, request):
        raise NotImplementedError

    def save(self, form, draft: Draft, session: Session) -> None:
        raise NotImplementedError

    def context(self, draft: Draft, session: Session, form) -> dict[str, Any]:
        return {}


class ModelStep(StepHandler):
    field = "base_model"

    def form(self, data, *, draft, session, request):
        # Installed models first: those are the ones a job can train today.
        models = sorted(BaseModel.objects.all(), key=lambda m: (not (m.enabled and m.is_installed), m.name))
        ready = next((m.name for m in models if m.enabled and m.is_installed), None)
        form = forms.BaseModelForm(data, models=models, initial={"base_model": draft.get("base_model", ready)})
        form.listing = models
        return form

    def save(self, form, draft, session):
        name = form.cleaned_data["base_model"]
        BaseModel.objects.get(name=name).require_enabled(finetune=True)
        draft.update(base_model=name)

    def context(self, draft, session, form):
        return {"base_models": form.listing, "chosen": form["base_model"].value()}


class RoleStep(StepHandler):
    field = "role"

    def form(self, data, *, draft, session, request):
        roles = cortex_roles(request.user)
        header = session_for(request)
        role = draft.get("role") or (header.role if header.role in roles else None)
        # The warehouses SHOW WAREHOUSES lists for the role the form is for; never for a role posted that
        # is not the user's, which would name warehouses none of their roles may see.
        posted = (data or {}).get("role")
        listed_for = posted if posted in roles else role or header.role
        form = forms.RoleForm(data, roles=roles,
                              warehouses=visible_warehouses(Session(request.user, role=listed_for)),
                              initial={"role": role, "warehouse": draft.get("warehouse") or header.warehouse})
        form.listing = roles
        form.listed_for = listed_for
        return form

    def save(self, form, draft, session):
        role, warehouse = form.cleaned_data["role"], form.cleaned_data["warehouse"]
        chosen = Session(session.user, role=role, warehouse=warehouse, entry_point="web")
        try:
            privileges.require_warehouse_usage(chosen, warehouse)
        except UserError as error:
            raise StepRefusal("warehouse", f"{error.message}: role {role} has no USAGE on it.") from error
        draft.update(role=role, warehouse=warehouse)

    def context(self, draft, session, form):
        seen, usable = warehouse_access(Session(session.user, role=form.listed_for))
        return {"roles": form.listing, "warehouses": [(w, w in usable) for w in seen]}


class DatabaseStep(StepHandler):
    field = "location"

    def form(self, data, *, draft, session, request):
        form = forms.DatabaseForm(data, locations=(locations := model_locations(session)),
                                  initial={"location": draft.model_location})
        form.listing = locations
        return form

    def save(self, form, draft, session):
        database, schema = split_parts(form.cleaned_data["location"])
        draft.update(database=database, schema=schema)

    def context(self, draft, session, form):
        grouped: dict[str, list[str]] = {}
        for location in form.listing:
            database, schema = split_parts(location)
            grouped.setdefault(quote(database), []).append(location)
        return {"locations": grouped}


class NameStep(StepHandler):
    field = "name"

    def form(self, data, *, draft, session, request):
        return forms.NameForm(data, initial={"name": draft.get("name", "")})

    def save(self, form, draft, session):
        draft.update(name=form.cleaned_data["name"])

    def context(self, draft, session, form):
        value = form["name"].value()
        final = None
        if value and not form.errors:
            try:
                final = _final_name(draft, forms.check_model_name(value))
            except UserError:
                final = None
        return {"final": final, "location": draft.model_location}


class TableStep(StepHandler):
    field = "table"
    which = "training"

    def form(self, data, *, draft, session, request):
        listed = relations(session)
        initial = draft.get(self.which)
        if self.which == "validation" and draft.has("validation") and not initial:
            initial = forms.SKIP
        form = forms.TableForm(data, tables=[r["qualified"] for r in listed],
                               skippable=self.which == "validation", initial={"table": initial})
        form.listing = listed
        return form

    def save(self, form, draft, session):
        table = form.cleaned_data["table"]
        if table == forms.SKIP:
            draft.update(validation="")
            return
        first_rows(session, table)  # SELECT privilege on the table, checked by the query itself
        if self.which == "validation":
            # CREATE's own check of the validation query: the same columns must exist there.
            check_query(session, draft.query(table), purpose="validation")
        draft.update(**{self.which: table})

    def context(self, draft, session, form):
        grouped: dict[str, list[dict]] = {}
        for relation in form.listing:
            grouped.setdefault(relation["location"], []).append(relation)
        return {"relations": grouped, "chosen": form["table"].value(), "which": self.which}


class ValidationStep(TableStep):
    which = "validation"


class ColumnStep(StepHandler):
    field = "column"

    def __init__(self, key: str, label: str) -> None:
        self.key, self.label = key, label

    def form(self, data, *, draft, session, request):
        described = columns(session, draft.table)
        names = [name for name, _ in described]
        guess = next((n for n in names if n.lower() == self.key), None)
        form = forms.ColumnForm(data, columns=names, label=self.label,
                                initial={"column": draft.get(self.key) or guess})
        form.listing = described
        return form

    def save(self, form, draft, session):
        draft.update(**{self.key: form.cleaned_data["column"]})

    def context(self, draft, session, form):
        return {"columns": form.listing, "chosen": form["column"].value(), "table": draft.table}


HANDLERS: dict[str, StepHandler] = {
    "model": ModelStep(), "role": RoleStep(), "database": DatabaseStep(), "name": NameStep(),
    "training": TableStep(), "prompt": ColumnStep("prompt", "Prompt column"),
    "completion": ColumnStep("completion", "Completion column"), "validation": ValidationStep(),
}
