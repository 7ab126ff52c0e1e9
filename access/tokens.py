"""API tokens: created once (the secret is shown then and never again), checked by hash."""
from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from access.models import ApiToken

PREFIX = "sft_"  # recognisable in logs and secret scanners


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user, name: str) -> tuple[ApiToken, str]:
    """Returns the stored token and its secret; only the secret's hash is kept."""
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, token_hash=_hash(secret), prefix=secret[:12])
    return token, secret


def user_for(secret: str):
    """The active user owning this secret, or None."""
    token = ApiToken.objects.filter(token_hash=_hash(secret), revoked_on__isnull=True).select_related("user").first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_on=timezone.now())
    return token.user


def user_from_request(request):
    """The user of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return user_for(secret.strip())


def revoke(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_on__isnull=True).update(revoked_on=timezone.now())
