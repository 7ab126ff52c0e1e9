"""The provider's federation endpoints for shares: the manifest and the adapter files, for a signed
request of an account the share names (organization/inbound.py checks the signature)."""
from __future__ import annotations

from django.http import FileResponse, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from organization.inbound import from_peer
from organization.models import Account
from sharing import exposure


@require_GET
@from_peer
def manifest(request: HttpRequest, peer: Account, share: str) -> JsonResponse:
    return JsonResponse(exposure.manifest(exposure.share_for(peer, share)))


@require_GET
@from_peer
def model_file(request: HttpRequest, peer: Account, share: str, schema: str, model: str, path: str) -> FileResponse:
    found = exposure.model_file(exposure.share_for(peer, share), schema, model, path)
    return FileResponse(open(found, "rb"), content_type="application/octet-stream")
