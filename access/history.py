"""The access history: every FINETUNE, COMPLETE, GRANT and REVOKE, recorded with its outcome.

    with history.recorded(session, "FINETUNE CREATE", "MODEL", "DB.S.M"):
        ...   # the event is SUCCESS if the block returns, REFUSED/FAILED (and re-raised) if it raises
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from access.models import AccessEvent
from access.session import Session
from errors import UserError

def _text(value: str) -> str:
    # A refused name may carry a NUL ("x\u0000" as a model): PostgreSQL's text columns refuse it outright,
    # which turned the refusal into a server error there. Kept visible as the escape a reader recognizes.
    return value.replace("\x00", "\\x00")


def record(session: Session, action: str, object_type: str = "", object_name: str = "", *,
           outcome: str = AccessEvent.Outcome.SUCCESS, message: str = "") -> AccessEvent:
    return AccessEvent.objects.create(
        user_name=session.user_name, role=session.role or "", action=action, object_type=object_type,
        object_name=_text(object_name), outcome=outcome, message=_text(message)[:2000],
        entry_point=getattr(session, "entry_point", "") or "",
    )


@contextlib.contextmanager
def recorded(session: Session, action: str, object_type: str = "", object_name: str = "") -> Iterator[None]:
    try:
        yield
    except UserError as exc:
        record(session, action, object_type, object_name, message=exc.message,
               outcome=AccessEvent.Outcome.REFUSED if exc.refused else AccessEvent.Outcome.FAILED)
        raise
    except Exception as exc:
        record(session, action, object_type, object_name, outcome=AccessEvent.Outcome.FAILED,
               message=f"{type(exc).__name__}: {exc}")
        raise
    record(session, action, object_type, object_name)
