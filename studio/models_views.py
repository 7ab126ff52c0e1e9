"""The Models pages: the registry (SHOW MODELS for the page's role) and a model's page with its
deployments, its grants (GRANT / REVOKE through access.grants, as the page's role) and its usage.

A model the role may not see (it neither owns it nor holds a privilege on it) is a 404, like a missing
one, so names cannot be probed.

Usage over time: the owner of a model (its owner role or a role above it, ACCOUNTADMIN included) sees
every user's COMPLETE calls on it, since the owner answers for what the model costs; a role that was
only granted USAGE sees its own user's calls, never what other users asked.
"""
from __future__ import annotations

import datetime
from itertools import groupby
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access import grants, privileges
from access.models import Role
from access.session import Session
from access.web import session_for
from errors import UserError
from inference import metering
from inference.models import InferenceServer
from models_registry import registry
from models_registry.forms import PRIVILEGE, ModelGrantForm, ModelRevokeForm
from models_registry.models import FineTunedModel
from studio.charts import bar_chart

MODELS_PER_PAGE = 100
USAGE_DAYS = 30


def visible_models(session: Session, name_contains: str = "") -> list[int]:
    """The primary keys of the registry as SHOW MODELS IN ACCOUNT lists it for the session: models its
    roles own or hold a privilege on, in database, schema, name order. Keys, not rows: the page then
    reads only its own hundred rows."""
    visibility = privileges.Visibility(session)
    models = FineTunedModel.objects.all()
    if name_contains:
        models = models.filter(name__icontains=name_contains)
    if visibility.all:
        return list(models.values_list("pk", flat=True))
    return [pk for pk, database, schema, name, owner in
            models.values_list("pk", "schema__database__name", "schema__name", "name", "owner_role")
            if visibility.sees("MODEL", privileges.key(database, schema, name), owner)]


@login_required
@require_GET
def model_list(request):
    query = request.GET.get("q", "").strip()
    page = Paginator(visible_models(session_for(request), query), MODELS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(FineTunedModel.objects.filter(pk__in=page.object_list).select_related("schema__database")
                            .prefetch_related("deployments__server"))
    schemas = [(f"{database}.{schema}", list(group)) for (database, schema), group
               in groupby(page.object_list, key=lambda m: (m.schema.database.name, m.schema.name))]
    return render(request, "studio/models.html", {"schemas": schemas, "page": page, "query": query})


def _visible_model(request, name: str) -> tuple[Session, FineTunedModel]:
    session = session_for(request)
    try:
        model = registry.resolve(name, None, None)
    except UserError:
        raise Http404(f"No model {name}") from None
    if not privileges.Visibility(session).sees("MODEL", model.qualified_name, model.owner_role):
        raise Http404(f"No model {name}")
    return session, model


def _deployments(model: FineTunedModel) -> list[dict]:
    """The model's state on each server of its base model; a server with no deployment row has never
    been asked to load it."""
    rows = [{"server": d.server, "state": d.state, "reason": d.reason, "updated_on": d.updated_on}
            for d in model.deployments.select_related("server")]
    known = {row["server"].pk for row in rows}
    rows += [{"server": server, "state": "not deployed", "reason": "", "updated_on": None}
             for server in InferenceServer.objects.filter(base_model=model.base_model).exclude(pk__in=known)]
    return sorted(rows, key=lambda row: row["server"].name)


def _usage(session: Session, model: FineTunedModel, user) -> dict:
    """Tokens per day over the last USAGE_DAYS days, for everyone (the owner) or the user alone."""
    everyone = privileges.is_owner(session, "MODEL", model.qualified_name)
    last_day = timezone.now().astimezone(datetime.UTC).date()
    first_day = last_day - datetime.timedelta(days=USAGE_DAYS - 1)
    days = metering.tokens_per_day(model.qualified_name, first_day, last_day, user=None if everyone else user)
    chart = bar_chart([d.day.strftime("%b %d") for d in days], [d.tokens for d in days],
                      [f"{d.day:%Y-%m-%d}: {d.tokens:,} tokens ({d.input_tokens:,} in, {d.output_tokens:,} out) "
                       f"in {d.calls:,} call{'s' if d.calls != 1 else ''}" for d in days])
    return {"everyone": everyone, "days": USAGE_DAYS, "chart": chart,
            "tokens": sum(d.tokens for d in days), "calls": sum(d.calls for d in days)}


def _grants_context(session: Session, model: FineTunedModel, grant_form=None, problem: str = "",
                    notice: str = "") -> dict:
    return {
        "model": model,
        "grants": grants.grants_on("MODEL", model.qualified_name),
        "may_grant": grants.may_grant(session, PRIVILEGE, "MODEL", model.qualified_name),
        "grant_form": grant_form or ModelGrantForm(),
        "roles": Role.objects.order_by("name").values_list("name", flat=True),
        "problem": problem,
        "notice": notice,
    }


def _page_context(request, session: Session, model: FineTunedModel, **grants_state) -> dict:
    metrics = model.metrics or {}
    return _grants_context(session, model, **grants_state) | {
        "training_loss": metrics.get("training_loss"),
        "validation_loss": metrics.get("validation_loss"),
        "other_metrics": sorted((k.replace("_", " ").capitalize(), v) for k, v in metrics.items()
                                if k not in ("training_loss", "validation_loss")),
        "deployments": _deployments(model),
        "usage": _usage(session, model, request.user),
        "playground_url": f"{reverse('playground')}?{urlencode({'model': model.qualified_name})}",
    }


@login_required
@require_GET
def model_detail(request, name: str):
    session, model = _visible_model(request, name)
    return render(request, "studio/model_detail.html", _page_context(request, session, model))


def _grants_answer(request, session: Session, model: FineTunedModel, form, done: str | None,
                   error: UserError | None):
    """After GRANT or REVOKE: htmx gets the grants fragment with the answer; a plain form post is sent
    back to the page on success, or gets the page with the refusal and what was typed."""
    grant_form = form if isinstance(form, ModelGrantForm) and (error or form.errors) else None
    if error is not None:
        status = 403 if error.code == privileges.INSUFFICIENT_PRIVILEGES else 400
        state = {"grant_form": grant_form, "problem": error.message}
    elif form.errors:
        status, state = 400, {"grant_form": grant_form, "problem": "Check the form: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())}
    else:
        status, state = 200, {"notice": done}
    if request.htmx:
        return render(request, "studio/_model_grants.html", _grants_context(session, model, **state), status=status)
    if status == 200:
        messages.success(request, done)
        return redirect(reverse("model_detail", args=[model.qualified_name]) + "#grants")
    return render(request, "studio/model_detail.html", _page_context(request, session, model, **state), status=status)


def _change_grants(request, name: str, form_class):
    session, model = _visible_model(request, name)
    form = form_class(request.POST)
    done, error = None, None
    if form.is_valid():
        try:
            done = form.execute(session, model)
        except UserError as exc:
            error = exc
    return _grants_answer(request, session, model, form, done, error)


@login_required
@require_POST
def model_grant(request, name: str):
    return _change_grants(request, name, ModelGrantForm)


@login_required
@require_POST
def model_revoke(request, name: str):
    return _change_grants(request, name, ModelRevokeForm)
