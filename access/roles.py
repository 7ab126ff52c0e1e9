"""The role and warehouse a new session starts with, and whether a user may switch to a role.

The SQL API, the worksheet and the web pages (access/web.py) all start sessions from here, so a
user's DEFAULT_ROLE / DEFAULT_WAREHOUSE (CREATE/ALTER USER) mean the same thing everywhere.
"""
from __future__ import annotations

from access import privileges
from access.models import Role, UserProfile
from warehouses.models import Warehouse


def _profile(user) -> UserProfile | None:
    if user is None or not getattr(user, "pk", None):
        return None
    return UserProfile.objects.filter(user=user).first()


def may_use_role(user, role: str) -> bool:
    """The role exists and is granted to the user, directly or through a role they hold."""
    if user is None or not Role.objects.filter(name=role).exists():
        return False
    return privileges.may_use_role(user, role)


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


def usable_roles(user) -> list[str]:
    """Every role the user may switch to: the roles granted to them and all those inherit, sorted."""
    if user is None:
        return ["PUBLIC"]
    names: set[str] = set()
    for held in privileges.user_roles(user):
        names |= privileges.effective_roles(held)
    existing = set(Role.objects.filter(name__in=names).values_list("name", flat=True))
    return sorted(existing | {"PUBLIC"})
