"""The check every request from another deployment passes before a view of the federation API runs.

The sender must be registered here (an ORGADMIN's CREATE ACCOUNT), the request signed with that key and
addressed to this account. What it may then see is each view's own question (a share naming it, a
database replicating to it). Refusals are JSON in Snowflake's error shape, which peers.py passes on.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from errors import UserError
from organization import signing
from organization.models import Account
from organization.names import current, parse

log = logging.getLogger(__name__)


def error_response(exc: UserError, status: int) -> JsonResponse:
    return JsonResponse({"code": exc.code, "sqlState": exc.sqlstate, "message": exc.message}, status=status)


# One answer for every refusal, so that nobody can learn from it which account names are registered
# here; the reason is in this deployment's log, for its operator.
NOT_TRUSTED = ("This deployment does not trust the request: the sending account must be registered here by an "
               "ORGADMIN (CREATE ACCOUNT … URL = '…' KEY = '…', on both deployments), with the same key, and the "
               "request signed for this account within five minutes. This deployment's log says which failed.")


def _sender(request: HttpRequest) -> Account:
    claimed = request.headers.get(signing.ACCOUNT_HEADER, "")
    refused = UserError(NOT_TRUSTED, code=390104, sqlstate="28000", refused=True)
    try:
        name = parse(claimed)
    except UserError:
        log.warning("federation: refused a request claiming to be %r: not an account name of this organization",
                    claimed[:200])
        raise refused from None
    account = Account.objects.filter(organization=name.organization, name=name.name).first()
    if account is None:
        log.warning("federation: refused a request from %s: that account is not registered here", name)
        raise refused
    why = signing.check(account.key, request.method or "GET", request.get_full_path(), dict(request.headers),
                        str(current()), request.body)
    if why:
        log.warning("federation: refused a request from %s: %s", account.locator, why)
        raise refused
    return account


def from_peer(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`view(request, peer, …)` for a signed request of a registered account; 401 otherwise, and the
    view's own UserError as 403 (refused) or 400."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            peer = _sender(request)
        except UserError as exc:
            return error_response(exc, 401)
        try:
            return view(request, peer, *args, **kwargs)
        except UserError as exc:
            return error_response(exc, 403 if exc.refused else 400)

    return wrapped
