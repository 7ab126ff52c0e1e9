"""First-run account setup: system roles, the administrator, a warehouse and a demo database.

As in a new Snowflake account: the administrator holds ACCOUNTADMIN (the system hierarchy below it is
implicit, access/role_graph.py SYSTEM_HIERARCHY); COMPUTE_WH and DEMO are owned by SYSADMIN; and PUBLIC
holds USAGE on COMPUTE_WH, so any user granted SNOWFLAKE.CORTEX_USER can run jobs on it. CORTEX_USER
itself is not granted to PUBLIC (Snowflake does so by default; here an ACCOUNTADMIN grants it).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from access.models import SYSTEM_ROLES, Grant, Role
from catalog import accountdata
from catalog.models import Database
from warehouses.models import Warehouse

DEMO_DATABASE = "DEMO"
DEMO_TABLE = "SUPPORT_TICKETS"
DEMO_FILE = Path(__file__).resolve().parent.parent / "catalog" / "demo" / "support_tickets.jsonl"
DEFAULT_WAREHOUSE = "COMPUTE_WH"


@dataclass
class AdminLogin:
    username: str
    password: str | None  # None when the administrator already existed


def password_file() -> Path:
    return settings.DATA_DIR / "admin-password.txt"


def ensure_admin(username: str, password: str | None) -> AdminLogin:
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    created_password = None
    if user is None:
        created_password = password or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=created_password)
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        password_file().write_text(created_password + "\n")
        password_file().chmod(0o600)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
        created_password = password
    Role.objects.get(name="ACCOUNTADMIN").users.add(user)
    # As in an organization's first Snowflake account: its administrator also holds ORGADMIN, which
    # ACCOUNTADMIN does not inherit (it registers the organization's other accounts).
    Role.objects.get(name="ORGADMIN").users.add(user)
    return AdminLogin(username, created_password)


@transaction.atomic
def ensure_roles() -> None:
    for name in SYSTEM_ROLES:
        Role.objects.get_or_create(name=name)


def ensure_warehouse() -> Warehouse:
    """COMPUTE_WH, owned by SYSADMIN (warehouses have no owner column: see access/privileges.py), with
    USAGE granted to PUBLIC."""
    warehouse, created = Warehouse.objects.get_or_create(name=DEFAULT_WAREHOUSE)
    if created:
        Grant.objects.get_or_create(privilege="USAGE", object_type="WAREHOUSE", object_name=DEFAULT_WAREHOUSE,
                                    grantee_type="ROLE", grantee_name="PUBLIC", defaults={"granted_by": "ACCOUNTADMIN"})
    return warehouse


def ensure_demo_data() -> int | None:
    """The DEMO database with SUPPORT_TICKETS: 40 tickets each labelled with one category word."""
    if Database.objects.filter(name=DEMO_DATABASE).exists():
        return None
    accountdata.create_database(DEMO_DATABASE, "SYSADMIN")
    return accountdata.load_table(DEMO_DATABASE, accountdata.DEFAULT_SCHEMA, DEMO_TABLE, DEMO_FILE,
                                  owner_role="SYSADMIN")


def bootstrap(username: str = "admin", password: str | None = None, *, demo: bool = True) -> AdminLogin:
    ensure_roles()
    login = ensure_admin(username, password)
    ensure_warehouse()
    if demo:
        ensure_demo_data()
    return login
