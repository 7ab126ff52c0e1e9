"""What GRANT, REVOKE and SHOW GRANTS name: the privileges each object type has, and roles, users,
database roles and objects resolved to their stored names (privileges.key), as far as the session may
see them.

An object the session may not see is missing (seen_object), worded as a missing one is at the first
level the role may not use (database, then schema, then the object), so neither GRANT's refusal nor
SHOW GRANTS tells whether anything exists in a database the role may not use.
"""
from __future__ import annotations

import duckdb
from django.contrib.auth import get_user_model

from access import privileges
from access.models import DATABASE_ROLE, PRIVILEGES, ROLE, USER, Grant, Role
from access.session import Session
from catalog import accountdata
from catalog.identifiers import qualify, quote, split_parts
from errors import UserError, compilation_error

OBJECT_TYPES = tuple(PRIVILEGES)
GRANTEE_TYPES = (ROLE, USER)
# Snowflake's application database roles; CORTEX_USER gates the Cortex functions.
DATABASE_ROLES = ("SNOWFLAKE.CORTEX_USER",)


def not_found(kind: str, name: str) -> UserError:
    return UserError(f"{kind} '{name}' does not exist or not authorized.", code=2003, sqlstate="02000")


# Names ------------------------------------------------------------------------------------------

def role_name(text: str) -> str:
    """A role named by an identifier (unquoted: upper-cased), which must exist."""
    parts = split_parts(text)
    if len(parts) != 1:
        raise compilation_error(f"'{text}' is not a role name.")
    role = Role.objects.filter(name=parts[0]).first()
    if role is None:
        raise not_found("Role", quote(parts[0]))
    return role.name


def user_name(text: str) -> str:
    """A user's username: a quoted identifier matches exactly, an unquoted one in any case."""
    text = text.strip()
    users = get_user_model().objects
    if text.startswith('"'):
        (name,) = split_parts(text)
        user = users.filter(username=name).first()
    else:
        split_parts(text)  # identifier rules
        user = users.filter(username__iexact=text).order_by("pk").first()
    if user is None:
        raise not_found("User", text.strip('"'))
    return user.get_username()


def database_role_name(text: str) -> str:
    name = privileges.key(*split_parts(text))
    if name not in DATABASE_ROLES:
        raise not_found("Database role", name)
    return name


def grantee(grantee_type: str, text: str) -> str:
    grantee_type = grantee_type.upper()
    if grantee_type == ROLE:
        return role_name(text)
    if grantee_type == USER:
        return user_name(text)
    raise compilation_error(f"grants go to a ROLE or a USER, not to {grantee_type}.")


def resolve_object(session: Session, object_type: str, text: str) -> str:
    """The stored name of an existing object the session may see, resolved against the session's database
    and schema: GRANT and REVOKE name their objects here (seen_object: owning the object or holding a
    privilege on it is enough for them)."""
    return seen_object(session, object_type, text, containers=False)


def seen_object(session: Session, object_type: str, text: str, *, containers: bool = True) -> str:
    """The stored name of an existing object the session may see. Seeing one takes owning it, or some
    privilege on it (and, with `containers`, as SHOW GRANTS ON asks, USAGE on its database and schema),
    or MANAGE GRANTS. One the session may not see is reported as missing, in the words a missing one
    gets at the first level the role may not use (database, then schema, then the object), so neither
    GRANT's refusal nor SHOW GRANTS tells whether anything exists in a database the role may not use.
    Roles and database roles are not hidden: SHOW ROLES lists every role to everyone, as in Snowflake."""
    object_type = object_type.upper()
    roles = privileges.session_roles(session)
    # Stages answer for themselves in _existing_object: every stage the role may not see is missing there,
    # worded as LIST and PUT word it (catalog/stages.py).
    if object_type not in PRIVILEGES or object_type == "STAGE" or roles & set(privileges.MANAGE_GRANTS_ROLES):
        return _existing_object(session, object_type, text)
    try:
        name = _existing_object(session, object_type, text)
    except UserError:
        name = None
    if name is not None and (privileges.owner_of(object_type, name) in roles
                             or (not containers and _granted(roles, object_type, name))):
        return name
    _require_containers(session, roles, object_type, text)
    name = _existing_object(session, object_type, text)
    if not _granted(roles, object_type, name):
        raise unseen(object_type.capitalize(), name)
    return name


def _granted(roles: set[str], object_type: str, name: str) -> bool:
    return Grant.objects.filter(object_type=object_type, object_name=name, grantee_type=ROLE,
                                grantee_name__in=roles).exists()


def unseen(kind: str, name: str) -> UserError:
    """What not_found says, counted as a refusal in the access history."""
    return UserError(f"{kind} '{name}' does not exist or not authorized.", code=2003, sqlstate="02000", refused=True)


def _require_containers(session: Session, roles: set[str], object_type: str, text: str) -> None:
    """USAGE on the database (and schema) an object's name resolves to, each refused as missing. Names
    that do not resolve are left to _existing_object, which words their error."""
    if object_type in ("DATABASE", "WAREHOUSE"):
        return
    parts = split_parts(text)
    if object_type == "SCHEMA":
        if len(parts) > 2 or not (len(parts) == 2 or session.database):
            return
        database, schema = (parts[0] if len(parts) == 2 else session.database), None
    else:
        try:
            name = qualify(text, session.database, session.schema, what=object_type.lower())
        except UserError:
            return
        database, schema = name.database, name.schema
    if not privileges.has_privilege(session, "USAGE", "DATABASE", privileges.key(database), roles=roles):
        raise accountdata.database_not_found(database, refused=True)
    if schema is not None and not privileges.has_privilege(session, "USAGE", "SCHEMA", privileges.key(database, schema),
                                                           roles=roles):
        raise accountdata.schema_not_found(database, schema, refused=True)


def _existing_object(session: Session, object_type: str, text: str) -> str:
    """The stored name of an existing object, resolved against the session's database and schema."""
    if object_type == ROLE:
        return privileges.key(role_name(text))
    if object_type == DATABASE_ROLE:
        return database_role_name(text)
    if object_type not in PRIVILEGES:
        raise compilation_error(f"cannot grant privileges on {object_type}; object types: "
                                f"{', '.join(OBJECT_TYPES)}.")
    parts = split_parts(text)
    if object_type == "DATABASE":
        if len(parts) != 1:
            raise compilation_error(f"'{text}' is not a database name.")
        return privileges.key(accountdata.get_database(parts[0]).name)
    if object_type == "WAREHOUSE":
        from warehouses.models import Warehouse

        if len(parts) != 1 or not Warehouse.objects.filter(name=parts[0]).exists():
            raise not_found("Warehouse", privileges.key(*parts))
        return privileges.key(*parts)
    if object_type == "SCHEMA":
        if len(parts) > 2:
            raise compilation_error(f"'{text}' is not a schema name: use schema or database.schema.")
        database = parts[0] if len(parts) == 2 else session.database
        if not database:
            raise UserError(f"Cannot resolve schema '{text}': this session has no current database. Run USE "
                              "DATABASE or qualify the name as database.schema.", code=90105, sqlstate="22000")
        schema = accountdata.get_schema(database, parts[-1])
        return privileges.key(schema.database.name, schema.name)
    name = qualify(text, session.database, session.schema, what=object_type.lower())
    if object_type == "STAGE":
        from catalog.models import Stage

        owner = Stage.objects.filter(schema__database__name=name.database, schema__name=name.schema,
                                     name=name.name).values_list("owner_role", flat=True).first()
        # A stage the role may not see is one that does not exist, as LIST and PUT tell it (catalog/stages.py).
        visibility = privileges.Visibility(session)
        if owner is None or not (visibility.sees("STAGE", str(name), owner)
                                 or visibility.roles & set(privileges.MANAGE_GRANTS_ROLES)):
            raise UserError(f"SQL compilation error: Stage '{name}' does not exist or not authorized.",
                              code=2003, sqlstate="02000")
        return str(name)
    if object_type == "MODEL":
        from models_registry.models import FineTunedModel

        if not FineTunedModel.objects.filter(schema__database__name=name.database, schema__name=name.schema,
                                             name=name.name).exists():
            raise not_found("Model", str(name))
        return str(name)
    accountdata.get_schema(name.database, name.schema)
    if name.name not in schema_tables(name.database, name.schema, object_type):
        raise not_found(object_type.capitalize(), str(name))
    return str(name)


def schema_tables(database: str, schema: str, object_type: str = "TABLE") -> list[str]:
    """Names of the tables (or views) of a schema, from its DuckDB file."""
    table_type = "VIEW" if object_type == "VIEW" else "BASE TABLE"
    with accountdata.connect(None, None) as con:
        try:
            rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
                               "AND table_schema = ? AND table_type = ? ORDER BY table_name",
                               [database, schema, table_type]).fetchall()
        except duckdb.Error:
            return []
    return [r[0] for r in rows]
