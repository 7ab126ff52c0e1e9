"""The federation API's own endpoint: who this deployment is, for a registered account that asks.
Sharing and replication add theirs under the same prefix (federation/v1/), behind the same check."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from organization.inbound import from_peer
from organization.models import Account
from organization.names import current


@require_GET
@from_peer
def account(request: HttpRequest, peer: Account) -> JsonResponse:
    me = current()
    return JsonResponse({"organization": me.organization, "account": me.name, "caller": peer.locator})
