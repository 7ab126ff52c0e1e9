"""The primary's federation endpoints: the manifest of a database replicating to the caller, its table
exports and its models' adapter files (organization/inbound.py checks the signature; snapshot.py whether
the database replicates to that account), and the promotion of a secondary, which makes this one a
secondary of it."""
from __future__ import annotations

import json

from django.http import FileResponse, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from organization import signing
from organization.inbound import from_peer
from organization.models import Account
from replication import promotion, snapshot


@require_GET
@from_peer
def manifest(request: HttpRequest, peer: Account, database: str) -> JsonResponse:
    return JsonResponse(snapshot.manifest(snapshot.primary_for(peer, database), peer))


@require_GET
@from_peer
def table_file(request: HttpRequest, peer: Account, database: str, schema: str, table: str,
               fingerprint: str) -> FileResponse:
    found = snapshot.table_file(snapshot.primary_for(peer, database), schema, table, fingerprint)
    return FileResponse(open(found, "rb"), content_type="application/octet-stream")


@require_GET
@from_peer
def model_file(request: HttpRequest, peer: Account, database: str, schema: str, model: str,
               path: str) -> FileResponse:
    found = snapshot.model_file(snapshot.primary_for(peer, database), schema, model, path)
    return FileResponse(open(found, "rb"), content_type="application/octet-stream")


@require_POST
@from_peer
def promoted(request: HttpRequest, peer: Account, database: str) -> JsonResponse:
    try:
        promoted_as = str(json.loads(request.body or b"{}")["database"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"code": 2003, "sqlState": "22023", "message": "The promotion names no database."},
                            status=400)
    # The signature's timestamp, checked by from_peer: when the promoting account asked.
    signed_at = int(request.headers[signing.TIMESTAMP_HEADER])
    return JsonResponse({"message": promotion.demote(peer, database, promoted_as, signed_at)})
