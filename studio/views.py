"""The Studio overview, the Models registry and the Data browser. The Jobs pages are in jobs_views.py."""
from __future__ import annotations

from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.shortcuts import render
from django.views.decorators.http import require_GET

from access import privileges
from access.web import session_for
from catalog.models import BaseModel
from jobs import finetune
from models_registry.models import FineTunedModel
from sqlengine import show

RECENT_JOBS = 5
MODELS_PER_PAGE = 100


@login_required
@require_GET
def home(request):
    session = session_for(request)
    may_finetune = privileges.holds_cortex_user(session)
    return render(request, "studio/home.html", {
        "may_finetune": may_finetune,
        "jobs": finetune.visible_jobs(session)[:RECENT_JOBS] if may_finetune else [],
        "base_models": BaseModel.objects.all(),
    })


def visible_models(session, name_contains: str = "") -> list[FineTunedModel]:
    """The registry as SHOW MODELS IN ACCOUNT lists it for the session: models its roles own or hold a
    privilege on, in database, schema, name order."""
    visibility = privileges.Visibility(session)
    models = FineTunedModel.objects.select_related("schema__database")
    if name_contains:
        models = models.filter(name__icontains=name_contains)
    return [m for m in models
            if visibility.sees("MODEL", privileges.key(m.schema.database.name, m.schema.name, m.name), m.owner_role)]


@login_required
@require_GET
def model_list(request):
    query = request.GET.get("q", "").strip()
    page = Paginator(visible_models(session_for(request), query), MODELS_PER_PAGE).get_page(request.GET.get("page"))
    prefetch_related_objects(page.object_list, "deployments__server")
    schemas = [(f"{database}.{schema}", list(group)) for (database, schema), group
               in groupby(page.object_list, key=lambda m: (m.schema.database.name, m.schema.name))]
    return render(request, "studio/models.html", {"schemas": schemas, "page": page, "query": query})


def _listing(session, kind: str) -> list[dict]:
    result = show.run(session, show.ShowSpec(kind=kind, scope_kind="ACCOUNT"))
    return [dict(zip(result.columns, row)) for row in result.rows]


@login_required
@require_GET
def data(request):
    """Databases, their schemas and the tables and views in them, as SHOW lists them for the role."""
    session = session_for(request)
    relations = _listing(session, "TABLES") + [v | {"kind": "VIEW", "rows": None} for v in _listing(session, "VIEWS")]
    by_schema: dict[tuple[str, str], list[dict]] = {}
    for relation in sorted(relations, key=lambda r: r["name"]):
        by_schema.setdefault((relation["database_name"], relation["schema_name"]), []).append(relation)
    schemas = _listing(session, "SCHEMAS")
    databases = [{"name": db["name"], "owner": db["owner"], "schemas": [
        {"name": s["name"], "owner": s["owner"], "relations": by_schema.get((db["name"], s["name"]), [])}
        for s in schemas if s["database_name"] == db["name"]]}
        for db in _listing(session, "DATABASES")]
    return render(request, "studio/data.html", {"databases": databases})
