"""The two deployments of conftest's `deployments` (tests/support/deployments.py) are two accounts with
nothing in common but the network: their own names, metadata, data and processes."""
from __future__ import annotations

import pytest

from tests.support.deployments import SqlError


def test_each_deployment_is_its_own_account_with_its_own_metadata_and_data(deployments):
    provider, consumer = deployments
    for deployment in deployments:
        assert deployment.sql("SELECT CURRENT_ACCOUNT() AS acct") == [{"ACCT": deployment.account}]
        assert (deployment.data_dir / "studio.sqlite3").is_file()
    assert provider.data_dir != consumer.data_dir and provider.url != consumer.url
    assert provider.inference_url != consumer.inference_url

    provider.sql("CREATE DATABASE harness_only_here")
    try:
        with pytest.raises(SqlError, match="HARNESS_ONLY_HERE' does not exist or not authorized") as refused:
            consumer.sql("USE DATABASE harness_only_here")
        assert refused.value.code == "002003" and refused.value.sqlstate == "02000"
    finally:
        provider.sql("DROP DATABASE harness_only_here")


def test_they_are_registered_on_each_other_with_one_key(deployments):
    provider, consumer = deployments
    for here, there in ((provider, consumer), (consumer, provider)):
        rows = here.sql("SHOW ACCOUNTS", role="ORGADMIN")
        registered = {f"{r['organization_name']}.{r['account_name']}": r for r in rows}
        assert registered[there.locator]["account_url"] == there.url
        assert here.keys[there.locator] == there.keys[here.locator]
    with pytest.raises(SqlError, match="only the ORGADMIN role"):
        provider.sql("SHOW ACCOUNTS")  # the API's default role for admin is ACCOUNTADMIN
