"""CREATE / ALTER / DROP USER, SHOW USERS and DESCRIBE USER: Snowflake's users on Django's auth users.

Naming rule: a user's name is its Django username, which is also what they sign in with. Unquoted
names follow identifier rules case-insensitively and are stored lower-case (`CREATE USER Bob` stores
`bob`; the bootstrap `admin` stays `admin`); a "quoted" name is stored exactly as written. SHOW USERS
shows a lower-case name upper-cased, the way Snowflake shows unquoted names. LOGIN_NAME may only
repeat the name: sign-in names separate from user names are not supported.

Passwords are hashed by Django and never shown; sqlengine/redaction.py masks them in statement text
kept for history. Only roles inheriting USERADMIN may run these statements.
"""
from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from sqlglot import exp

from access import history
from access.models import Grant, Role, UserProfile
from access.role_graph import effective_roles
from catalog import stages
from errors import UserError, compilation_error, invalid_argument
from sqlengine import show
from sqlengine.results import Result, status
from sqlengine.statements.grants import Tokens

MIN_PASSWORD_LENGTH = 8
ACCOUNT = "STUDIO"
SHOW_COLUMNS = ["name", "created_on", "login_name", "display_name", "email", "comment", "disabled",
                "must_change_password", "default_role", "default_warehouse", "owner", "last_success_login"]
SHOW_TYPES = ["TEXT", "TIMESTAMP_LTZ", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT",
              "TIMESTAMP_LTZ"]
DESCRIBE_COLUMNS = ["property", "value", "default", "description"]
# Property: (description, default as DESCRIBE shows it).
PROPERTIES: dict[str, tuple[str, str | None]] = {
    "NAME": ("Name", None),
    "COMMENT": ("user comment associated to an object in the dictionary", None),
    "DISPLAY_NAME": ("Display name of the associated object", None),
    "LOGIN_NAME": ("Login name of the user", None),
    "EMAIL": ("Email address of the user", None),
    "PASSWORD": ("Password of the user", None),
    "DISABLED": ("Whether the user is disabled", "false"),
    "MUST_CHANGE_PASSWORD": ("User must change the password", "false"),
    "DEFAULT_WAREHOUSE": ("Default warehouse for this user", None),
    "DEFAULT_ROLE": ("Primary default role for this user", None),
}
SETTABLE = ("PASSWORD", "LOGIN_NAME", "DISPLAY_NAME", "EMAIL", "DEFAULT_ROLE", "DEFAULT_WAREHOUSE",
            "MUST_CHANGE_PASSWORD", "DISABLED", "COMMENT")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


def _text(statement: exp.Expression) -> str:
    return statement.sql(dialect="snowflake").strip().rstrip(";")


def handles(statement: exp.Expression) -> bool:
    if isinstance(statement, exp.Show):
        return str(statement.this).upper() == "USERS"
    if isinstance(statement, exp.Command):
        words = _text(statement).upper().split()
        if words[:2] in (["ALTER", "USER"], ["DROP", "USER"], ["SHOW", "USERS"], ["CREATE", "USER"],
                         ["DESCRIBE", "USER"], ["DESC", "USER"]):
            return True
        return words[:4] == ["CREATE", "OR", "REPLACE", "USER"]
    return False


def run(executor, statement: exp.Expression) -> Result:
    session = executor.session
    text = _text(statement)
    if isinstance(statement, exp.Show):
        spec = show.from_expression(statement)
        return show_users(session, like=spec.like, starts_with=spec.starts_with, limit=spec.limit)
    tokens = Tokens(text)
    if tokens.accept("SHOW"):
        tokens.accept("TERSE")
        tokens.expect("USERS")
        like = tokens.string() if tokens.accept("LIKE") else None
        tokens.end()
        return show_users(session, like=like)
    if tokens.accept("CREATE"):
        or_replace = tokens.accept("OR", "REPLACE")
        tokens.expect("USER")
        if_not_exists = tokens.accept("IF", "NOT", "EXISTS")
        name = tokens.name("a user name")
        properties = _properties(tokens)
        tokens.end()
        return create_user(session, name, properties, or_replace=or_replace, if_not_exists=if_not_exists)
    if tokens.accept("ALTER", "USER"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("a user name")
        if tokens.accept("RENAME", "TO"):
            new_name = tokens.name("a user name")
            tokens.end()
            return rename_user(session, name, new_name, if_exists=if_exists)
        if tokens.accept("SET"):
            properties = _properties(tokens)
            if not properties:
                raise tokens.error("a property to set")
            tokens.end()
            return alter_user(session, name, properties, if_exists=if_exists)
        tokens.expect("UNSET")
        names = []
        while True:
            names.append(_property_name(tokens))
            if not tokens.accept(","):
                break
        tokens.end()
        return alter_user(session, name, {n: None for n in names}, if_exists=if_exists)
    if tokens.accept("DROP", "USER"):
        if_exists = tokens.accept("IF", "EXISTS")
        name = tokens.name("a user name")
        tokens.end()
        return drop_user(session, name, if_exists=if_exists)
    if not tokens.accept("DESCRIBE"):
        tokens.expect("DESC")
    tokens.expect("USER")
    name = tokens.name("a user name")
    tokens.end()
    return describe_user(session, name)


# Parsing properties -------------------------------------------------------------------------------

def _property_name(tokens: Tokens) -> str:
    word = (tokens.peek() or "").upper()
    if word not in SETTABLE:
        raise tokens.error("one of " + ", ".join(SETTABLE))
    tokens.i += 1
    return word


def _properties(tokens: Tokens) -> dict[str, Any]:
    """PROP = value pairs, until the statement ends; values: strings, TRUE/FALSE, names."""
    properties: dict[str, Any] = {}
    while tokens.peek() is not None:
        name = _property_name(tokens)
        tokens.expect("=")
        token = tokens.peek()
        if token is None:
            raise tokens.error(f"a value for {name}")
        if name in ("MUST_CHANGE_PASSWORD", "DISABLED"):
            if token.upper() not in ("TRUE", "FALSE"):
                raise tokens.error(f"TRUE or FALSE for {name}")
            tokens.i += 1
            value: Any = token.upper() == "TRUE"
        elif name in ("DEFAULT_ROLE", "DEFAULT_WAREHOUSE") and not token.startswith("'"):
            value = _identifier(tokens.name(f"a value for {name}"))
        elif name in ("LOGIN_NAME", "DISPLAY_NAME") and not token.startswith("'"):
            value = tokens.name(f"a value for {name}")
        else:
            value = tokens.string()
        properties[name] = value
        tokens.accept(",")
    return properties


def _identifier(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.upper()


def username(text: str) -> str:
    """The Django username a user name maps to: unquoted names lower-case, quoted ones as written."""
    text = text.strip()
    if "." in text.replace('"', "") and not text.startswith('"'):
        raise compilation_error(f"'{text}' is not a user name.")
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
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


def _require_useradmin(session, what: str) -> None:
    if "USERADMIN" not in effective_roles(session.role):
        raise _insufficient(what)


def _not_found(text: str) -> UserError:
    return UserError(f"SQL compilation error:\nUser '{shown_name(username(text))}' does not exist or not authorized.",
                       code=2003, sqlstate="02000")


# The statements ----------------------------------------------------------------------------------

def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid_argument(f"Password is too short: a password needs at least {MIN_PASSWORD_LENGTH} characters.")


def _check(name: str, properties: dict[str, Any]) -> None:
    """Refuse values that cannot be stored, before anything is written."""
    if properties.get("PASSWORD") is not None:
        _check_password(properties["PASSWORD"])
    role = properties.get("DEFAULT_ROLE")
    if role and not Role.objects.filter(name=role).exists():
        raise UserError(f"SQL compilation error:\nRole '{role}' does not exist or not authorized.",
                          code=2003, sqlstate="02000")
    login = properties.get("LOGIN_NAME")
    if login is not None and username(login) != name:
        raise invalid_argument(f"LOGIN_NAME must be the user's name ('{shown_name(name)}'): users sign in with their "
                               "name here. Rename the user with ALTER USER … RENAME TO instead.")
    if properties.get("MUST_CHANGE_PASSWORD"):
        raise invalid_argument("MUST_CHANGE_PASSWORD = TRUE is not supported yet; users change their password "
                               "on the Change password page.")
    for field, limit in (("DISPLAY_NAME", 150), ("EMAIL", 254)):
        if properties.get(field) and len(properties[field]) > limit:
            raise invalid_argument(f"{field} is longer than {limit} characters.")


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


def create_user(session, text: str, properties: dict[str, Any], *, or_replace: bool = False,
                if_not_exists: bool = False) -> Result:
    name = username(text)
    # Outside the transaction: a refused or failed attempt is recorded, not rolled back with it.
    with history.recorded(session, "CREATE USER", "USER", name), transaction.atomic():
        _require_useradmin(session, f"account '{ACCOUNT}'")
        _check(name, properties)
        existing = find_user(text)
        if existing is not None:
            if if_not_exists:
                return status(f"{shown_name(existing.username)} already exists, statement succeeded.")
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
    return status(f"User {shown_name(name)} successfully created.")


def _user_to_change(session, text: str, if_exists: bool):
    """The user an ALTER or DROP names, once USERADMIN's authority is checked; None when it does not exist and
    the statement said IF EXISTS."""
    _require_useradmin(session, f"user '{shown_name(username(text))}'")
    user = find_user(text)
    if user is None and not if_exists:
        raise _not_found(text)
    return user


def alter_user(session, text: str, properties: dict[str, Any], *, if_exists: bool = False) -> Result:
    name = username(text)
    # Outside the transaction: a refused or failed attempt is recorded, not rolled back with it.
    with history.recorded(session, "ALTER USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return status("Statement executed successfully.")
        _check(user.username, {k: v for k, v in properties.items() if v is not None})
        _apply(user, properties)
    return status("Statement executed successfully.")


def rename_user(session, text: str, new_text: str, *, if_exists: bool = False) -> Result:
    name, new_name = username(text), username(new_text)
    # Outside the transaction: a refused or failed attempt is recorded, not rolled back with it.
    with history.recorded(session, "ALTER USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return status("Statement executed successfully.")
        clash = find_user(new_text)
        if clash is not None and clash.pk != user.pk:
            raise UserError(f"SQL compilation error:\nObject '{shown_name(new_name)}' already exists.",
                              code=2002, sqlstate="42710")
        old = user.username
        user.username = new_name
        user.save(update_fields=["username"])
        Grant.objects.filter(object_type="USER", object_name=old).update(object_name=new_name)
        Grant.objects.filter(grantee_type="USER", grantee_name=old).update(grantee_name=new_name)
    return status("Statement executed successfully.")


def _forget(user) -> None:
    """The grants that name a user go with it."""
    Grant.objects.filter(object_type="USER", object_name=user.username).delete()
    Grant.objects.filter(grantee_type="USER", grantee_name=user.username).delete()


def drop_user(session, text: str, *, if_exists: bool = False) -> Result:
    name = username(text)
    # Outside the transaction: a refused or failed attempt is recorded, not rolled back with it.
    with history.recorded(session, "DROP USER", "USER", name), transaction.atomic():
        user = _user_to_change(session, text, if_exists)
        if user is None:
            return status("Drop statement executed successfully (USER already dropped).")
        if session.user is not None and user.pk == session.user.pk:
            raise invalid_argument("You cannot drop the user you are signed in as.")
        _forget(user)
        stages.drop_user_stage(user)
        user.delete()
    return status(f"{shown_name(name)} successfully dropped.")


def _owners() -> dict[str, str]:
    return dict(Grant.objects.filter(privilege="OWNERSHIP", object_type="USER")
                .values_list("object_name", "grantee_name"))


def _row(user, profile: UserProfile | None, owner: str | None) -> dict[str, Any]:
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


def show_users(session, *, like: str | None = None, starts_with: str | None = None,
               limit: int | None = None) -> Result:
    _require_useradmin(session, f"account '{ACCOUNT}'")
    profiles = {p.user_id: p for p in UserProfile.objects.all()}
    owners = _owners()
    rows = []
    for user in get_user_model().objects.order_by("username"):
        if like is not None and not show.like_matches(like, shown_name(user.username)):
            continue
        if starts_with is not None and not shown_name(user.username).startswith(starts_with):
            continue
        row = _row(user, profiles.get(user.pk), owners.get(user.username))
        rows.append(tuple(row[c] for c in SHOW_COLUMNS))
    return Result(list(SHOW_COLUMNS), rows[:limit] if limit is not None else rows, list(SHOW_TYPES))


def describe_user(session, text: str) -> Result:
    name = username(text)
    _require_useradmin(session, f"user '{shown_name(name)}'")
    user = find_user(text)
    if user is None:
        raise _not_found(text)
    row = _row(user, UserProfile.objects.filter(user=user).first(), _owners().get(user.username))
    values = {
        "NAME": row["name"], "COMMENT": row["comment"], "DISPLAY_NAME": row["display_name"],
        "LOGIN_NAME": row["login_name"], "EMAIL": row["email"],
        "PASSWORD": "********" if user.has_usable_password() else None,
        "DISABLED": row["disabled"], "MUST_CHANGE_PASSWORD": row["must_change_password"],
        "DEFAULT_WAREHOUSE": row["default_warehouse"], "DEFAULT_ROLE": row["default_role"],
    }
    rows = [(prop, "null" if values[prop] is None else str(values[prop]),
             "null" if default is None else default, description)
            for prop, (description, default) in PROPERTIES.items()]
    return Result(list(DESCRIBE_COLUMNS), rows, ["TEXT"] * 4)
