"""Users: Snowflake's users on Django's auth users, created, changed, dropped, listed and described.

The service CREATE / ALTER / DROP USER, SHOW USERS and DESCRIBE USER (sqlengine/statements/users.py)
and the admin console's user pages (access/admin.py) call. Each function checks that the session's role
inherits USERADMIN itself, and every create, change and drop, refused or not, is recorded in the access
history (access/history.py).

Naming rule: a user's name is its Django username, which is also what they sign in with. Names are SQL
identifiers as written: unquoted ones are case-insensitive and stored lower-case (`CREATE USER Bob` stores
`bob`; the bootstrap `admin` stays `admin`); a "quoted" name is stored exactly as written. SHOW USERS
shows a lower-case name upper-cased, the way Snowflake shows unquoted names. LOGIN_NAME may only repeat
the name: sign-in names separate from user names are not supported.

Properties are Snowflake's (SETTABLE), with their values as SQL gives them; None unsets one. Passwords
are hashed by Django and never shown. DEFAULT_ROLE must name an existing role; DEFAULT_WAREHOUSE is
stored as given, as Snowflake's CREATE USER does not check that the warehouse exists (a session starts
in it only while it exists and the role may use it: access/roles.py).
"""
from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from access import history
from access.models import Grant, Role, UserProfile
from access.role_graph import effective_roles
from access.session import Session
from catalog import stages
from catalog.identifiers import normalize
from errors import UserError, compilation_error, invalid_argument

MIN_PASSWORD_LENGTH = 8
ACCOUNT = "STUDIO"
SETTABLE = ("PASSWORD", "LOGIN_NAME", "DISPLAY_NAME", "EMAIL", "DEFAULT_ROLE", "DEFAULT_WAREHOUSE",
            "MUST_CHANGE_PASSWORD", "DISABLED", "COMMENT")
DONE = "Statement executed successfully."
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


# Names -------------------------------------------------------------------------------------------

def username(text: str) -> str:
    """The Django username a user name maps to: unquoted names lower-case, quoted ones as written."""
    text = text.strip()
    if "." in text.replace('"', "") and not text.startswith('"'):
        raise compilation_error(f"'{text}' is not a user name.")
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return normalize(text)
    return text.lower()


def shown_name(name: str) -> str:
    """A user's name as SHOW USERS prints it: a lower-case identifier upper-cased, others as stored."""
    return name.upper() if _IDENTIFIER.fullmatch(name) else name


def find_user(text: str):
    """The user a name denotes (unquoted: in any case; quoted: exactly), or None."""
    users = get_user_model().objects
    name = username(text)
    if text.strip().startswith('"'):
        return users.filter(username=name).first()
    return users.filter(username__iexact=name).order_by("pk").first()


# Who may -----------------------------------------------------------------------------------------

def _insufficient(what: str) -> UserError:
    return UserError(f"Insufficient privileges to operate on {what}", code=3001, sqlstate="42501")


def _require_useradmin(session: Session, what: str) -> None:
    if "USERADMIN" not in effective_roles(session.role):
        raise _insufficient(what)


def _not_found(text: str) -> UserError:
    return UserError(f"SQL compilation error:\nUser '{shown_name(username(text))}' does not exist or not authorized.",
                     code=2003, sqlstate="02000")


# Values ------------------------------------------------------------------------------------------

def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid_argument(f"Password is too short: a password needs at least {MIN_PASSWORD_LENGTH} characters.",
                               field="PASSWORD")


def check_properties(name: str, properties: dict[str, Any]) -> None:
    """Refuse values that cannot be stored, before anything is written; each error names its property
    (UserError.field). Unset properties (None) are not checked."""
    if properties.get("PASSWORD") is not None:
        check_password(properties["PASSWORD"])
    role = properties.get("DEFAULT_ROLE")
    if role and not Role.objects.filter(name=role).exists():
        raise UserError(f"SQL compilation error:\nRole '{role}' does not exist or not authorized.",
                        code=2003, sqlstate="02000", field="DEFAULT_ROLE")
    login = properties.get("LOGIN_NAME")
    if login is not None and username(login) != name:
        raise invalid_argument(f"LOGIN_NAME must be the user's name ('{shown_name(name)}'): users sign in with their "
                               "name here. Rename the user with ALTER USER … RENAME TO instead.", field="LOGIN_NAME")
    if properties.get("MUST_CHANGE_PASSWORD"):
        raise invalid_argument("MUST_CHANGE_PASSWORD = TRUE is not supported yet; users change their password "
                               "on the Change password page.", field="MUST_CHANGE_PASSWORD")
    for field, limit in (("DISPLAY_NAME", 150), ("EMAIL", 254)):
        if properties.get(field) and len(properties[field]) > limit:
            raise invalid_argument(f"{field} is longer than {limit} characters.", field=field)


def _apply(user, properties: dict[str, Any]) -> None:
    """Write SET values (None: UNSET) to the user and their profile."""
    profile = _profile(user)
    user_fields, profile_fields = set(), set()
    for prop, value in properties.items():
        if prop == "PASSWORD":
            if value is None:
                user.set_unusable_password()
            else:
                user.set_password(value)
            user_fields.add("password")
        elif prop == "DISPLAY_NAME":
            user.first_name = "" if value is None else username(value) if value.startswith('"') else value
            user_fields.add("first_name")
        elif prop == "EMAIL":
            user.email = value or ""
            user_fields.add("email")
        elif prop == "DISABLED":
            user.is_active = not value
            user_fields.add("is_active")
        elif prop == "DEFAULT_ROLE":
            profile.default_role = value or ""
            profile_fields.add("default_role")
        elif prop == "DEFAULT_WAREHOUSE":
            profile.default_warehouse = value or ""
            profile_fields.add("default_warehouse")
        elif prop == "COMMENT":
            profile.comment = value or ""
            profile_fields.add("comment")
        # LOGIN_NAME (checked to equal the name) and MUST_CHANGE_PASSWORD = FALSE store nothing.
    if user_fields:
        user.save(update_fields=sorted(user_fields))
    if profile_fields:
        profile.save(update_fields=sorted(profile_fields))


def _profile(user) -> UserProfile:
    profile = UserProfile.objects.filter(user=user).first()
    if profile is None:
        # An empty default role means "not set": PUBLIC, or ACCOUNTADMIN for the bootstrap superuser.
        profile = UserProfile.objects.create(user=user, default_role="")
    return profile


# Creating, changing, dropping --------------------------------------------------------------------
# Each returns what the statement answers. The access history is written outside the transaction, so
# a refused or failed attempt is recorded, not rolled back with it.

def create_user(session: Session, text: str, properties: dict[str, Any], *, or_replace: bool = False,
                if_not_exists: bool = False) -> str:
    """CREATE [OR REPLACE] USER [IF NOT EXISTS]: the new user, owned by the session's role."""
    name = username(text)
    with history.recorded(session, "CREATE USER", "USER", name), transaction.atomic():
        _require_useradmin(session, f"account '{ACCOUNT}'")
        check_properties(name, properties)
        existing = find_user(text)
        if existing is not None:
            if if_not_exists:
                return f"{shown_name(existing.username)} already exists, statement succeeded."
            if not or_replace:
                raise UserError(f"SQL compilation error:\nObject '{shown_name(name)}' already exists.",
                                code=2002, sqlstate="42710")
            _forget(existing)
            existing.delete()
        user = get_user_model().objects.create_user(username=name)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        _apply(user, {"DISABLED": False, **properties})
        Grant.objects.create(privilege="OWNERSHIP", object_type="USER", object_name=name, grantee_type="ROLE",
                             grantee_name=session.role, granted_by=session.role)
    return f"User {shown_name(name)} successfully created."


def _user_to_change(session: Session, text: str, if_exists: bool):
    """The user an ALTER or DROP names, once USERADMIN's authority is checked; None when it does not exist and
    the statement said IF EXISTS."""
    _require_useradmin(session, f"user '{shown_name(username(text))}'")
    user = find_user(text)
    if user is None and not if_exists:
        raise _not_found(text)
    return user


def alter_user(session: Session, text: str, properties: dict[str, Any], *, if_exists: bool = False) -> str:
    """ALTER USER … SET (values) / UNSET (None values)."""
    name = username(text)
    with history.recorded(session, "ALTER USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return DONE
        check_properties(user.username, {k: v for k, v in properties.items() if v is not None})
        _apply(user, properties)
    return DONE


def rename_user(session: Session, text: str, new_text: str, *, if_exists: bool = False) -> str:
    """ALTER USER … RENAME TO: the grants naming the user follow it."""
    name, new_name = username(text), username(new_text)
    with history.recorded(session, "ALTER USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return DONE
        clash = find_user(new_text)
        if clash is not None and clash.pk != user.pk:
            raise UserError(f"SQL compilation error:\nObject '{shown_name(new_name)}' already exists.",
                            code=2002, sqlstate="42710")
        old = user.username
        user.username = new_name
        user.save(update_fields=["username"])
        Grant.objects.filter(object_type="USER", object_name=old).update(object_name=new_name)
        Grant.objects.filter(grantee_type="USER", grantee_name=old).update(grantee_name=new_name)
    return DONE


def _forget(user) -> None:
    """The grants that name a user go with it."""
    Grant.objects.filter(object_type="USER", object_name=user.username).delete()
    Grant.objects.filter(grantee_type="USER", grantee_name=user.username).delete()


def drop_user(session: Session, text: str, *, if_exists: bool = False) -> str:
    """DROP USER: the user, their grants and their stage; never the session's own user."""
    name = username(text)
    with history.recorded(session, "DROP USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return "Drop statement executed successfully (USER already dropped)."
        if session.user is not None and user.pk == session.user.pk:
            raise invalid_argument("You cannot drop the user you are signed in as.")
        _forget(user)
        stages.drop_user_stage(user)
        user.delete()
    return f"{shown_name(name)} successfully dropped."


# Listing and describing --------------------------------------------------------------------------

def _owners() -> dict[str, str]:
    return dict(Grant.objects.filter(privilege="OWNERSHIP", object_type="USER")
                .values_list("object_name", "grantee_name"))


def _described(user, profile: UserProfile | None, owner: str | None) -> dict[str, Any]:
    return {
        "name": shown_name(user.username),
        "created_on": user.date_joined,
        "login_name": shown_name(user.username),
        "display_name": user.first_name or shown_name(user.username),
        "email": user.email or None,
        "comment": (profile.comment if profile else "") or None,
        "disabled": "false" if user.is_active else "true",
        "must_change_password": "false",
        "default_role": (profile.default_role if profile else "") or None,
        "default_warehouse": (profile.default_warehouse if profile else "") or None,
        "owner": owner,
        "last_success_login": user.last_login,
    }


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user, by name, as SHOW USERS' columns (name, created_on, login_name, …, owner)."""
    _require_useradmin(session, f"account '{ACCOUNT}'")
    profiles = {p.user_id: p for p in UserProfile.objects.all()}
    owners = _owners()
    return [_described(user, profiles.get(user.pk), owners.get(user.username))
            for user in get_user_model().objects.order_by("username")]


def describe_user(session: Session, text: str) -> dict[str, Any]:
    """DESCRIBE USER's properties and their values (None: null), in DESCRIBE's order; no password, only
    whether one is set."""
    name = username(text)
    _require_useradmin(session, f"user '{shown_name(name)}'")
    user = find_user(text)
    if user is None:
        raise _not_found(text)
    row = _described(user, UserProfile.objects.filter(user=user).first(), _owners().get(user.username))
    return {
        "NAME": row["name"], "COMMENT": row["comment"], "DISPLAY_NAME": row["display_name"],
        "LOGIN_NAME": row["login_name"], "EMAIL": row["email"],
        "PASSWORD": "********" if user.has_usable_password() else None,
        "DISABLED": row["disabled"], "MUST_CHANGE_PASSWORD": row["must_change_password"],
        "DEFAULT_WAREHOUSE": row["default_warehouse"], "DEFAULT_ROLE": row["default_role"],
    }
