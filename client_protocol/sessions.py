"""Signing Snowflake's clients in and out, and finding the session a request's token belongs to.

The session a statement runs in is opened by access/roles.py with the checks USE applies, as for the SQL
API; this module adds only what the client protocol has of its own: the tokens, their lifetimes, and the
session's current names carried from one request to the next.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from access import roles
from access.session import Session
from catalog.identifiers import normalize
from client_protocol.models import ClientSession, LoginAttempt
from errors import UserError

ENTRY_POINT = "connector"
TOKEN_PREFIX, MASTER_PREFIX = "sfc_", "sfm_"  # recognisable in logs and secret scanners

# Snowflake's own codes, which the clients act on: 390112 makes them renew with the master token.
BAD_CREDENTIALS = 390100
LOCKED = 390102
SESSION_GONE = 390111
SESSION_EXPIRED = 390112
MASTER_EXPIRED = 390114


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _error(code: int, message: str) -> UserError:
    return UserError(message, code=code, sqlstate="08001")


def bad_credentials() -> UserError:
    return _error(BAD_CREDENTIALS, "Incorrect username or password was specified.")


def session_gone() -> UserError:
    return _error(SESSION_GONE, "Session no longer exists.  New login required to access the service.")


@dataclass
class Opened:
    record: ClientSession
    session: Session
    token: str
    master_token: str


def _throttled(login_name: str, address: str) -> bool:
    since = timezone.now() - timedelta(seconds=settings.CLIENT_LOGIN_LOCKOUT_SECONDS)
    recent = LoginAttempt.objects.filter(at__gte=since)
    return (recent.filter(login_name=login_name).count() >= settings.CLIENT_LOGIN_MAX_FAILURES
            or recent.filter(address=address).count() >= settings.CLIENT_LOGIN_MAX_FAILURES * 4)


def _record_failure(login_name: str, address: str) -> None:
    now = timezone.now()
    # Failures older than the window count for nothing: without this, names an attacker makes up would
    # pile up for ever.
    LoginAttempt.objects.filter(at__lt=now - timedelta(seconds=settings.CLIENT_LOGIN_LOCKOUT_SECONDS)).delete()
    LoginAttempt.objects.create(login_name=login_name, address=address, at=now)


def _user_named(login_name: str):
    # Snowflake's login names are case-insensitive; a user created with a quoted mixed-case name signs
    # in with exactly that name.
    if "\x00" in login_name:  # PostgreSQL refuses a NUL in a query's text: no user has one
        return None
    users = get_user_model().objects.filter(is_active=True)
    return users.filter(username=login_name).first() or users.filter(username__iexact=login_name).order_by("pk").first()


def sign_in(login_name: str, password: str, *, address: str, role: str | None = None, warehouse: str | None = None,
            database: str | None = None, schema: str | None = None, client: str = "") -> Opened:
    """A new session for the user whose name and password these are, in the named role, warehouse,
    database and schema (names as the client sent them: unquoted, or "quoted"). Throttled: after
    CLIENT_LOGIN_MAX_FAILURES failures in CLIENT_LOGIN_LOCKOUT_SECONDS for one user, whichever spelling
    of their name was sent (or one name no user has, or four times as many from one address) every attempt
    is refused, right password or not, until the window passes. An unknown or disabled user's sign-in
    hashes the password as a known one's does, and is answered in the same words."""
    sent = (login_name or "").strip()
    user = _user_named(sent) if sent else None
    # Failures count against the user every spelling of the name reaches (case, the database's own case
    # folding: PostgreSQL's UPPER() takes 'ı' and 'ſ' to I and S), not against each spelling.
    key = (user.get_username() if user is not None else sent).lower().replace("\x00", "")[:255]
    address = address[:64]
    if _throttled(key, address):
        raise _error(LOCKED, "User temporarily locked: too many failed sign-in attempts. Try again in "
                             f"{settings.CLIENT_LOGIN_LOCKOUT_SECONDS // 60} minutes.")
    if user is None or not password or not user.check_password(password):
        if user is None and password:
            make_password(password)  # as long as a wrong password takes: the time tells no name apart
        _record_failure(key, address)
        raise bad_credentials()
    session = roles.open_session(user, role=_name(role), warehouse=_name(warehouse), entry_point=ENTRY_POINT)
    _use_what_exists(session, _name(database), _name(schema))
    token, master = TOKEN_PREFIX + secrets.token_urlsafe(32), MASTER_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    record = ClientSession.objects.create(
        user=user, token_hash=_hash(token), master_token_hash=_hash(master),
        token_expires_on=now + timedelta(seconds=settings.CLIENT_SESSION_SECONDS),
        master_expires_on=now + timedelta(seconds=settings.CLIENT_MASTER_SESSION_SECONDS), client=client[:128])
    remember(record, session)
    get_user_model().objects.filter(pk=user.pk).update(last_login=now)
    return Opened(record, session, token, master)


def _use_what_exists(session: Session, database: str | None, schema: str | None) -> None:
    """Snowflake signs a client in even when the database or schema it names does not exist or the role
    may not use it: the session then has none (CURRENT_SCHEMA() is NULL). dbt relies on it, connecting to
    the schema it is about to create. What is set passes USE's checks, so nothing hidden becomes current."""
    for attempt in ({"database": database, "schema": schema}, {"database": database}):
        if attempt["database"] is None:
            return
        try:
            roles.use(session, **attempt)
        except UserError:
            continue
        if "schema" not in attempt and schema is not None:
            session.schema = None  # the database's PUBLIC was not what the client asked for
        return


def _name(text: str | None) -> str | None:
    """A name as a client sends it in connect(): an identifier, unquoted (case-insensitive) or quoted."""
    text = (text or "").strip()
    return normalize(text) if text else None


def _open_record(token_hash_field: str, secret: str) -> ClientSession | None:
    if not secret:
        return None
    record = (ClientSession.objects.filter(**{token_hash_field: _hash(secret)}, closed_on__isnull=True)
              .select_related("user").first())
    if record is None or not record.user.is_active:
        return None
    return record


def session_for(token: str, *, to_run: bool = True) -> tuple[ClientSession, Session]:
    """The open session a session token belongs to, as an access Session in its current names. Raises
    390112 for an expired token (the client renews it) and 390111 for one that is unknown or closed.

    `to_run`: the session is about to run something in its role (a statement, a completion), so the role
    is checked again, as Snowflake checks it on every statement: one revoked from the user (or dropped)
    since USE ROLE or sign-in refuses this request with 3013, and the session goes back to the user's
    default role and warehouse, with no database, as the worksheet's does. Polls, heartbeats and aborts
    of the user's own statements run nothing and skip the check."""
    record = _open_record("token_hash", token)
    if record is None:
        raise session_gone()
    now = timezone.now()
    if record.token_expires_on <= now:
        raise _error(SESSION_EXPIRED, "Session token expired. Renew it with the master token, or sign in again.")
    ClientSession.objects.filter(pk=record.pk).update(last_used_on=now)
    if to_run and not roles.may_use_role(record.user, record.role):
        revoked = record.role
        remember(record, roles.open_session(record.user, entry_point=ENTRY_POINT))
        raise UserError(f"Role '{revoked}' is no longer granted to user '{record.user.get_username()}': the statement "
                        f"did not run. The session is now in role '{record.role}'; run USE ROLE to choose another.",
                        code=3013, sqlstate="42501")
    session = Session(user=record.user, role=record.role, warehouse=record.warehouse or None,
                      database=record.database or None, schema=record.schema or None, entry_point=ENTRY_POINT)
    return record, session


def remember(record: ClientSession, session: Session) -> None:
    """Keep the names a statement left the session in (USE ROLE, USE DATABASE …) for its next requests."""
    record.role, record.warehouse = session.role, session.warehouse or ""
    record.database, record.schema = session.database or "", session.schema or ""
    ClientSession.objects.filter(pk=record.pk).update(role=record.role, warehouse=record.warehouse,
                                                      database=record.database, schema=record.schema)


def renew(master_token: str, old_token: str) -> tuple[ClientSession, str, str]:
    """A new session token and master token for the session of this master token; the old ones stop
    working (the 5.x connector requires a master token in the answer, and a rotated one is what a
    stolen copy of the old cannot use). The master token's expiry stays: renewing never extends it."""
    record = _open_record("master_token_hash", master_token)
    if record is None or (old_token and record.token_hash != _hash(old_token)):
        raise session_gone()
    now = timezone.now()
    if record.master_expires_on <= now:
        raise _error(MASTER_EXPIRED, "Master token expired: sign in again.")
    token, master = TOKEN_PREFIX + secrets.token_urlsafe(32), MASTER_PREFIX + secrets.token_urlsafe(32)
    expires = min(now + timedelta(seconds=settings.CLIENT_SESSION_SECONDS), record.master_expires_on)
    # Only the first of two renewals with one master token rotates it (a stolen copy racing its owner):
    # the other is refused, rather than handed tokens the first one's overwrite.
    rotated = ClientSession.objects.filter(pk=record.pk, master_token_hash=record.master_token_hash,
                                           closed_on__isnull=True).update(
        token_hash=_hash(token), master_token_hash=_hash(master), token_expires_on=expires)
    if rotated != 1:
        raise session_gone()
    record.token_hash, record.master_token_hash, record.token_expires_on = _hash(token), _hash(master), expires
    return record, token, master


def sign_out(token: str) -> bool:
    """Close the session of this session token; False when there was none open."""
    return ClientSession.objects.filter(token_hash=_hash(token or ""), closed_on__isnull=True).update(
        closed_on=timezone.now()) == 1


def close_sessions_of(user) -> int:
    return ClientSession.objects.filter(user=user, closed_on__isnull=True).update(closed_on=timezone.now())


def token_from_header(header: str) -> str:
    """The token of `Authorization: Snowflake Token="<token>"`, or ""."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme.lower() != "snowflake":
        return ""
    key, _, value = rest.strip().partition("=")
    if key.strip().lower() != "token":
        return ""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return "" if value == "None" else value
