"""Metering COMPLETE: the token usage of every call, whatever its entry point, one CompletionUsage row
per call, and the tokens per day read back from those rows (a model's page).

    with metering.measured(session, target, CompletionUsage.EntryPoint.SQL) as call:
        text, prompt_tokens, completion_tokens = chat(...)
        call.tokens(prompt_tokens, completion_tokens)

The row is SUCCESS when the block returns and FAILED (the exception re-raised) when it raises. An HTTP
request's row is saved as it starts (RUNNING), so the gateway's rate limit (inference/limits.py) counts
requests still generating. COMPLETE over the rows of a SELECT answers on DuckDB's and a thread pool's
threads, where writing the metadata database is unsafe: those rows wait on the session (defer=True)
until the statement's thread saves them (save_deferred).
"""
from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from access.session import Session
from inference.client import ServedModel
from inference.models import CompletionUsage

# Session attribute: usage rows measured inside a SELECT, saved when the statement ends.
DEFERRED_ATTRIBUTE = "cortex_usage_pending"
_deferred_lock = threading.Lock()


class Call:
    """One COMPLETE call being measured."""

    def __init__(self, session: Session, target: ServedModel, entry_point: str, request_id: str = "") -> None:
        user = session.user if getattr(session.user, "pk", None) else None
        self.row = CompletionUsage(
            user=user, user_name=session.user_name, role=session.role or "", warehouse=session.warehouse or "",
            model_name=target.display_name, base_model=target.base_model, entry_point=entry_point,
            request_id=request_id, started_on=timezone.now(), status=CompletionUsage.Status.RUNNING,
        )
        self._started = time.monotonic()

    def start(self) -> Call:
        """Save the row now, RUNNING: what limits count while the call generates."""
        self.row.save()
        return self

    def tokens(self, input_tokens: int, output_tokens: int) -> None:
        self.row.input_tokens, self.row.output_tokens = max(0, input_tokens), max(0, output_tokens)

    def end(self, status: str, message: str = "") -> None:
        self.row.status = status
        self.row.message = message[:2000]
        self.row.duration_ms = int((time.monotonic() - self._started) * 1000)

    def save(self) -> None:
        if self.row.pk is None:
            self.row.save()
        else:
            self.row.save(update_fields=["input_tokens", "output_tokens", "status", "message", "duration_ms"])

    def finish(self, status: str, message: str = "") -> None:
        self.end(status, message)
        self.save()


@contextlib.contextmanager
def measured(session: Session, target: ServedModel, entry_point: str, *, request_id: str = "", start: bool = False,
             defer: bool = False) -> Iterator[Call]:
    """Measure one call: `start` saves the row before the block runs; `defer` keeps the finished row
    on the session for save_deferred instead of saving it."""
    call = Call(session, target, entry_point, request_id)
    if start:
        call.start()
    try:
        yield call
    except BaseException as exc:
        call.end(CompletionUsage.Status.FAILED, getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        _keep(session, call, defer)
        raise
    call.end(CompletionUsage.Status.SUCCESS)
    _keep(session, call, defer)


def _keep(session: Session, call: Call, defer: bool) -> None:
    if not defer:
        call.save()
        return
    with _deferred_lock:
        pending = getattr(session, DEFERRED_ATTRIBUTE, None)
        if pending is None:
            pending = []
            setattr(session, DEFERRED_ATTRIBUTE, pending)
        pending.append(call.row)


def save_deferred(session: Session) -> None:
    """Save the rows measured inside a statement; called on the statement's own thread."""
    with _deferred_lock:
        pending = getattr(session, DEFERRED_ATTRIBUTE, None) or []
        setattr(session, DEFERRED_ATTRIBUTE, [])
    if pending:
        CompletionUsage.objects.bulk_create(pending)


# Reading usage ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayUsage:
    day: datetime.date
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def tokens_per_day(model_name: str, first_day: datetime.date, last_day: datetime.date,
                   user=None) -> list[DayUsage]:
    """Every day from first_day to last_day (UTC) with the tokens COMPLETE calls on `model_name` (a base
    model or a qualified model name, as answered) cost: one query, one entry per day, zero where none.
    `user` narrows it to that user's calls. Failed calls count what they used, as the rate limits do."""
    start = datetime.datetime.combine(first_day, datetime.time.min, tzinfo=datetime.UTC)
    end = datetime.datetime.combine(last_day + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC)
    rows = CompletionUsage.objects.filter(model_name=model_name, started_on__gte=start, started_on__lt=end)
    if user is not None:
        rows = rows.filter(user=user)
    found = {r["day"]: r for r in rows.annotate(day=TruncDate("started_on", tzinfo=datetime.UTC)).values("day")
             .annotate(input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"), calls=Count("pk"))}
    days = [first_day + datetime.timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    return [DayUsage(day, found[day]["input_tokens"], found[day]["output_tokens"], found[day]["calls"])
            if day in found else DayUsage(day) for day in days]
