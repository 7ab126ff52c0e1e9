"""The provider's federation API for shares, over real HTTP against another deployment's web app: a
registered consumer named by the share gets the manifest and adapter files with their checksums; a
tampered file is refused by the checksum; revoking, removing the account and dropping the share stop it."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from access.session import Session
from catalog import accountdata
from errors import UserError
from models_registry.models import FineTunedModel
from organization import peers
from organization.models import Account
from sharing import exposure
from sharing.models import Share
from sqlengine.executor import Executor
from tests.support.federation import other_web_app

KEY = "a-key-both-deployments-registered-for-each-other"


@pytest.fixture
def shared(live_db, tmp_path):
    """Account PROVIDER (another process) shares model DB.PUBLIC.TICKETS with this process's account,
    STUDIO; both registered each other."""
    database = f"SHARED_{uuid.uuid4().hex[:8].upper()}"
    accountdata.create_database(database)
    adapter = tmp_path / "adapter"
    (adapter / "tokenizer").mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights" * 1000)
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    (adapter / "tokenizer" / "chat_template.jinja").write_text("{{ messages }}")
    FineTunedModel.objects.create(schema=accountdata.get_schema(database, "PUBLIC"), name="TICKETS",
                                  base_model="smollm2-135m", owner_role="ACCOUNTADMIN", adapter_path=str(adapter))
    with other_web_app("PROVIDER") as url:
        provider = Account.objects.create(organization="STUDIO_ORG", name="PROVIDER", url=url + "/", key=KEY)
        Account.objects.create(organization="STUDIO_ORG", name="STUDIO", url="http://127.0.0.1:1/", key=KEY)
        run = Executor(Session(user=None, role="ACCOUNTADMIN")).execute
        run("CREATE OR REPLACE SHARE tickets_share")
        for statement in (f"GRANT USAGE ON DATABASE {database} TO SHARE tickets_share",
                          f"GRANT USAGE ON SCHEMA {database}.public TO SHARE tickets_share",
                          f"GRANT USAGE ON MODEL {database}.public.tickets TO SHARE tickets_share",
                          "ALTER SHARE tickets_share ADD ACCOUNTS = studio_org.studio"):
            run(statement)
        yield provider, database, adapter, run
    Share.objects.all().delete()
    Account.objects.all().delete()
    accountdata.drop_database(database)


def test_the_consumer_gets_the_manifest_and_each_file_matching_its_checksum(shared, tmp_path):
    provider, database, adapter, _ = shared
    manifest = peers.get_json(provider, "shares/TICKETS_SHARE")
    assert manifest["database"] == database and manifest["schemas"] == ["PUBLIC"]
    [model] = manifest["models"]
    assert (model["schema"], model["name"], model["base_model"]) == ("PUBLIC", "TICKETS", "smollm2-135m")
    files = {f["path"]: f for f in model["files"]}
    assert set(files) == {"adapter_config.json", "adapter_model.safetensors", "tokenizer/chat_template.jinja"}
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    assert files["adapter_model.safetensors"] == {"path": "adapter_model.safetensors", "size": len(weights),
                                                  "sha256": hashlib.sha256(weights).hexdigest()}
    for path, f in files.items():
        got = peers.download(provider, f"shares/TICKETS_SHARE/models/PUBLIC/TICKETS/files/{path}",
                             tmp_path / "cache" / path, sha256=f["sha256"], size=f["size"])
        assert got.read_bytes() == (adapter / path).read_bytes()


def test_a_tampered_adapter_file_is_refused_and_nothing_is_written(shared, tmp_path):
    provider, _, adapter, _ = shared
    listed = {f["path"]: f for f in peers.get_json(provider, "shares/TICKETS_SHARE")["models"][0]["files"]}
    (adapter / "adapter_model.safetensors").write_bytes(b"\x01evil!!" * 1000)  # changed after the manifest
    target = tmp_path / "cache" / "adapter_model.safetensors"
    with pytest.raises(UserError, match="does not match its checksum"):
        peers.download(provider, "shares/TICKETS_SHARE/models/PUBLIC/TICKETS/files/adapter_model.safetensors",
                       target, sha256=listed["adapter_model.safetensors"]["sha256"],
                       size=listed["adapter_model.safetensors"]["size"])
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_only_files_of_a_shared_model_are_served(shared, tmp_path):
    provider, database, adapter, run = shared
    for path in ("../../../etc/passwd", "adapter_model.safetensors/../adapter_config.json", "missing.bin"):
        with pytest.raises(UserError, match="has no file|does not exist or not authorized"):
            peers.download(provider, f"shares/TICKETS_SHARE/models/PUBLIC/TICKETS/files/{path}",
                           tmp_path / "x", sha256="0" * 64, size=10)
    with pytest.raises(UserError, match="does not exist or not authorized"):
        peers.download(provider, "shares/TICKETS_SHARE/models/PUBLIC/OTHER/files/adapter_config.json",
                       tmp_path / "x", sha256="0" * 64, size=10)


def test_revoking_removing_the_account_or_dropping_the_share_stops_the_next_request(shared):
    provider, database, _, run = shared
    run(f"REVOKE USAGE ON MODEL {database}.public.tickets FROM SHARE tickets_share")
    assert peers.get_json(provider, "shares/TICKETS_SHARE")["models"] == []
    run(f"GRANT USAGE ON MODEL {database}.public.tickets TO SHARE tickets_share")
    assert len(peers.get_json(provider, "shares/TICKETS_SHARE")["models"]) == 1
    run("ALTER SHARE tickets_share REMOVE ACCOUNTS = studio")
    with pytest.raises(UserError, match="Shared database is no longer available for use") as gone:
        peers.get_json(provider, "shares/TICKETS_SHARE")
    assert gone.value.refused
    run("ALTER SHARE tickets_share ADD ACCOUNTS = studio")
    run("DROP SHARE tickets_share")
    with pytest.raises(UserError, match="Shared database is no longer available for use"):
        peers.get_json(provider, "shares/TICKETS_SHARE")
    # A share that exists for another account reads the same as one that does not.
    assert exposure.GONE in str(pytest.raises(UserError, peers.get_json, provider, "shares/NO_SUCH_SHARE").value)
