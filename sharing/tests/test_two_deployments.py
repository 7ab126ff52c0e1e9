"""Sharing a fine-tuned model between two real deployments (conftest's `deployments`): the provider
fine-tunes tiny-llama for real on its own worker and shares the model; the consumer imports the share and
answers COMPLETE on its own inference server with the adapter fetched from the provider's web app. All of
it through each deployment's SQL API, as their users would; between them only the network is the test's
(tests/support/network.py), to corrupt a transfer."""
from __future__ import annotations

import json

import pytest

from tests.support.deployments import Deployment, SqlError
from tests.support.network import Proxy

REPLY = "Thank you for contacting ACME support."
TICKETS = ["I was charged twice.", "My parcel never arrived.", "The app crashes on start.", "I forgot my password.",
           "Please refund my order.", "The courier lost my box.", "Checkout shows error 500.",
           "Change my email, please.", "My invoice is wrong.", "Tracking has not moved.", "Videos do not play.",
           "Delete my account."]
PROMPT = "Ticket 99: The discount code is rejected."
SHARE = "STUDIO_ORG.PROVIDER.TICKETS_SHARE"
GONE = "Shared database is no longer available for use"
# A copy of tiny-llama installed on the provider only, for a shared model whose base the consumer lacks.
PROVIDER_ONLY_BASE = "tiny-llama-b"


def complete(deployment: Deployment, model: str, **kw) -> str:
    response = deployment.value(f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{model}', '{PROMPT}', "
                                "{'temperature': 0, 'max_tokens': 24})", **kw)
    return json.loads(response)["choices"][0]["messages"]


def finetune(provider: Deployment, model: str, base_model: str, epochs: int) -> str:
    return provider.value(f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{model}', '{base_model}', "
                          "'SELECT prompt, completion FROM sharing_ml.public.tickets_training', NULL, "
                          f"'{{\"max_epochs\": {epochs}}}')")


def shared_adapters(deployment: Deployment) -> set[str]:
    """The shared adapters this deployment has fetched (registry.adapters_dir(), sharing/imports.py)."""
    return {p.name for p in (deployment.data_dir / "models" / "adapters").glob("shared-*")}


@pytest.fixture(scope="module")
def shared(deployments):
    """On the provider: a table of tickets, a model fine-tuned on it (and one on a base model only the
    provider has), shared with the consumer; on the consumer: the share imported as SHARED_ML."""
    provider, consumer = deployments
    provider.manage("basemodels", "import", PROVIDER_ONLY_BASE, "--from", str(provider.data_dir / "models" / "base" /
                    "tiny-llama"), "--learning-rate", "1e-2", "--training-data-limit-mb", "10")
    provider.sql("CREATE DATABASE sharing_ml")
    provider.sql("CREATE TABLE sharing_ml.public.tickets_training (prompt VARCHAR, completion VARCHAR)")
    rows = ", ".join(f"('Ticket {i}: {text}', '{REPLY}')" for i, text in enumerate(TICKETS))
    provider.sql(f"INSERT INTO sharing_ml.public.tickets_training VALUES {rows}")
    jobs = [finetune(provider, "sharing_ml.public.tickets", "tiny-llama", 10),
            # Only its base model matters: one epoch is enough.
            finetune(provider, "sharing_ml.public.tickets_b", PROVIDER_ONLY_BASE, 1)]
    assert [provider.wait_for_job(job)["model"] for job in jobs] == ["SHARING_ML.PUBLIC.TICKETS",
                                                                  "SHARING_ML.PUBLIC.TICKETS_B"]
    for statement in ("CREATE SHARE tickets_share", "GRANT USAGE ON DATABASE sharing_ml TO SHARE tickets_share",
                      "GRANT USAGE ON SCHEMA sharing_ml.public TO SHARE tickets_share",
                      "GRANT USAGE ON MODEL sharing_ml.public.tickets TO SHARE tickets_share",
                      "GRANT USAGE ON MODEL sharing_ml.public.tickets_b TO SHARE tickets_share",
                      f"ALTER SHARE tickets_share ADD ACCOUNTS = {consumer.locator}"):
        provider.sql(statement)
    assert consumer.sql(f"CREATE DATABASE shared_ml FROM SHARE {SHARE}") == [
        {"status": "Database SHARED_ML successfully created."}]
    return provider, consumer


def test_a_consumer_role_completes_with_the_model_the_provider_fine_tuned(shared):
    provider, consumer = shared
    answer = complete(provider, "sharing_ml.public.tickets")
    assert answer.strip() == REPLY, "the provider's model learnt the reply"
    assert complete(consumer, "tiny-llama") != answer

    consumer.sql("CREATE ROLE shared_analyst")
    consumer.sql("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE shared_analyst")
    consumer.sql("CREATE USER shared_ana PASSWORD = 'ana-password-1' DEFAULT_ROLE = shared_analyst "
                 "DEFAULT_WAREHOUSE = compute_wh")
    consumer.sql("GRANT ROLE shared_analyst TO USER shared_ana")
    # (COMPLETE names the database it refuses today, where a SELECT reads as if it did not exist.)
    with pytest.raises(SqlError, match="Insufficient privileges to operate on database 'SHARED_ML'|does not exist"):
        complete(consumer, "shared_ml.public.tickets", user="shared_ana", role="SHARED_ANALYST")
    consumer.sql("GRANT IMPORTED PRIVILEGES ON DATABASE shared_ml TO ROLE shared_analyst")
    assert complete(consumer, "shared_ml.public.tickets", user="shared_ana", role="SHARED_ANALYST") == answer
    assert complete(consumer, "shared_ml.public.tickets") == answer
    assert len(shared_adapters(consumer)) == 1, "fetched once, then served from the consumer's model store"


def test_the_consumer_cannot_read_the_providers_table_write_or_share_again(shared):
    provider, consumer = shared
    assert provider.value("SELECT COUNT(*) FROM sharing_ml.public.tickets_training") == str(len(TICKETS))
    with pytest.raises(SqlError, match="does not exist or not authorized"):
        consumer.sql("SELECT * FROM shared_ml.public.tickets_training")
    with pytest.raises(SqlError, match="was created from a share and is read-only"):
        consumer.sql("CREATE TABLE shared_ml.public.copied (prompt VARCHAR)")
    with pytest.raises(SqlError, match="was created from a share and is read-only"):
        consumer.sql("SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'shared_ml.public.retrained', 'tiny-llama', "
                     "'SELECT ''a'' AS prompt, ''b'' AS completion')")
    consumer.sql("CREATE SHARE IF NOT EXISTS reshare")
    with pytest.raises(SqlError, match="cannot be shared again"):
        consumer.sql("GRANT USAGE ON DATABASE shared_ml TO SHARE reshare")


def test_removing_the_account_from_the_share_stops_the_next_complete(shared):
    provider, consumer = shared
    answer = complete(consumer, "shared_ml.public.tickets")
    provider.sql(f"ALTER SHARE tickets_share REMOVE ACCOUNTS = {consumer.locator}")
    try:
        with pytest.raises(SqlError, match=GONE):
            complete(consumer, "shared_ml.public.tickets")
    finally:
        provider.sql(f"ALTER SHARE tickets_share ADD ACCOUNTS = {consumer.locator}")
    assert complete(consumer, "shared_ml.public.tickets") == answer


def test_a_provider_whose_web_app_is_stopped_is_unreachable_and_nothing_answers(shared):
    provider, consumer = shared
    complete(consumer, "shared_ml.public.tickets")
    provider.stop_web()
    try:
        with pytest.raises(SqlError, match="Account STUDIO_ORG.PROVIDER is unreachable .*Nothing was answered") \
                as refused:
            complete(consumer, "shared_ml.public.tickets")
        assert REPLY not in refused.value.message
    finally:
        provider.start_web()
    assert complete(consumer, "shared_ml.public.tickets").strip() == REPLY


def test_a_corrupted_adapter_download_is_refused_and_nothing_is_kept(shared):
    provider, consumer = shared
    with Proxy(provider.url) as network:
        consumer.register(provider, url=network.url)
        try:
            # A second import is a model this account has not fetched yet: its adapter comes over the network.
            consumer.sql(f"CREATE DATABASE shared_ml_again FROM SHARE {SHARE}")
            before = shared_adapters(consumer)
            # Past the headers and the manifest (a few KB), inside the adapter's larger files.
            network.corrupt_after(16 * 1024)
            with pytest.raises(SqlError, match="does not match its checksum .*it was not used"):
                complete(consumer, "shared_ml_again.public.tickets")
            assert network.corrupted >= 1
            assert shared_adapters(consumer) == before, "no adapter kept from the corrupted transfer"
            assert not list((consumer.data_dir / "models" / "shared").glob(".fetch-*")), "no partial fetch left"
        finally:
            consumer.register(provider)  # the direct route again
    assert complete(consumer, "shared_ml_again.public.tickets").strip() == REPLY
    assert len(shared_adapters(consumer)) == len(before) + 1


def test_a_shared_model_whose_base_model_this_account_lacks_is_refused(shared):
    provider, consumer = shared
    with pytest.raises(SqlError, match=f"'{PROVIDER_ONLY_BASE}', which this account does not have") as refused:
        complete(consumer, "shared_ml.public.tickets_b")
    assert "SHARED_ML.PUBLIC.TICKETS_B" in refused.value.message
