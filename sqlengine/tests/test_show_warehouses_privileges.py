"""SHOW WAREHOUSES lists the warehouses the role holds any privilege on (USAGE, OPERATE, MONITOR, MODIFY)
or owns (SYSADMIN owns them all), as Snowflake does; the header's warehouse menu lists the same ones.
Tried as the security review's role LOW (tests/support/security.py), which reaches COMPUTE_WH through
PUBLIC's USAGE and nothing else."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from access.session import Session
from sqlengine.executor import Executor
from warehouses.models import Warehouse


@pytest.fixture
def low(low_account):
    Warehouse.objects.create(name="PRIVATE_WH")
    Warehouse.objects.create(name="MONITORED_WH")
    Executor(low_account.admin).execute("GRANT MONITOR ON WAREHOUSE monitored_wh TO ROLE low")
    return low_account


def listed(session: Session, statement: str = "SHOW WAREHOUSES") -> list[tuple]:
    result = Executor(session).execute(statement)[-1]
    at = {c: i for i, c in enumerate(result.columns)}
    return [(r[at["name"]], r[at["owner"]]) for r in result.rows]


def menu(page: str) -> list[str]:
    block = re.search(r'<select name="warehouse".*?</select>', page, re.S).group(0)
    return re.findall(r'<option value="([^"]*)"', block)


def test_low_lists_only_the_warehouses_it_holds_a_privilege_on(low):
    assert listed(low.session()) == [("COMPUTE_WH", "SYSADMIN"), ("MONITORED_WH", "SYSADMIN")]
    assert listed(low.session(), "SHOW WAREHOUSES LIKE 'private%'") == []
    terse = Executor(low.session()).execute("SHOW TERSE WAREHOUSES")[-1]
    assert [r[1] for r in terse.rows] == ["COMPUTE_WH", "MONITORED_WH"]


def test_the_owner_and_accountadmin_list_every_warehouse(low):
    everything = [("COMPUTE_WH", "SYSADMIN"), ("MONITORED_WH", "SYSADMIN"), ("PRIVATE_WH", "SYSADMIN")]
    assert listed(Session(user=low.admin.user, role="SYSADMIN")) == everything
    assert listed(low.admin) == everything


def test_a_revoked_privilege_takes_the_warehouse_off_the_list(low):
    Executor(low.admin).execute("REVOKE MONITOR ON WAREHOUSE monitored_wh FROM ROLE low")
    assert listed(low.session()) == [("COMPUTE_WH", "SYSADMIN")]


def test_the_header_menu_offers_what_show_warehouses_lists(low):
    client = Client()
    assert client.login(username="low", password="low-password")
    page = client.get("/").content.decode()
    assert menu(page) == [name for name, _ in listed(low.session())] == ["COMPUTE_WH", "MONITORED_WH"]
    assert "PRIVATE_WH" not in page
