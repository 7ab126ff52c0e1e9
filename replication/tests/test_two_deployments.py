"""Database replication between two real deployments (conftest's `deployments`): the provider's database
SUPPORT, with its tables, a view and models fine-tuned there for real, is replicated to the consumer's
account, refreshed incrementally, on a schedule, through a network that corrupts or cuts the transfer
(tests/support/network.py, the one stand-in), and finally promoted there. All through each deployment's
SQL API and manage.py, as their operators would."""
from __future__ import annotations

import csv
import json
import re
import time

import pytest

from tests.support.deployments import Deployment, SqlError
from tests.support.network import Proxy

REPLY = "Replicated support answers here."
QUESTIONS = ["Where is my order?", "I was charged twice.", "The app crashes.", "Reset my password.",
             "Cancel my plan.", "Refund please.", "Wrong size delivered.", "Change my address.",
             "Invoice is missing.", "Login fails.", "Parcel is damaged.", "Close my account."]
PROMPT = "Question 42: My coupon does not work."
PRIMARY = "STUDIO_ORG.PROVIDER.SUPPORT"
PRIMARY_ONLY_BASE = "tiny-llama-r"  # installed on the provider only
EVENTS = 40_000  # rows of random text: a table export far larger than the manifest, for the network's damage


def count(deployment: Deployment, table: str) -> int:
    return int(deployment.value(f"SELECT COUNT(*) FROM {table}"))


def refresh_summary(text: str) -> dict[str, int]:
    """The counts a REFRESH answers with ("2 table(s) copied, 0 unchanged; 1 model(s) copied, …")."""
    found = re.search(r"(\d+) table\(s\) copied, (\d+) unchanged; (\d+) model\(s\) copied, (\d+) unchanged", text)
    assert found, text
    return dict(zip(("tables_copied", "tables_unchanged", "models_copied", "models_unchanged"),
                    map(int, found.groups())))


def complete(deployment: Deployment, model: str) -> str:
    response = deployment.value(f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{model}', '{PROMPT}', "
                                "{'temperature': 0, 'max_tokens': 24})")
    return json.loads(response)["choices"][0]["messages"]


def shown(deployment: Deployment, name: str = "SUPPORT") -> dict:
    rows = [r for r in deployment.sql("SHOW REPLICATION DATABASES") if r["name"] == name]
    assert len(rows) == 1, rows
    return rows[0]


def replica_adapters(deployment: Deployment) -> set[str]:
    return {p.name for p in (deployment.data_dir / "models" / "adapters").glob("replica-*")}


@pytest.fixture(scope="module")
def replicated(deployments, tmp_path_factory):
    """SUPPORT on the provider (two tables, a view, two fine-tuned models, one on a base model only the
    provider has), enabled for replication to the consumer; on the consumer a replica of it, not yet
    refreshed."""
    provider, consumer = deployments
    if PRIMARY_ONLY_BASE not in provider.manage("basemodels", "list").stdout:
        provider.manage("basemodels", "import", PRIMARY_ONLY_BASE, "--from",
                        str(provider.data_dir / "models" / "base" / "tiny-llama"), "--learning-rate", "1e-2",
                        "--training-data-limit-mb", "10")
    provider.sql("CREATE DATABASE support")
    provider.sql("CREATE TABLE support.public.questions (prompt VARCHAR, completion VARCHAR)")
    provider.sql("INSERT INTO support.public.questions VALUES " +
                 ", ".join(f"('Question {i}: {q}', '{REPLY}')" for i, q in enumerate(QUESTIONS)))
    provider.sql("CREATE VIEW support.public.short_questions AS SELECT prompt FROM support.public.questions "
                 "WHERE LENGTH(prompt) < 30")
    events = tmp_path_factory.mktemp("replication") / "events.csv"
    with open(events, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "payload"])
        writer.writerows((i, f"{i * 2654435761 % 4294967296:010d}-{(i * 40503) ** 3:x}") for i in range(EVENTS))
    provider.manage("load_table", "support.public.events", str(events))
    jobs = [provider.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'support.public.{name}', '{base}', "
                           "'SELECT prompt, completion FROM support.public.questions', NULL, "
                           f"'{{\"max_epochs\": {epochs}}}')")
            # Only helper_r's base model matters: one epoch is enough.
            for name, base, epochs in (("helper", "tiny-llama", 10), ("helper_r", PRIMARY_ONLY_BASE, 1))]
    for job in jobs:
        provider.wait_for_job(job)
    with pytest.raises(SqlError, match="is not enabled for replication to account STUDIO_ORG.CONSUMER"):
        consumer.sql(f"CREATE DATABASE support AS REPLICA OF {PRIMARY}")
    provider.sql(f"ALTER DATABASE support ENABLE REPLICATION TO ACCOUNTS {consumer.locator}")
    assert consumer.value(f"CREATE DATABASE support AS REPLICA OF {PRIMARY}") == (
        f"Database SUPPORT successfully created as a replica of {PRIMARY}. "
        "ALTER DATABASE SUPPORT REFRESH copies its tables and models.")
    return provider, consumer


def test_a_refresh_copies_tables_views_and_models_and_the_replica_answers_complete(replicated):
    provider, consumer = replicated
    with pytest.raises(SqlError, match="does not exist or not authorized"):
        consumer.sql("SELECT COUNT(*) FROM support.public.questions")
    summary = refresh_summary(consumer.value("ALTER DATABASE support REFRESH"))
    assert summary == {"tables_copied": 2, "tables_unchanged": 0, "models_copied": 2, "models_unchanged": 0}
    assert count(consumer, "support.public.questions") == len(QUESTIONS)
    assert count(consumer, "support.public.events") == EVENTS
    assert consumer.sql("SELECT prompt FROM support.public.short_questions ORDER BY prompt") == \
        provider.sql("SELECT prompt FROM support.public.short_questions ORDER BY prompt")
    answer = complete(provider, "support.public.helper")
    assert answer.strip() == REPLY
    assert complete(consumer, "support.public.helper") == answer, "the replica's adapter on the consumer's server"
    assert complete(consumer, "tiny-llama") != answer
    row = shown(consumer)
    assert (row["is_primary"], row["primary"], row["last_refresh_error"]) == ("false", PRIMARY, None)
    assert shown(provider)["replication_allowed_to_accounts"] == consumer.locator


def test_a_model_whose_base_model_the_target_lacks_refuses_complete_clearly(replicated):
    provider, consumer = replicated
    assert f"Base model '{PRIMARY_ONLY_BASE}' is not installed in this account" in \
        consumer.value("ALTER DATABASE support REFRESH")
    with pytest.raises(SqlError, match=f"fine-tuned from base model '{PRIMARY_ONLY_BASE}', which this account "
                                       "does not have.*basemodels import") as refused:
        complete(consumer, "support.public.helper_r")
    assert REPLY not in refused.value.message


def test_a_second_refresh_copies_only_what_changed(replicated):
    provider, consumer = replicated
    consumer.value("ALTER DATABASE support REFRESH")
    adapters = replica_adapters(consumer)
    unchanged = consumer.value("ALTER DATABASE support REFRESH")
    assert refresh_summary(unchanged) == {"tables_copied": 0, "tables_unchanged": 2, "models_copied": 0,
                                          "models_unchanged": 2}
    assert "0 bytes transferred" in unchanged
    provider.sql("INSERT INTO support.public.questions VALUES ('Question 99: Is it late?', 'Soon.')")
    changed = consumer.value("ALTER DATABASE support REFRESH")
    assert refresh_summary(changed) == {"tables_copied": 1, "tables_unchanged": 1, "models_copied": 0,
                                        "models_unchanged": 2}
    assert count(consumer, "support.public.questions") == len(QUESTIONS) + 1
    assert replica_adapters(consumer) == adapters, "models not copied again"


def test_the_replica_is_read_only_and_grants_are_not_copied(replicated):
    provider, consumer = replicated
    provider.sql("CREATE ROLE IF NOT EXISTS support_reader")
    provider.sql("GRANT SELECT ON TABLE support.public.questions TO ROLE support_reader")
    consumer.sql("CREATE ROLE IF NOT EXISTS support_reader")
    consumer.value("ALTER DATABASE support REFRESH")
    granted = {(r["privilege"], r["granted_on"]) for r in consumer.sql("SHOW GRANTS TO ROLE support_reader")}
    assert ("SELECT", "TABLE") not in granted, "model and table grants stay with the primary, as in Snowflake"
    for statement in ("INSERT INTO support.public.questions VALUES ('x', 'y')",
                      "DELETE FROM support.public.questions",
                      "CREATE TABLE support.public.extra (a INT)",
                      "DROP TABLE support.public.questions",
                      "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'support.public.retrained', 'tiny-llama', "
                      "'SELECT prompt, completion FROM support.public.questions')"):
        with pytest.raises(SqlError, match=f"is a secondary database, a replica of {PRIMARY}, and is read-only"):
            consumer.sql(statement)
    with pytest.raises(SqlError, match="is a secondary database"):
        consumer.sql(f"ALTER DATABASE support ENABLE REPLICATION TO ACCOUNTS {provider.locator}")
    assert count(consumer, "support.public.questions") == count(provider, "support.public.questions")


def test_a_corrupted_or_cut_transfer_leaves_the_replica_as_it_was(replicated):
    provider, consumer = replicated
    consumer.value("ALTER DATABASE support REFRESH")
    before = count(consumer, "support.public.events")
    tables = sorted(p.name for p in (consumer.data_dir / "duckdb").iterdir())
    with Proxy(provider.url) as network:
        consumer.register(provider, url=network.url)
        try:
            provider.sql("INSERT INTO support.public.events VALUES (-1, 'changed on the primary')")
            # Past the headers and the manifest (tens of KB), inside the events table's export (about 1 MB).
            network.corrupt_after(200 * 1024)
            with pytest.raises(SqlError, match="the replica is unchanged.*does not match its checksum"):
                consumer.sql("ALTER DATABASE support REFRESH")
            assert network.corrupted >= 1
            assert count(consumer, "support.public.events") == before
            assert "does not match its checksum" in shown(consumer)["last_refresh_error"]

            network.cut_after(200 * 1024, on_cut=provider.stop_web)
            with pytest.raises(SqlError, match="the replica is unchanged") as cut:
                consumer.sql("ALTER DATABASE support REFRESH")
            assert network.cuts >= 1
            # Cut inside the events table's export: said so, not taken for a corrupted file.
            assert "Account STUDIO_ORG.PROVIDER is unreachable" in cut.value.message
            assert "cut short" in cut.value.message, cut.value.message
            assert count(consumer, "support.public.events") == before
            with pytest.raises(SqlError, match="Account STUDIO_ORG.PROVIDER is unreachable"):
                consumer.sql("ALTER DATABASE support REFRESH")
            assert sorted(p.name for p in (consumer.data_dir / "duckdb").iterdir()) == tables, "nothing half-written"
            assert not list((consumer.data_dir / "models" / "replication").glob(".refresh-*"))
        finally:
            provider.start_web()
            consumer.register(provider)  # the direct route again
    assert refresh_summary(consumer.value("ALTER DATABASE support REFRESH"))["tables_copied"] == 1
    assert count(consumer, "support.public.events") == before + 1


def test_a_schedule_refreshes_the_replica_from_the_workers(replicated):
    provider, consumer = replicated
    with pytest.raises(SqlError, match="Invalid REPLICATION_SCHEDULE 'USING CRON 0 \\* \\* \\* \\* UTC'"):
        consumer.sql("ALTER DATABASE support SET REPLICATION_SCHEDULE = 'USING CRON 0 * * * * UTC'")
    consumer.value("ALTER DATABASE support REFRESH")
    consumer.sql("ALTER DATABASE support SET REPLICATION_SCHEDULE = '1 MINUTE'")
    assert shown(consumer)["replication_schedule"] == "1 MINUTE"
    provider.sql("INSERT INTO support.public.questions VALUES ('Question 100: Scheduled?', 'Yes.')")
    expected = count(provider, "support.public.questions")
    deadline = time.monotonic() + 150  # due a minute after the last refresh; workers look every 10 s
    while count(consumer, "support.public.questions") != expected:
        assert time.monotonic() < deadline, consumer.log("worker")
        time.sleep(2)
    consumer.sql("ALTER DATABASE support UNSET REPLICATION_SCHEDULE")
    assert shown(consumer)["replication_schedule"] is None


def test_promoting_the_replica_makes_the_former_primary_its_secondary(replicated):
    provider, consumer = replicated
    consumer.value("ALTER DATABASE support REFRESH")
    with pytest.raises(SqlError, match="cannot be promoted: its primary, STUDIO_ORG.PROVIDER.SUPPORT, does not allow "
                                       "failover to account STUDIO_ORG.CONSUMER"):
        consumer.sql("ALTER DATABASE support PRIMARY")
    provider.sql(f"ALTER DATABASE support ENABLE FAILOVER TO ACCOUNTS {consumer.locator}")
    consumer.value("ALTER DATABASE support REFRESH")  # learns that failover is allowed
    assert consumer.value("ALTER DATABASE support PRIMARY") == (
        "Database SUPPORT is now the primary database. Database SUPPORT of account STUDIO_ORG.PROVIDER is now a "
        "secondary database, a replica of STUDIO_ORG.CONSUMER.SUPPORT.")
    consumer.sql("INSERT INTO support.public.questions VALUES ('Question 101: After failover?', 'Here.')")
    with pytest.raises(SqlError, match="is a secondary database, a replica of STUDIO_ORG.CONSUMER.SUPPORT"):
        provider.sql("INSERT INTO support.public.questions VALUES ('x', 'y')")
    provider.value("ALTER DATABASE support REFRESH")
    assert count(provider, "support.public.questions") == count(consumer, "support.public.questions")
    assert complete(provider, "support.public.helper").strip() == REPLY, "the model came back from the new primary"
    assert (shown(provider)["is_primary"], shown(consumer)["is_primary"]) == ("false", "true")

    # Failing back while the other account is down: promoted at once, told when it is back.
    consumer.stop_web()
    try:
        answer = provider.value("ALTER DATABASE support PRIMARY")
        assert "could not be told" in answer and "Run ALTER DATABASE SUPPORT PRIMARY again" in answer
        provider.sql("INSERT INTO support.public.questions VALUES ('Question 102: Back?', 'Yes.')")
    finally:
        consumer.start_web()
    assert "is now a secondary database, a replica of STUDIO_ORG.PROVIDER.SUPPORT" in \
        provider.value("ALTER DATABASE support PRIMARY")
    consumer.value("ALTER DATABASE support REFRESH")
    assert count(consumer, "support.public.questions") == count(provider, "support.public.questions")
