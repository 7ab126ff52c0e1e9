"""Grants: privileges on objects held by roles, roles granted to roles and users, and roles themselves.

The service the GRANT / REVOKE / SHOW GRANTS / CREATE ROLE statements and the admin console call
(sqlengine/statements/grants.py, access/admin.py). It stores and removes access.models.Grant rows,
after checking that the session may (access/privileges.py decides who holds what):
- GRANT / REVOKE of a privilege: the object's owner, a holder of that privilege WITH GRANT OPTION, or
  a role with MANAGE GRANTS (SECURITYADMIN, and ACCOUNTADMIN above it);
- GRANT / REVOKE of a role: its owner or MANAGE GRANTS; of SNOWFLAKE.CORTEX_USER: ACCOUNTADMIN only;
- CREATE ROLE: USERADMIN or a role above it; DROP ROLE: the role's owner or MANAGE GRANTS;
- SHOW GRANTS (shown_grants_to / shown_grants_on): only what the session may know, see below.
An object the session may not see is missing to all of these (access/grant_objects.py, which also
names what each object type may be granted).
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

from django.contrib.auth import get_user_model
from django.db import transaction

from access import history, privileges
from access.grant_objects import grantee, not_found, resolve_object, role_name, seen_object, unseen, user_name
from access.models import DATABASE_ROLE, PRIVILEGES, ROLE, SYSTEM_ROLES, USER, Grant, Role
from access.role_graph import inherited_roles
from access.session import Session
from catalog.identifiers import quote, split_parts
from errors import UserError, compilation_error

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
        elif privilege == "IMPORTED PRIVILEGES" and object_type == "DATABASE":
            out.append(privilege)  # not part of ALL; only a database from a share takes it (_imported_rule)
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


IMPORTED = "IMPORTED PRIVILEGES"


def _imported_rule(object_type: str, name: str, privilege: str) -> list[str] | None:
    """A database created from a share takes one privilege, IMPORTED PRIVILEGES (USAGE on it and on
    everything inside it), and only such a database takes it, as in Snowflake. None: the usual rules."""
    database = split_parts(name)[0] if object_type in privileges.DATABASE_OBJECT_TYPES else None
    imported = database is not None and privileges.imported_database(database)
    if " ".join(privilege.upper().split()) == IMPORTED:
        if object_type != "DATABASE" or not imported:
            raise compilation_error("IMPORTED PRIVILEGES can only be granted on a database created from a share.")
        return [IMPORTED]
    if imported:
        raise compilation_error("Granting individual privileges on imported database is not allowed. "
                                "Use 'GRANT IMPORTED PRIVILEGES' instead.")
    return None


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
    name = resolve_object(session, object_type, object_name)
    wanted = _imported_rule(object_type, name, privilege) or privileges_for(object_type, [privilege])
    to = grantee(ROLE, grantee_name)
    for p in wanted:
        _require_grant_authority(session, p, object_type, name)
    if wanted != [IMPORTED] and out_of_order(object_type, name, to, wanted, revoking=False):
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
    name = resolve_object(session, object_type, object_name)
    wanted = _imported_rule(object_type, name, privilege) or privileges_for(object_type, [privilege])
    for p in wanted:
        _require_grant_authority(session, p, object_type, name)
    to = grantee(grantee_type, grantee_name)
    if not grant_option and wanted != [IMPORTED] and out_of_order(object_type, name, to, wanted, revoking=True):
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
        raise unseen("Role", quote(role))
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
        raise unseen("User", text.strip().strip('"'))
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
            raise unseen("Database role", name)
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
        raise not_found("Role", quote(name))
    if name in SYSTEM_ROLES:
        raise UserError(f"System role '{name}' cannot be dropped.", code=3001, sqlstate="42501")
    _require_grant_authority(session, "OWNERSHIP", ROLE, privileges.key(name))
    Grant.objects.filter(grantee_type=ROLE, grantee_name=name).delete()
    Grant.objects.filter(object_type=ROLE, object_name=privileges.key(name)).delete()
    role.delete()
    return True
