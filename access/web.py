"""The session a signed-in browser user works in: the role and warehouse chosen in the header menus
(kept in the Django session), else the user's defaults. Every web page builds its Session here, and
the menus switch role and warehouse through access/roles.use, USE's own checks."""
from __future__ import annotations

from access import roles
from access.session import Session

ROLE_KEY = "studio_role"
WAREHOUSE_KEY = "studio_warehouse"


def current_role(request) -> str:
    role = request.session.get(ROLE_KEY)
    if role and roles.may_use_role(request.user, role):
        return role
    return roles.default_role(request.user)


def current_warehouse(request, role: str | None = None, usable: list[str] | None = None) -> str | None:
    """The chosen warehouse while the current role may still use it, else that role's default.
    `usable`: the role's usable warehouses, when read already."""
    session = Session(request.user, role=role or current_role(request))
    usable = roles.usable_warehouses(session) if usable is None else usable
    name = request.session.get(WAREHOUSE_KEY)
    if name and name in usable:
        return name
    return roles.default_warehouse_for(session, usable)


def session_for(request) -> Session:
    """The user's current web session (entry point "web"). A role revoked since it was chosen falls
    back to the default role; a warehouse dropped or no longer usable to the role's default."""
    role = current_role(request)
    return Session(request.user, role=role, warehouse=current_warehouse(request, role), entry_point="web")


def set_role(request, role: str) -> str:
    """Make `role` the current web role; UserError, as USE ROLE words it, when the user may not use it."""
    session = roles.use(session_for(request), role=role.strip())
    request.session[ROLE_KEY] = session.role
    return session.role


def set_warehouse(request, name: str) -> str:
    """Make warehouse `name` the current web warehouse; UserError, as USE WAREHOUSE words it, when the
    role may not see or use it."""
    session = roles.use(session_for(request), warehouse=name.strip())
    request.session[WAREHOUSE_KEY] = session.warehouse
    return session.warehouse


def menus(request) -> dict:
    """Template context for the header's role and warehouse menus (a context processor): the roles
    the user may switch to and the warehouses the role sees (SHOW WAREHOUSES' list), with the current
    ones. Empty for anonymous users."""
    if not request.user.is_authenticated:
        return {}
    role = current_role(request)
    seen, usable = roles.warehouse_access(Session(request.user, role=role))
    return {"web_session": {
        "role": role, "roles": roles.usable_roles(request.user),
        "warehouse": current_warehouse(request, role, usable), "warehouses": seen,
    }}
