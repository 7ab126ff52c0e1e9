"""Sessions: the role and warehouse a new one starts with, and the one place its role, warehouse,
database and schema change.

`use` applies USE's checks: the role is granted to the user; the warehouse is one the role may see
(else it reads as missing, as SHOW WAREHOUSES hides it) and holds USAGE on; the role holds USAGE on
the database and on the schema (else they read as missing: "Database 'ACC' does not exist or not
authorized.", so a refusal tells nothing a missing name would not). USE ROLE / WAREHOUSE / DATABASE /
SCHEMA call it, and so does every entry point that opens a session from names a client sent
(`open_session`: the SQL API, the worksheet, `manage.py sql`) or keeps one between requests (the
header's menus, access/web.py): a database USE refuses cannot be reached by naming it in a request
body or a command-line option instead.

A user's DEFAULT_ROLE / DEFAULT_WAREHOUSE (CREATE/ALTER USER) mean the same thing everywhere too.
"""
from __future__ import annotations

import dataclasses

from access import privileges, role_graph
from access.models import PRIVILEGES, Role, UserProfile
from access.session import Session
from catalog import accountdata
from catalog.identifiers import quote
from errors import UserError
from warehouses.models import Warehouse

SESSION_FIELDS = ("role", "warehouse", "database", "schema")
# Who may enter the admin console: a user holding a role that inherits one of these (superusers always).
CONSOLE_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN")


def _profile(user) -> UserProfile | None:
    if user is None or not getattr(user, "pk", None):
        return None
    return UserProfile.objects.filter(user=user).first()


def _holds(user, role: str) -> bool:
    """The role is granted to the user, directly or through a role they hold; a superuser holds every role."""
    if user is not None and user.is_superuser:
        return True
    return any(role in role_graph.effective_roles(held) for held in role_graph.user_roles(user))


def may_use_role(user, role: str) -> bool:
    """The role exists and is granted to the user, directly or through a role they hold."""
    if user is None or not Role.objects.filter(name=role).exists():
        return False
    return _holds(user, role)


def may_use_console(user) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return any(set(CONSOLE_ROLES) & role_graph.effective_roles(held) for held in role_graph.user_roles(user))


def warehouse_access(session: Session) -> tuple[list[str], list[str]]:
    """(the warehouses the session sees, by name; those of them it may use, oldest first), in three
    queries however many warehouses there are: the header's menus read this on every page. Any privilege
    on a warehouse (USAGE, OPERATE, MONITOR, MODIFY) or owning it shows it, as SHOW WAREHOUSES lists
    them; USE WAREHOUSE needs USAGE. SYSADMIN owns every warehouse (privileges.WAREHOUSE_OWNER)."""
    held = privileges.Held(session)
    seen: list[str] = []
    usable: list[tuple[int, str]] = []
    for pk, name in Warehouse.objects.order_by("name").values_list("pk", "name"):
        key = privileges.key(name)
        if held.has("USAGE", "WAREHOUSE", key, privileges.WAREHOUSE_OWNER):
            seen.append(name)
            usable.append((pk, name))
        elif any(held.has(p, "WAREHOUSE", key, None) for p in PRIVILEGES["WAREHOUSE"]):
            seen.append(name)
    return seen, [name for _, name in sorted(usable)]


def visible_warehouses(session: Session) -> list[str]:
    """The warehouses SHOW WAREHOUSES lists for the session; the header's menu, the wizard and USE
    WAREHOUSE read the same list, so none of them reveals a warehouse SHOW WAREHOUSES hides."""
    return warehouse_access(session)[0]


def usable_warehouses(session: Session) -> list[str]:
    """The warehouses the session's role may make current (USAGE), oldest first."""
    return warehouse_access(session)[1]


def default_role(user) -> str:
    """The profile's DEFAULT_ROLE when the user may still use it, else PUBLIC. A superuser without a
    default role set (the bootstrap administrator, who has no profile) starts as ACCOUNTADMIN."""
    profile = _profile(user)
    if profile is None or not profile.default_role:
        return "ACCOUNTADMIN" if user is not None and user.is_superuser else "PUBLIC"
    return profile.default_role if may_use_role(user, profile.default_role) else "PUBLIC"


def default_warehouse(user=None) -> str | None:
    """The profile's DEFAULT_WAREHOUSE when it still exists, else the first warehouse."""
    profile = _profile(user)
    if profile is not None and profile.default_warehouse:
        if Warehouse.objects.filter(name=profile.default_warehouse).exists():
            return profile.default_warehouse
    return Warehouse.objects.order_by("pk").values_list("name", flat=True).first()


def default_warehouse_for(session: Session, usable: list[str] | None = None) -> str | None:
    """The warehouse a session of this role starts in: default_warehouse when the role may use it, else
    the first one it may use, else none (Snowflake, too, starts a session without a warehouse its role
    cannot use rather than refusing the sign-in). `usable`: usable_warehouses(session), when read already."""
    usable = usable_warehouses(session) if usable is None else usable
    profile = _profile(session.user)
    if profile is not None and profile.default_warehouse in usable:
        return profile.default_warehouse
    return usable[0] if usable else None


def usable_roles(user) -> list[str]:
    """Every role the user may switch to: the roles granted to them and all those inherit, sorted."""
    if user is None:
        return ["PUBLIC"]
    names: set[str] = set()
    for held in role_graph.user_roles(user):
        names |= role_graph.effective_roles(held)
    existing = set(Role.objects.filter(name__in=names).values_list("name", flat=True))
    return sorted(existing | {"PUBLIC"})


# Opening and changing a session ---------------------------------------------------------------------

def _missing(kind: str, name: str) -> UserError:
    return UserError(f"{kind} '{name}' does not exist or not authorized.", code=2003, sqlstate="02000")


def _check_role(user, role: str) -> None:
    if not Role.objects.filter(name=role).exists():
        raise _missing("Role", role)
    if not _holds(user, role):
        raise UserError(f"Requested role '{role}' is not assigned to the executing user. Specify another role "
                          "to activate.", code=3013, sqlstate="42501")


def _check_warehouse(session: Session, name: str) -> None:
    if name not in visible_warehouses(session):  # a missing one is not visible either
        raise UserError(f"Object does not exist, or operation cannot be performed: warehouse '{name}'.",
                          code=2043, sqlstate="02000")
    privileges.require_warehouse_usage(session, name)


def _check_database(session: Session, database: str, roles: set[str]) -> None:
    accountdata.get_database(database)
    if not privileges.has_privilege(session, "USAGE", "DATABASE", privileges.key(database), roles=roles):
        raise _missing("Database", quote(database))


def _check_schema(session: Session, database: str, schema: str, roles: set[str]) -> None:
    accountdata.get_schema(database, schema)
    if not privileges.has_privilege(session, "USAGE", "SCHEMA", privileges.key(database, schema), roles=roles):
        raise _missing("Schema", f"{quote(database)}.{quote(schema)}")


def use(session: Session, *, role: str | None = None, warehouse: str | None = None, database: str | None = None,
        schema: str | None = None) -> Session:
    """Make the named role, warehouse, database and schema (normalized names) current, each checked as
    USE checks it, in that order (the warehouse and the database are checked for the new role). All or
    nothing: a refusal leaves the session as it was. A database without a schema makes its PUBLIC
    current, as USE DATABASE does; a schema without a database is one of the current database."""
    trial = dataclasses.replace(session)
    if role is not None:
        _check_role(session.user, role)
        trial.role = role
    if warehouse is not None:
        _check_warehouse(trial, warehouse)
        trial.warehouse = warehouse
    if schema is not None and database is None:
        database = trial.database
        if not database:
            raise UserError(f"Cannot use schema '{quote(schema)}': this session has no current database. Run USE "
                              "DATABASE first, or name the database too: USE SCHEMA db.schema.",
                              code=90105, sqlstate="22000")
    if database is not None:
        roles = privileges.session_roles(trial)
        # The database before the schema, so a schema of a database the role may not use reads like the
        # database is missing rather than saying whether the schema exists.
        _check_database(trial, database, roles)
        if schema is not None:
            _check_schema(trial, database, schema, roles)
        trial.database, trial.schema = database, schema or accountdata.DEFAULT_SCHEMA
    for name in SESSION_FIELDS:
        setattr(session, name, getattr(trial, name))
    return session


def open_session(user, *, role: str | None = None, warehouse: str | None = None, database: str | None = None,
                 schema: str | None = None, entry_point: str = "cli") -> Session:
    """A new session for `user` in the named role, warehouse, database and schema (normalized names),
    refused as `use` refuses them. What is not named comes from the user's defaults: DEFAULT_ROLE, and
    default_warehouse_for that role; no database. A role the user may not use is refused with the
    sign-in error Snowflake's clients get (390189), not USE ROLE's."""
    role = role or default_role(user)
    try:
        _check_role(user, role)
    except UserError as error:
        raise UserError(f"Role '{role}' specified in the request does not exist or is not granted to this user.",
                          code=390189, sqlstate="08004") from error
    session = Session(user=user, role=role, entry_point=entry_point)
    if warehouse is None:
        session.warehouse = default_warehouse_for(session)
    return use(session, warehouse=warehouse, database=database, schema=schema)
