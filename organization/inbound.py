"""The check every request from another deployment passes before a view of the federation API runs.

The sender must be registered here (an ORGADMIN's CREATE ACCOUNT), the request signed with that key and
addressed to this account. What it may then see is each view's own question (a share naming it, a
database replicating to it). Refusals are JSON in Snowflake's error shape, which peers.py passes on.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from errors import UserError
from organization import signing
from organization.models import Account
from organization.names import current, parse


def error_response(exc: UserError, status: int) -> JsonResponse:
    return JsonResponse({"code": exc.code, "sqlState": exc.sqlstate, "message": exc.message}, status=status)


def _sender(request: HttpRequest) -> Account:
    claimed = request.headers.get(signing.ACCOUNT_HEADER, "")
    refused = UserError("This deployment does not trust the sending account: an ORGADMIN must register each "
                        "account on both deployments (CREATE ACCOUNT … URL = '…' KEY = '…').", code=390104,
                        sqlstate="28000", refused=True)
    try:
        name = parse(claimed)
    except UserError:
        raise refused from None
    account = Account.objects.filter(organization=name.organization, name=name.name).first()
    if account is None:
        raise refused
    why = signing.check(account.key, request.method or "GET", request.get_full_path(), dict(request.headers),
                        str(current()), request.body)
    if why:
        raise UserError(f"The request from account {account.locator} is not trusted: {why}.", code=390104,
                        sqlstate="28000", refused=True)
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
