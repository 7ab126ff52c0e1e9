"""Grants: privileges on objects held by roles, roles granted to roles and users, and roles themselves.

The service the GRANT / REVOKE / SHOW GRANTS / CREATE ROLE statements and the admin console call
(sqlengine/statements/grants.py, access/admin.py). It stores and removes access.models.Grant rows,
after checking that the session may (access/privileges.py decides who holds what):
- GRANT / REVOKE of a privilege: the object's owner, a holder of that privilege WITH GRANT OPTION, or
  a role with MANAGE GRANTS (SECURITYADMIN, and ACCOUNTADMIN above it);
- GRANT / REVOKE of a role: its owner or MANAGE GRANTS; of SNOWFLAKE.CORTEX_USER: ACCOUNTADMIN only;
- CREATE ROLE: USERADMIN or a role above it; DROP ROLE: the role's owner or MANAGE GRANTS;
- SHOW GRANTS (shown_grants_to / shown_grants_on): only what the session may know, see below.
An object the session may not see is missing to all of these (seen_object).
Every GRANT and REVOKE, refused or not, is recorded in the access history (access/history.py).

Stored forms (what the checks will read):
- a privilege: Grant(privilege="USAGE", object_type="SCHEMA", object_name="DB.PUBLIC", ROLE grantee);
- a role granted to a role or a user: Grant(privilege="USAGE", object_type="ROLE", object_name="R1");
  granting a role to a user also adds the user to Role.users, which sessions check today;
- a database role (SNOWFLAKE.CORTEX_USER): Grant(privilege="USAGE", object_type="DATABASE ROLE", …);
- the creator of a role owns it: Grant(privilege="OWNERSHIP", object_type="ROLE", …) to its role.
object_name is the qualified name with Snowflake's identifier rules, each part quoted only where it
must be (privileges.key); grantee_name is the role's name or the user's username as stored.
"""
from __future__ import annotations

from collections.abc import Iterable

import duckdb
from django.contrib.auth import get_user_model
from django.db import transaction

from access import history, privileges
from access.models import DATABASE_ROLE, ROLE, SYSTEM_ROLES, USER, Grant, Role
from access.role_graph import inherited_roles
from access.session import Session
from catalog import accountdata
from catalog.identifiers import qualify, quote, split_parts
from errors import UserError, compilation_error

# Privileges that GRANT accepts per object type (ALL grants each of them). OWNERSHIP is not granted
# this way: it stays with the object's owner_role.
PRIVILEGES: dict[str, tuple[str, ...]] = {
    "DATABASE": ("USAGE", "MONITOR", "MODIFY", "CREATE SCHEMA", "CREATE DATABASE ROLE"),
    "SCHEMA": ("USAGE", "MONITOR", "MODIFY", "CREATE TABLE", "CREATE VIEW", "CREATE STAGE", "CREATE MODEL"),
    "TABLE": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"),
    "VIEW": ("SELECT", "REFERENCES"),
    "MODEL": ("USAGE",),
    # Internal stages: READ (LIST, GET, COPY INTO <table>), WRITE (PUT, REMOVE); see catalog/stages.py.
    "STAGE": ("READ", "WRITE"),
    "WAREHOUSE": ("USAGE", "OPERATE", "MONITOR", "MODIFY"),
}
OBJECT_TYPES = tuple(PRIVILEGES)
GRANTEE_TYPES = (ROLE, USER)
# Snowflake's application database roles; CORTEX_USER gates the Cortex functions.
DATABASE_ROLES = ("SNOWFLAKE.CORTEX_USER",)


def _not_found(kind: str, name: str) -> UserError:
    return UserError(f"{kind} '{name}' does not exist or not authorized.", code=2003, sqlstate="02000")


# Names ------------------------------------------------------------------------------------------

def role_name(text: str) -> str:
    """A role named by an identifier (unquoted: upper-cased), which must exist."""
    parts = split_parts(text)
    if len(parts) != 1:
        raise compilation_error(f"'{text}' is not a role name.")
    role = Role.objects.filter(name=parts[0]).first()
    if role is None:
        raise _not_found("Role", quote(parts[0]))
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
        raise _not_found("User", text.strip('"'))
    return user.get_username()


def database_role_name(text: str) -> str:
    name = privileges.key(*split_parts(text))
    if name not in DATABASE_ROLES:
        raise _not_found("Database role", name)
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
        raise _unseen(object_type.capitalize(), name)
    return name


def _granted(roles: set[str], object_type: str, name: str) -> bool:
    return Grant.objects.filter(object_type=object_type, object_name=name, grantee_type=ROLE,
                                grantee_name__in=roles).exists()


def _unseen(kind: str, name: str) -> UserError:
    """What _not_found says, counted as a refusal in the access history."""
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
            raise _not_found("Warehouse", privileges.key(*parts))
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
            raise _not_found("Model", str(name))
        return str(name)
    accountdata.get_schema(name.database, name.schema)
    if name.name not in schema_tables(name.database, name.schema, object_type):
        raise _not_found(object_type.capitalize(), str(name))
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


def privileges_for(object_type: str, privileges: Iterable[str]) -> list[str]:
    """Normalized privileges, ALL expanded; a privilege the object type does not have is refused."""
    object_type = object_type.upper()
    valid = PRIVILEGES[object_type]
    out: list[str] = []
    for privilege in privileges:
        privilege = " ".join(privilege.upper().split())
        if privilege in ("ALL", "ALL PRIVILEGES"):
            out.extend(p for p in valid if p not in out)
        elif privilege == "OWNERSHIP":
            raise compilation_error(f"GRANT OWNERSHIP is not supported: a {object_type} stays owned by the role "
                                    "that created it.")
        elif privilege not in valid:
            raise compilation_error(f"Invalid privilege {privilege} on {object_type}. Privileges on a "
                                    f"{object_type}: {', '.join(valid)}, ALL.")
        elif privilege not in out:
            out.append(privilege)
    return out


def in_storing_order(object_type: str, privileges: list[str], *, revoking: bool) -> list[str]:
    """One statement's privileges in the order they are stored: on a stage READ goes in before WRITE and
    comes out after it, so GRANT WRITE, READ and REVOKE READ, WRITE keep Snowflake's order (out_of_order)."""
    if object_type.upper() != "STAGE":
        return list(privileges)
    first = "WRITE" if revoking else "READ"
    return sorted(privileges, key=lambda p: " ".join(p.upper().split()) != first)


def out_of_order(object_type: str, object_name: str, grantee_name: str, privileges: list[str], *,
                 revoking: bool) -> str | None:
    """The privilege that would break Snowflake's order on a stage when `privileges` (expanded) are
    granted or revoked together: WRITE without READ held or granted with it, or READ revoked while WRITE
    stays. None when the order holds."""
    if object_type.upper() != "STAGE":
        return None
    held = set(Grant.objects.filter(object_type="STAGE", object_name=object_name, grantee_type=ROLE,
                                    grantee_name=grantee_name).values_list("privilege", flat=True))
    if not revoking and "WRITE" in privileges and "READ" not in privileges and "READ" not in held:
        return "WRITE"
    if revoking and "READ" in privileges and "WRITE" not in privileges and "WRITE" in held:
        return "READ"
    return None


def _order_violation(revoking: bool) -> UserError:
    if revoking:
        return UserError("SQL compilation error: Privilege order violation for the grants on stage. WRITE should "
                           "be revoked before/simultaneously with READ.", code=3512, sqlstate="23001")
    return UserError("SQL compilation error: Privilege order violation for the grants on stage. READ should be "
                       "granted before/simultaneously with WRITE.", code=3511, sqlstate="23001")


# Who may grant ----------------------------------------------------------------------------------

def _display(object_type: str, object_name: str) -> str:
    if object_type == DATABASE_ROLE:
        return object_name
    return quote(split_parts(object_name)[-1])


def may_grant(session: Session, privilege: str, object_type: str, object_name: str) -> bool:
    """Whether the session may GRANT (or REVOKE) `privilege` on an object (its stored name)."""
    roles = privileges.session_roles(session)
    if object_type == DATABASE_ROLE:
        return privileges.ACCOUNTADMIN in roles
    if roles & set(privileges.MANAGE_GRANTS_ROLES):
        return True
    if privileges.owner_of(object_type, object_name) in roles:
        return True
    return object_type != ROLE and Grant.objects.filter(
        privilege=privilege, object_type=object_type, object_name=object_name, grantee_type=ROLE,
        grantee_name__in=roles, grant_option=True).exists()


def _require_grant_authority(session: Session, privilege: str, object_type: str, object_name: str) -> None:
    if not may_grant(session, privilege, object_type, object_name):
        raise privileges.insufficient(object_type, _display(object_type, object_name))


# Granting and revoking --------------------------------------------------------------------------

def _store(session: Session, privilege: str, object_type: str, object_name: str, grantee_type: str,
           grantee_name: str, grant_option: bool) -> Grant:
    found, created = Grant.objects.get_or_create(
        privilege=privilege, object_type=object_type, object_name=object_name, grantee_type=grantee_type,
        grantee_name=grantee_name, defaults={"grant_option": grant_option, "granted_by": session.role})
    if not created and grant_option and not found.grant_option:
        found.grant_option = True
        found.save(update_fields=["grant_option"])
    return found


def grant(session: Session, privilege: str, object_type: str, object_name: str, grantee_type: str,
          grantee_name: str, grant_option: bool = False) -> list[Grant]:
    """GRANT privilege ON object_type object_name TO grantee; names are SQL identifiers as written.

    privilege may be ALL (each privilege of the type is stored). object_type ROLE / DATABASE ROLE
    grants the role itself (privilege is then ignored: USAGE is stored). Granting again is a no-op
    (WITH GRANT OPTION adds the option). Returns the Grant rows. Refused (code 3001) unless the
    session may grant it; recorded in the access history either way.
    """
    object_type = " ".join(object_type.upper().split())
    grantee_type = grantee_type.upper()
    if object_type in (ROLE, DATABASE_ROLE):
        return [grant_role(session, object_type, object_name, grantee_type, grantee_name)]
    with history.recorded(session, "GRANT", object_type, object_name):
        return _grant(session, privilege, object_type, object_name, grantee_type, grantee_name, grant_option)


@transaction.atomic
def _grant(session: Session, privilege: str, object_type: str, object_name: str, grantee_type: str,
           grantee_name: str, grant_option: bool) -> list[Grant]:
    if grantee_type != ROLE:
        raise compilation_error(f"privileges on a {object_type} are granted to roles; grant a role to the user.")
    wanted = privileges_for(object_type, [privilege])
    name = resolve_object(session, object_type, object_name)
    to = grantee(ROLE, grantee_name)
    for p in wanted:
        _require_grant_authority(session, p, object_type, name)
    if out_of_order(object_type, name, to, wanted, revoking=False):
        raise _order_violation(revoking=False)
    return [_store(session, p, object_type, name, ROLE, to, grant_option) for p in wanted]


def grant_role(session: Session, role_type: str, name: str, grantee_type: str, grantee_text: str) -> Grant:
    role_type = " ".join(role_type.upper().split())
    with history.recorded(session, "GRANT", role_type, name):
        return _grant_role(session, role_type, name, grantee_type, grantee_text)


@transaction.atomic
def _grant_role(session: Session, role_type: str, name: str, grantee_type: str, grantee_text: str) -> Grant:
    object_name = resolve_object(session, role_type, name)
    to = grantee(grantee_type, grantee_text)
    _require_grant_authority(session, "USAGE", role_type, object_name)
    if role_type == ROLE and grantee_type.upper() == ROLE:
        granted = split_parts(object_name)[0]
        if granted == to or to in inherited_roles(granted):
            raise UserError(f"Granting role '{quote(granted)}' to role '{quote(to)}' would create a cycle: "
                              f"'{quote(to)}' is already granted to '{quote(granted)}'.", code=3013, sqlstate="42601")
    stored = _store(session, "USAGE", role_type, object_name, grantee_type.upper(), to, False)
    if role_type == ROLE and grantee_type.upper() == USER:
        user = get_user_model().objects.get(username=to)
        Role.objects.get(name=split_parts(object_name)[0]).users.add(user)
    return stored


def revoke(session: Session, privilege: str, object_type: str, object_name: str, grantee_type: str,
           grantee_name: str, grant_option: bool = False) -> int:
    """REVOKE privilege ON object FROM grantee; how many grants were removed (or lost their grant
    option, with grant_option=True: REVOKE GRANT OPTION FOR). Revoking what was never granted is 0.
    Who may revoke is who may grant; recorded in the access history either way."""
    object_type = " ".join(object_type.upper().split())
    grantee_type = grantee_type.upper()
    if object_type in (ROLE, DATABASE_ROLE):
        return revoke_role(session, object_type, object_name, grantee_type, grantee_name)
    with history.recorded(session, "REVOKE", object_type, object_name):
        return _revoke(session, privilege, object_type, object_name, grantee_type, grantee_name, grant_option)


@transaction.atomic
def _revoke(session: Session, privilege: str, object_type: str, object_name: str, grantee_type: str,
            grantee_name: str, grant_option: bool) -> int:
    wanted = privileges_for(object_type, [privilege])
    name = resolve_object(session, object_type, object_name)
    for p in wanted:
        _require_grant_authority(session, p, object_type, name)
    to = grantee(grantee_type, grantee_name)
    if not grant_option and out_of_order(object_type, name, to, wanted, revoking=True):
        raise _order_violation(revoking=True)
    rows = Grant.objects.filter(privilege__in=wanted, object_type=object_type, object_name=name,
                                grantee_type=grantee_type, grantee_name=to)
    if grant_option:
        return rows.filter(grant_option=True).update(grant_option=False)
    return rows.delete()[0]


def revoke_role(session: Session, role_type: str, name: str, grantee_type: str, grantee_text: str) -> int:
    role_type = " ".join(role_type.upper().split())
    with history.recorded(session, "REVOKE", role_type, name):
        return _revoke_role(session, role_type, name, grantee_type, grantee_text)


@transaction.atomic
def _revoke_role(session: Session, role_type: str, name: str, grantee_type: str, grantee_text: str) -> int:
    object_name = resolve_object(session, role_type, name)
    to = grantee(grantee_type, grantee_text)
    _require_grant_authority(session, "USAGE", role_type, object_name)
    removed = Grant.objects.filter(privilege="USAGE", object_type=role_type, object_name=object_name,
                                   grantee_type=grantee_type.upper(), grantee_name=to).delete()[0]
    if role_type == ROLE and grantee_type.upper() == USER:
        user = get_user_model().objects.get(username=to)
        Role.objects.get(name=split_parts(object_name)[0]).users.remove(user)
    return removed


# Reading grants ---------------------------------------------------------------------------------

def grants_to(grantee_type: str, name: str) -> list[Grant]:
    """Grants held directly by a role or a user (stored names), oldest first."""
    return list(Grant.objects.filter(grantee_type=grantee_type.upper(), grantee_name=name).order_by("created_on", "pk"))


def grants_on(object_type: str, name: str) -> list[Grant]:
    """Grants on one object (its stored name; for ROLE / DATABASE ROLE: who holds that role)."""
    return list(Grant.objects.filter(object_type=object_type.upper(), object_name=name).order_by("created_on", "pk"))


# SHOW GRANTS: what a session may be shown ---------------------------------------------------------
# A role's grants are shown to the roles that are it or inherit it, and to its owner; a user's to that
# user and the role owning the user; an object's to the roles that may see it (seen_object). MANAGE
# GRANTS (SECURITYADMIN, ACCOUNTADMIN) is shown everything. Anything else reads like a missing name.

def _manages_grants(roles: set[str]) -> bool:
    return bool(roles & set(privileges.MANAGE_GRANTS_ROLES))


def _shown_role(roles: set[str], text: str) -> str:
    role = role_name(text)
    if not (role in roles or _manages_grants(roles) or privileges.owner_of(ROLE, privileges.key(role)) in roles):
        raise _unseen("Role", quote(role))
    return role


def shown_grants_to(session: Session, grantee_type: str, text: str | None = None) -> list[Grant]:
    """SHOW GRANTS TO ROLE r / TO USER u, and SHOW GRANTS (text None: the session's own user)."""
    roles = privileges.session_roles(session)
    if grantee_type.upper() == ROLE:
        return grants_to(ROLE, _shown_role(roles, text or ""))
    if text is None:
        return grants_to(USER, session.user_name)
    name = user_name(text)
    own = session.user is not None and session.user.get_username() == name
    owner = Grant.objects.filter(privilege="OWNERSHIP", object_type=USER, object_name=name, grantee_type=ROLE,
                                 grantee_name__in=roles).exists()
    if not (own or owner or _manages_grants(roles)):
        raise _unseen("User", text.strip().strip('"'))
    return grants_to(USER, name)


def shown_grants_on(session: Session, object_type: str, text: str) -> list[Grant]:
    """SHOW GRANTS ON <object> (and OF ROLE / OF DATABASE ROLE: who holds it)."""
    object_type = " ".join(object_type.upper().split())
    roles = privileges.session_roles(session)
    if object_type == ROLE:
        return grants_on(ROLE, privileges.key(_shown_role(roles, text)))
    name = seen_object(session, object_type, text)
    if object_type == DATABASE_ROLE and not _manages_grants(roles):
        held = grants_on(DATABASE_ROLE, name)
        if not any((g.grantee_type == ROLE and g.grantee_name in roles)
                   or (g.grantee_type == USER and g.grantee_name == session.user_name) for g in held):
            raise _unseen("Database role", name)
    return grants_on(object_type, name)


# Roles ------------------------------------------------------------------------------------------

@transaction.atomic
def create_role(session: Session, text: str, *, if_not_exists: bool = False, or_replace: bool = False) -> tuple[Role, bool]:
    """(role, created). The creating role owns it (an OWNERSHIP grant). USERADMIN or above only."""
    parts = split_parts(text)
    if len(parts) != 1:
        raise compilation_error(f"'{text}' is not a role name.")
    name = parts[0]
    if "USERADMIN" not in privileges.session_roles(session):
        raise privileges.insufficient("role", quote(name))
    existing = Role.objects.filter(name=name).first()
    if existing is not None:
        if if_not_exists:
            return existing, False
        if not or_replace:
            raise UserError(f"Object '{quote(name)}' already exists.", code=2002, sqlstate="42710")
        drop_role(session, name)
    role = Role.objects.create(name=name)
    Grant.objects.create(privilege="OWNERSHIP", object_type=ROLE, object_name=privileges.key(name), grantee_type=ROLE,
                         grantee_name=session.role, granted_by=session.role)
    return role, True


@transaction.atomic
def drop_role(session: Session, text: str, *, if_exists: bool = False) -> bool:
    """Drop a custom role with every grant to it and of it; False when absent and if_exists."""
    parts = split_parts(text)
    if len(parts) != 1:
        raise compilation_error(f"'{text}' is not a role name.")
    name = parts[0]
    role = Role.objects.filter(name=name).first()
    if role is None:
        if if_exists:
            return False
        raise _not_found("Role", quote(name))
    if name in SYSTEM_ROLES:
        raise UserError(f"System role '{name}' cannot be dropped.", code=3001, sqlstate="42501")
    _require_grant_authority(session, "OWNERSHIP", ROLE, privileges.key(name))
    Grant.objects.filter(grantee_type=ROLE, grantee_name=name).delete()
    Grant.objects.filter(object_type=ROLE, object_name=privileges.key(name)).delete()
    role.delete()
    return True
