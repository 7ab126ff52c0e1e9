"""Who may do what: the roles a session acts with, and the privilege checks every entry point calls.

The roles a session acts with are its current role plus every role that role inherits: roles granted
to it (GRANT ROLE … TO ROLE), Snowflake's system hierarchy (ACCOUNTADMIN > SECURITYADMIN > USERADMIN,
ACCOUNTADMIN > SYSADMIN), and PUBLIC, which every role inherits (access/role_graph.py).

A privilege on an object is held when one of those roles holds it (a Grant row), or owns the object
(its owner_role: OWNERSHIP carries every privilege), or is ACCOUNTADMIN. The last is a simplification:
in Snowflake ACCOUNTADMIN sees only what its hierarchy owns or was granted, but here every object is
created inside that hierarchy unless a custom role creates it, so ACCOUNTADMIN may do everything.
Warehouses have no owner column; SYSADMIN owns them, as it owns COMPUTE_WH in a new Snowflake account.
"""
from __future__ import annotations

from access.models import DATABASE_ROLE, ROLE, USER, Grant
from access.role_graph import effective_roles
from access.session import Session
from catalog.identifiers import quote, split_parts
from errors import UserError

ACCOUNTADMIN = "ACCOUNTADMIN"
CORTEX_USER = "SNOWFLAKE.CORTEX_USER"
# Roles holding MANAGE GRANTS: they may grant and revoke any privilege on any object.
MANAGE_GRANTS_ROLES = ("SECURITYADMIN", ACCOUNTADMIN)
WAREHOUSE_OWNER = "SYSADMIN"
# What lives in a database: inside a database from a share, IMPORTED PRIVILEGES is what counts.
DATABASE_OBJECT_TYPES = ("DATABASE", "SCHEMA", "MODEL", "TABLE", "VIEW", "STAGE")
INSUFFICIENT_PRIVILEGES = 3001


def session_roles(session: Session) -> set[str]:
    """The roles a session acts with, read afresh: a REVOKE counts from the next statement on."""
    return effective_roles(session.role or "PUBLIC")


# Objects and their owners ------------------------------------------------------------------------

def key(*parts: str) -> str:
    """The stored object_name (Grant.object_name) of normalized name parts: DB.PUBLIC.T, "My db".PUBLIC."t" …,
    each part quoted only where it must be."""
    return ".".join(quote(p) for p in parts)


def owner_of(object_type: str, object_name: str) -> str | None:
    """The role owning an object named by its stored key (DB, DB.SCHEMA, DB.SCHEMA.NAME), or None."""
    from catalog.models import Database, Schema, SchemaObject, Stage
    from models_registry.models import FineTunedModel

    object_type = object_type.upper()
    if object_type == "WAREHOUSE":
        return WAREHOUSE_OWNER
    if object_type == ROLE:
        found = Grant.objects.filter(privilege="OWNERSHIP", object_type=ROLE, object_name=object_name,
                                     grantee_type=ROLE).first()
        return found.grantee_name if found else None
    parts = split_parts(object_name)
    if object_type == "DATABASE":
        return Database.objects.filter(name=parts[0]).values_list("owner_role", flat=True).first()
    if len(parts) < 2:
        return None
    schema = Schema.objects.filter(database__name=parts[0], name=parts[1]).first()
    if schema is None:
        return None
    if object_type == "SCHEMA":
        return schema.owner_role
    if len(parts) != 3:
        return None
    if object_type == "MODEL":
        return FineTunedModel.objects.filter(schema=schema, name=parts[2]).values_list("owner_role", flat=True).first()
    if object_type == "STAGE":
        return Stage.objects.filter(schema=schema, name=parts[2]).values_list("owner_role", flat=True).first()
    # A table DuckDB has but the catalog missed shows its schema's owner (see SchemaObject).
    owner = SchemaObject.objects.filter(schema=schema, name=parts[2]).values_list("owner_role", flat=True).first()
    return owner or schema.owner_role


# Checks ------------------------------------------------------------------------------------------

def insufficient(object_type: str, name: str) -> UserError:
    """Snowflake's refusal: "Insufficient privileges to operate on schema 'MYSCHEMA'"."""
    return UserError(f"Insufficient privileges to operate on {object_type.lower()} '{name}'",
                       code=INSUFFICIENT_PRIVILEGES, sqlstate="42501")


def _display(object_name: str) -> str:
    try:
        return quote(split_parts(object_name)[-1])
    except UserError:
        return object_name


def has_privilege(session: Session, privilege: str, object_type: str, object_name: str, *,
                  roles: set[str] | None = None) -> bool:
    """Whether the session's roles hold `privilege` on the object (stored key), own it, or are ACCOUNTADMIN."""
    roles = session_roles(session) if roles is None else roles
    if ACCOUNTADMIN in roles:
        return True
    object_type = object_type.upper()
    if owner_of(object_type, object_name) in roles:
        return True
    if privilege.upper() == "OWNERSHIP":
        return False
    if object_type in DATABASE_OBJECT_TYPES and imported_database(split_parts(object_name)[0]):
        # Inside a database from a share only IMPORTED PRIVILEGES counts, and it opens only USAGE: the
        # consumer uses the shared models, never reads or changes anything else.
        return privilege.upper() == "USAGE" and Grant.objects.filter(
            privilege="IMPORTED PRIVILEGES", object_type="DATABASE", object_name=key(split_parts(object_name)[0]),
            grantee_type=ROLE, grantee_name__in=roles).exists()
    return Grant.objects.filter(privilege=privilege.upper(), object_type=object_type, object_name=object_name,
                                grantee_type=ROLE, grantee_name__in=roles).exists()


def require(session: Session, privilege: str, object_type: str, object_name: str, *, display: str | None = None,
            roles: set[str] | None = None) -> None:
    if not has_privilege(session, privilege, object_type, object_name, roles=roles):
        raise insufficient(object_type, display or _display(object_name))


def is_owner(session: Session, object_type: str, object_name: str, *, roles: set[str] | None = None) -> bool:
    return has_privilege(session, "OWNERSHIP", object_type, object_name, roles=roles)


def require_ownership(session: Session, object_type: str, object_name: str, *, display: str | None = None) -> None:
    require(session, "OWNERSHIP", object_type, object_name, display=display)


def has_any_role(session: Session, *names: str) -> bool:
    return bool(session_roles(session) & set(names))


def holds_cortex_user(session: Session, *, roles: set[str] | None = None) -> bool:
    """SNOWFLAKE.CORTEX_USER granted to one of the session's roles or to its user (ACCOUNTADMIN always)."""
    roles = session_roles(session) if roles is None else roles
    if ACCOUNTADMIN in roles:
        return True
    grants = Grant.objects.filter(object_type=DATABASE_ROLE, object_name=CORTEX_USER)
    if grants.filter(grantee_type=ROLE, grantee_name__in=roles).exists():
        return True
    return session.user is not None and grants.filter(grantee_type=USER,
                                                      grantee_name=session.user.get_username()).exists()


def require_cortex_user(session: Session, function: str) -> None:
    if not holds_cortex_user(session):
        raise UserError(
            f"Insufficient privileges to operate on function '{function}': the {CORTEX_USER} database role is "
            f"required; ask an ACCOUNTADMIN to run GRANT DATABASE ROLE {CORTEX_USER} TO ROLE {session.role}.",
            code=INSUFFICIENT_PRIVILEGES, sqlstate="42501")


def require_schema_usage(session: Session, database: str, schema: str, *, roles: set[str] | None = None) -> None:
    """USAGE on a database and on one of its schemas: what naming anything inside them needs."""
    roles = session_roles(session) if roles is None else roles
    require(session, "USAGE", "DATABASE", key(database), roles=roles)
    require(session, "USAGE", "SCHEMA", key(database, schema), roles=roles)


def imported_database(database: str) -> bool:
    """Whether the database (its normalized name) was created from another account's share."""
    from sharing.models import ImportedDatabase

    return ImportedDatabase.objects.filter(database__name=database).exists()


def read_only_reason(database: str) -> str | None:
    """Why nothing may change in the database (its normalized name), or None: one created from a share
    mirrors the provider's models, and a secondary database changes only by refreshing from its primary."""
    from replication.models import ReplicatedDatabase

    if imported_database(database):
        return f"Database '{quote(database)}' was created from a share and is read-only"
    secondary = ReplicatedDatabase.objects.filter(database__name=database, is_primary=False).first()
    if secondary is not None:
        return (f"Database '{quote(database)}' is a secondary database, a replica of {secondary.primary_locator}, "
                f"and is read-only: it changes only by ALTER DATABASE {quote(database)} REFRESH (or, promoted with "
                f"ALTER DATABASE {quote(database)} PRIMARY, it becomes writable)")
    return None


def require_writable(database: str, action: str, session: Session | None = None) -> None:
    """Refuse `action` in a read-only database. Given the session, a role that cannot use the database
    hears that it does not exist, as everywhere else, rather than what kind of database it is."""
    reason = read_only_reason(database)
    if reason is not None:
        if session is not None and not has_privilege(session, "USAGE", "DATABASE", key(database)):
            raise UserError(f"Database '{quote(database)}' does not exist or not authorized.", code=2003,
                            sqlstate="02000", refused=True)
        raise UserError(f"{reason}: {action} is not allowed in it.", code=3074, sqlstate="42501", refused=True)


def require_create_in_schema(session: Session, kind: str, database: str, schema: str) -> None:
    """CREATE TABLE / VIEW / STAGE / MODEL: USAGE on database and schema, and CREATE <kind> on the schema
    (the schema's owner holds both). Nothing is created in a read-only database, not even by its owner, and a
    role that cannot use it hears only that it does not exist."""
    require_writable(database, f"CREATE {kind.upper()}", session)
    roles = session_roles(session)
    require_schema_usage(session, database, schema, roles=roles)
    require(session, f"CREATE {kind.upper()}", "SCHEMA", key(database, schema), roles=roles)


def require_warehouse_usage(session: Session, warehouse: str) -> None:
    require(session, "USAGE", "WAREHOUSE", key(warehouse))


# Visibility --------------------------------------------------------------------------------------

class Held:
    """has_privilege's answer for many objects at once, for listing what a session may use: the grants of
    the session's roles are read in one query, and the caller passes each object's owner role (which it
    has already loaded with the object) instead of one owner lookup per object."""

    def __init__(self, session: Session, roles: set[str] | None = None) -> None:
        self.roles = session_roles(session) if roles is None else roles
        self.all = ACCOUNTADMIN in self.roles
        self.granted: set[tuple[str, str, str]] = set()
        if not self.all:
            self.granted = set(Grant.objects.filter(grantee_type=ROLE, grantee_name__in=self.roles)
                               .values_list("privilege", "object_type", "object_name"))

    def has(self, privilege: str, object_type: str, object_name: str, owner_role: str | None) -> bool:
        if self.all or (owner_role is not None and owner_role in self.roles):
            return True
        if privilege.upper() == "OWNERSHIP":
            return False
        return (privilege.upper(), object_type.upper(), object_name) in self.granted


class Visibility:
    """Which objects a session may see in SHOW: those it owns or holds any privilege on; the grants come
    from Held's one query, so listing many objects stays cheap."""

    def __init__(self, session: Session, roles: set[str] | None = None, *, held: Held | None = None) -> None:
        held = held or Held(session, roles)
        self.roles = held.roles
        self.all = held.all
        self.granted: set[tuple[str, str]] = {(object_type, name) for _, object_type, name in held.granted
                                              if object_type not in (ROLE, DATABASE_ROLE)}

    def sees(self, object_type: str, object_name: str, owner_role: str | None = None) -> bool:
        if self.all or (owner_role is not None and owner_role in self.roles):
            return True
        object_type = object_type.upper()
        return (object_type.upper(), object_name) in self.granted


def visible_job_roles(session: Session) -> set[str] | None:
    """The creating roles whose fine-tuning jobs the session sees; None means every job (ACCOUNTADMIN)."""
    roles = session_roles(session)
    return None if ACCOUNTADMIN in roles else roles
