"""The Data page: databases, schemas and tables as the role may see them (catalog/listing.py, what SHOW
lists), where a replica or a database from a share comes from (data_origins.py) with a replica's
"Refresh now" (ALTER DATABASE … REFRESH's own service), a table's preview (its columns with types and
first rows, catalog/contents.py) and uploading a file into a new or an existing table
(catalog/uploads.py), with the load's per-row errors."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from access.privileges import INSUFFICIENT_PRIVILEGES
from access.web import session_for
from catalog import contents, listing, uploads
from catalog.identifiers import QualifiedName, quote
from catalog.stage_views import StageUploadHandler
from errors import UserError
from replication import databases as replication
from sqlengine.results import format_value
from studio import data_origins
from studio.data_forms import UploadForm, check_file_name

PREVIEW_ROWS = 20
ERRORS_SHOWN = 100


def _databases(session) -> list[dict]:
    """Databases, their schemas and the tables and views in them, as the role may see them."""
    by_schema: dict[tuple[str, str], list[listing.RelationEntry]] = {}
    for relation in sorted(listing.relations(session), key=lambda r: r.name):
        by_schema.setdefault((relation.database, relation.schema), []).append(relation)
    schemas = listing.schemas(session)
    databases = listing.databases(session)
    origins = data_origins.origins(session, [db.name for db in databases])
    return [{"name": db.name, "owner": db.owner, "origin": origins.get(db.name), "schemas": [
        {"name": s.name, "owner": s.owner, "relations": by_schema.get((db.name, s.name), [])}
        for s in schemas if s.database == db.name]}
        for db in databases]


def _choices(databases: list[dict]) -> dict:
    """What the upload form offers: schemas for a new table, tables (not views) to load into; nothing in
    a replica or a database from a share, where the load would be refused as read-only."""
    schemas, tables = [], []
    for database in databases:
        if database["origin"] and database["origin"].read_only:
            continue
        for schema in database["schemas"]:
            schemas.append(f"{quote(database['name'])}.{quote(schema['name'])}")
            tables += [f"{schemas[-1]}.{quote(r.name)}" for r in schema["relations"] if r.kind == listing.TABLE]
    return {"schema_choices": schemas, "table_choices": tables}


def _page(request, status: int = 200, **context):
    databases = _databases(session_for(request))
    context.setdefault("form", UploadForm(initial={"mode": "new"}))
    return render(request, "studio/data.html", {"databases": databases, **_choices(databases), **context},
                  status=status)


@login_required
@require_GET
def data(request):
    return _page(request)


# -- preview ---------------------------------------------------------------------------------------

def table_preview(session, database: str, schema: str, table: str) -> dict:
    """The table's columns, first rows and row count, as the role may read them (catalog/contents.py)."""
    found = contents.preview(session, QualifiedName(database, schema, table), rows=PREVIEW_ROWS, count=True)
    return {"name": str(found.name), "columns": [(c.name, c.type) for c in found.columns],
            "rows": [[(format_value(v), v is None) for v in row] for row in found.rows], "row_count": found.row_count}


@login_required
@require_GET
def table_page(request, database: str, schema: str, table: str):
    try:
        preview = table_preview(session_for(request), database, schema, table)
        status, problem = 200, None
    except UserError as error:
        preview, problem = None, error.message
        status = 403 if error.code == INSUFFICIENT_PRIVILEGES else 404
    context = {"preview": preview, "preview_problem": problem}
    if request.htmx:
        return render(request, "studio/_table_preview.html", context, status=status)
    return _page(request, status, **context)


# -- upload ----------------------------------------------------------------------------------------

@csrf_exempt
@login_required
@require_POST
def upload(request):
    # The file streams to the stages' disk as it arrives (never whole into memory): the handler goes in
    # before anything reads request.POST, the CSRF check included, as in catalog/stage_views.py.
    request.upload_handlers = [StageUploadHandler(request)]
    return csrf_protect(_upload)(request)


def _upload(request):
    handler = request.upload_handlers[0]
    report, problem, status = None, None, 200
    try:
        form = UploadForm(request.POST)
        valid = form.is_valid()
        if handler.upload is None:
            form.add_error(None, "Choose a file to upload.")
        elif check_file_name(handler.upload[0]):
            form.add_error(None, check_file_name(handler.upload[0]))
        if valid and not form.errors:
            file_name, path, _size, md5 = handler.upload
            try:
                report = uploads.load(session_for(request), uploads.Upload(file_name, path, md5),
                                      form.cleaned_data["table"], create=form.cleaned_data["mode"] == "new")
            except UserError as error:
                problem = error.message
                status = 403 if error.code == INSUFFICIENT_PRIVILEGES else 400
        else:
            status = 400
    finally:
        handler.cleanup()
    context = {"form": form, "report": report, "upload_problem": problem,
               "report_errors": report.errors[:ERRORS_SHOWN] if report else []}
    if request.htmx:
        databases = _databases(session_for(request))
        return render(request, "studio/_upload_result.html",
                      {**context, "databases": databases, **_choices(databases), "oob": True}, status=status)
    return _page(request, status, **context)


# -- a replica's refresh ---------------------------------------------------------------------------

@login_required
@require_POST
def refresh_database(request, database: str):
    """ALTER DATABASE … REFRESH as the page's role, through the statement's own service: it decides who
    may (the secondary's owner) and answers with the summary, or with why the replica is unchanged."""
    try:
        messages.success(request, replication.refresh(session_for(request), quote(database)))
    except UserError as error:
        messages.error(request, error.message)
    return redirect("data")
