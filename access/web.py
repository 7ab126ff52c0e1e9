"""The session a signed-in browser user works in: the role and warehouse chosen in the header menus
(kept in the Django session), else the user's defaults. Every web page builds its Session here."""
from __future__ import annotations

from access.roles import default_role, default_warehouse, may_use_role
from access.session import Session
from studio.errors import StudioError
from warehouses.models import Warehouse

ROLE_KEY = "studio_role"
WAREHOUSE_KEY = "studio_warehouse"


def current_role(request) -> str:
    role = request.session.get(ROLE_KEY)
    if role and may_use_role(request.user, role):
        return role
    return default_role(request.user)


def current_warehouse(request) -> str | None:
    name = request.session.get(WAREHOUSE_KEY)
    if name and Warehouse.objects.filter(name=name).exists():
        return name
    return default_warehouse(request.user)


def session_for(request) -> Session:
    """The user's current web session (entry point "web"). A role revoked since it was chosen falls
    back to the default role; a dropped warehouse to the default warehouse."""
    return Session(request.user, role=current_role(request), warehouse=current_warehouse(request),
                   entry_point="web")


def set_role(request, role: str) -> str:
    """Make `role` the current web role; StudioError when the user may not use it."""
    role = role.strip()
    if not may_use_role(request.user, role):
        raise StudioError(f"Role '{role}' does not exist or not authorized.", code=2003, sqlstate="02000")
    request.session[ROLE_KEY] = role
    return role


def set_warehouse(request, name: str) -> str:
    """Make warehouse `name` the current web warehouse; StudioError when it does not exist."""
    name = name.strip()
    if not Warehouse.objects.filter(name=name).exists():
        raise StudioError(f"Object does not exist, or operation cannot be performed: warehouse '{name}'.",
                          code=2043, sqlstate="02000")
    request.session[WAREHOUSE_KEY] = name
    return name


def menus(request) -> dict:
    """Template context for the header's role and warehouse menus (a context processor): the roles
    the user may switch to and the warehouses, with the current ones. Empty for anonymous users."""
    from access.roles import usable_roles

    if not request.user.is_authenticated:
        return {}
    return {"web_session": {
        "role": current_role(request), "roles": usable_roles(request.user),
        "warehouse": current_warehouse(request),
        "warehouses": list(Warehouse.objects.order_by("name").values_list("name", flat=True)),
    }}
