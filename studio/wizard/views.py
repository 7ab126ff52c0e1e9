"""The wizard's pages: each step, the review that starts the job, Start over and the job started; and the
fragments its pages load (the name check, the rows and examples previews)."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access.session import Session
from catalog.models import BaseModel
from errors import UserError
from jobs import data_preview, finetune
from jobs.models import FineTuneJob
from studio.wizard import forms
from studio.wizard.draft import STEP_KEYS, STEPS, Draft, Step, final_name, wizard_session
from studio.wizard.pickers import FIRST_ROWS, first_rows, relations
from studio.wizard.routing import error_step
from studio.wizard.steps import HANDLERS, StepRefusal


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
    context["final_name"] = final_name(draft)
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
        final = final_name(draft, name) if draft.model_location else None
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
        "header": [(c, marks.get(c)) for c in result.header], "limit": FIRST_ROWS})


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
