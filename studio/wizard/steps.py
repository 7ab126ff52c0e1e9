"""Each step's form, what it saves in the draft and what its page lists."""
from __future__ import annotations

from typing import Any

from access import privileges
from access.roles import visible_warehouses, warehouse_access
from access.session import Session
from access.web import session_for
from catalog.identifiers import quote, split_parts
from catalog.models import BaseModel
from errors import UserError
from jobs.training_data import check_query
from studio.wizard import forms
from studio.wizard.draft import Draft, final_name
from studio.wizard.pickers import columns, cortex_roles, first_rows, model_locations, relations


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
                final = final_name(draft, forms.check_model_name(value))
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
