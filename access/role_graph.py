"""The role graph: the roles a role inherits and the roles a user holds.

A role inherits the roles granted to it (GRANT ROLE … TO ROLE, Grant rows), Snowflake's system
hierarchy (ACCOUNTADMIN > SECURITYADMIN > USERADMIN, ACCOUNTADMIN > SYSADMIN), and PUBLIC, which every
role inherits. It only reads grants: the GRANT service (access/grants.py) writes them and asks the graph
whether a grant would make a cycle; the privilege checks (access/privileges.py) ask it which roles a
session acts with. Both import it, neither imports the other for it.
"""
from __future__ import annotations

from access.models import ROLE, USER, Grant, Role
from catalog.identifiers import split_parts

# Each system role and the system roles it inherits directly.
SYSTEM_HIERARCHY: dict[str, tuple[str, ...]] = {
    "ACCOUNTADMIN": ("SECURITYADMIN", "SYSADMIN"),
    "SECURITYADMIN": ("USERADMIN",),
    "USERADMIN": (),
    "SYSADMIN": (),
}


def role_edges() -> dict[str, set[str]]:
    """Each role and the roles granted to it directly (GRANT ROLE … TO ROLE), in one query."""
    edges: dict[str, set[str]] = {}
    for object_name, holder in Grant.objects.filter(object_type=ROLE, privilege="USAGE", grantee_type=ROLE) \
            .values_list("object_name", "grantee_name"):
        edges.setdefault(holder, set()).add(split_parts(object_name)[0])
    return edges


def inherited_roles(role: str, edges: dict[str, set[str]] | None = None) -> set[str]:
    """Every role granted to `role`, directly or through other roles (not `role` itself)."""
    edges = role_edges() if edges is None else edges
    seen: set[str] = set()
    todo = [role]
    while todo:
        for granted in edges.get(todo.pop(), ()):
            if granted not in seen:
                seen.add(granted)
                todo.append(granted)
    seen.discard(role)
    return seen


def effective_roles(role: str) -> set[str]:
    """`role`, every role it inherits through grants and the system hierarchy, and PUBLIC."""
    edges = role_edges()  # one query, however deep the hierarchy
    seen: set[str] = set()
    todo = [role]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(SYSTEM_HIERARCHY.get(current, ()))
        todo.extend(inherited_roles(current, edges))
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
