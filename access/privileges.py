"""Who may do what: the roles a session acts with, and the privilege checks every entry point calls.

The roles a session acts with are its current role plus every role that role inherits: roles granted
to it (GRANT ROLE … TO ROLE), Snowflake's system hierarchy (ACCOUNTADMIN > SECURITYADMIN > USERADMIN,
ACCOUNTADMIN > SYSADMIN), and PUBLIC, which every role inherits.
"""
from __future__ import annotations

from access.grants import ROLE, USER, inherited_roles
from access.models import Grant, Role

# Each system role and the system roles it inherits directly.
SYSTEM_HIERARCHY: dict[str, tuple[str, ...]] = {
    "ACCOUNTADMIN": ("SECURITYADMIN", "SYSADMIN"),
    "SECURITYADMIN": ("USERADMIN",),
    "USERADMIN": (),
    "SYSADMIN": (),
}


def effective_roles(role: str) -> set[str]:
    """`role`, every role it inherits through grants and the system hierarchy, and PUBLIC."""
    seen: set[str] = set()
    todo = [role]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(SYSTEM_HIERARCHY.get(current, ()))
        todo.extend(inherited_roles(current))
    seen.add("PUBLIC")
    return seen


def user_roles(user) -> set[str]:
    """Roles granted to the user directly (GRANT ROLE … TO USER, or Role.users), plus PUBLIC.
    The bootstrap administrator (a Django superuser) holds ACCOUNTADMIN."""
    if user is None:
        return {"PUBLIC"}
    names = set(Role.objects.filter(users=user).values_list("name", flat=True))
    names |= set(Grant.objects.filter(object_type=ROLE, grantee_type=USER, grantee_name=user.get_username())
                 .values_list("object_name", flat=True))
    if user.is_superuser:
        names.add("ACCOUNTADMIN")
    names.add("PUBLIC")
    return names


def may_use_role(user, role: str) -> bool:
    """USE ROLE r is allowed when r is granted to the user, directly or through a role they hold."""
    return any(role in effective_roles(held) for held in user_roles(user))
