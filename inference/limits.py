"""The HTTP gateway's per-user limits: requests and tokens per minute, counted from the usage rows
(so every web process sees the same count), and request size; and max_tokens, which COMPLETE checks
for every entry point. Each refusal says which limit, its value and its setting, and, for the
per-minute limits, when to retry."""
from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from errors import UserError
from inference.models import CompletionUsage

WINDOW = timedelta(minutes=1)
HTTP_ENTRY_POINTS = (CompletionUsage.EntryPoint.OPENAI, CompletionUsage.EntryPoint.CORTEX_REST)


class LimitExceeded(UserError):
    """A per-minute limit: the request may be retried after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, code=429001, sqlstate="53400")
        self.retry_after = retry_after


class RequestTooLarge(UserError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=413001, sqlstate="54000")


class MaxTokensTooLarge(UserError):
    field = "max_tokens"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=100357, sqlstate="22023")


def check_max_tokens(max_tokens: int) -> None:
    """COMPLETE's max_tokens, from every entry point, against the one limit: `manage.py serve` starts the
    embedded inference server with the same number (--max-new-tokens-limit), so what passes here is
    never refused by the server for its length, and what does not is refused before any server is asked."""
    limit = settings.GATEWAY_MAX_TOKENS
    if limit > 0 and max_tokens > limit:
        raise MaxTokensTooLarge(f"COMPLETE option max_tokens {max_tokens} is over the limit of {limit} tokens "
                                "(STUDIO_GATEWAY_MAX_TOKENS).")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _retry_after(started_on, now) -> int:
    return max(1, math.ceil((started_on + WINDOW - now).total_seconds()))


def check_rate(user) -> None:
    """Refuse a user who has used up a per-minute limit over both HTTP APIs together."""
    requests_limit, tokens_limit = settings.GATEWAY_REQUESTS_PER_MINUTE, settings.GATEWAY_TOKENS_PER_MINUTE
    if requests_limit <= 0 and tokens_limit <= 0:
        return
    now = timezone.now()
    recent = list(CompletionUsage.objects.filter(user=user, entry_point__in=HTTP_ENTRY_POINTS,
                                                 started_on__gt=now - WINDOW)
                  .order_by("started_on").values_list("started_on", "input_tokens", "output_tokens"))
    name = user.get_username()
    if requests_limit > 0 and len(recent) >= requests_limit:
        # A slot frees when enough of the window's oldest requests have left it.
        retry = _retry_after(recent[len(recent) - requests_limit][0], now)
        raise LimitExceeded(
            f"Rate limit exceeded for user '{name}': {_count(len(recent), 'request')} in the last minute; the "
            f"limit is {_count(requests_limit, 'request')} per minute (STUDIO_GATEWAY_REQUESTS_PER_MINUTE). "
            f"Retry in {retry} seconds.", retry_after=retry)
    spent = sum(i + o for _, i, o in recent)
    if tokens_limit > 0 and spent >= tokens_limit:
        left = spent
        for started_on, i, o in recent:  # the tokens leave the window with their requests, oldest first
            left -= i + o
            if left < tokens_limit:
                break
        retry = _retry_after(started_on, now)
        raise LimitExceeded(
            f"Token rate limit exceeded for user '{name}': {spent} tokens in the last minute; the limit is "
            f"{tokens_limit} tokens per minute (STUDIO_GATEWAY_TOKENS_PER_MINUTE). Retry in {retry} seconds.",
            retry_after=retry)
