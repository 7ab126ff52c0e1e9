"""usable_models (the playground's picker, the gateway's /v1/models) decides for every model at once what
COMPLETE decides for one: the two must agree for every role and model."""
from __future__ import annotations

import pytest

from access.bootstrap import bootstrap
from access.session import Session
from catalog import accountdata
from catalog.models import BaseModel
from errors import UserError
from inference import complete
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

BASE = "tiny-llama"
ROLES = ("R_FULL", "R_NO_MODEL", "R_NO_SCHEMA", "R_OWNER", "R_CHILD", "R_NO_CORTEX")


@pytest.fixture
def account(db, settings, tmp_path, tiny_llama):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-usable-1234", demo=False)
    accountdata.create_database("U")
    admin = admin_session(database="U", schema="PUBLIC")
    schema = accountdata.get_schema("U", "PUBLIC")
    for name, owner in (("SHARED", "ACCOUNTADMIN"), ("OWNED", "R_OWNER"), ("OTHER", "ACCOUNTADMIN")):
        FineTunedModel.objects.create(schema=schema, name=name, base_model=BASE, owner_role=owner,
                                      adapter_path=str(tmp_path / name))
    statements = [f"CREATE ROLE {role}" for role in ROLES] + [
        "GRANT ROLE r_owner TO ROLE r_child",  # R_CHILD inherits R_OWNER's model
        *[f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {r}" for r in ROLES if r != "R_NO_CORTEX"],
        *[f"GRANT USAGE ON DATABASE u TO ROLE {r}" for r in ("R_FULL", "R_NO_MODEL", "R_NO_SCHEMA", "R_OWNER",
                                                                "R_NO_CORTEX")],
        *[f"GRANT USAGE ON SCHEMA u.public TO ROLE {r}" for r in ("R_FULL", "R_NO_MODEL", "R_OWNER", "R_NO_CORTEX")],
        "GRANT USAGE ON MODEL u.public.shared TO ROLE r_full",
        "GRANT USAGE ON MODEL u.public.shared TO ROLE r_no_schema",
        "GRANT USAGE ON MODEL u.public.shared TO ROLE r_no_cortex",
    ]
    executor = Executor(admin)
    for statement in statements:
        executor.execute(statement)
    return admin


def one_by_one(session: Session) -> list[str]:
    names = list(BaseModel.objects.order_by("name").values_list("name", flat=True))
    names += [m.qualified_name for m in FineTunedModel.objects.select_related("schema__database")]
    allowed = []
    for name in names:
        try:
            allowed.append(complete._authorized_target(session, name).display_name)
        except UserError:
            pass
    return allowed


@pytest.mark.parametrize("role", ("ACCOUNTADMIN",) + ROLES)
def test_the_picker_offers_exactly_what_complete_allows(account, role):
    session = Session(user=account.user, role=role, warehouse="COMPUTE_WH")
    offered = [t.display_name for t in complete.usable_models(session)]
    assert offered == one_by_one(session)


def test_what_each_role_may_use(account):
    def offered(role):
        return {t.display_name for t in complete.usable_models(Session(user=account.user, role=role))
                if t.adapter_id is not None}

    assert offered("R_FULL") == {"U.PUBLIC.SHARED"}
    assert offered("R_NO_MODEL") == set()
    assert offered("R_NO_SCHEMA") == set()  # USAGE on the model is not enough without the schema
    assert offered("R_OWNER") == {"U.PUBLIC.OWNED"}
    assert offered("R_CHILD") == {"U.PUBLIC.OWNED"}  # inherits R_OWNER: its ownership and its grants
    assert complete.usable_models(Session(user=account.user, role="R_NO_CORTEX")) == []


def test_a_disabled_base_model_takes_its_fine_tuned_models_off_the_list(account):
    BaseModel.objects.filter(name=BASE).update(enabled=False)
    session = Session(user=account.user, role="R_FULL")
    assert [t.display_name for t in complete.usable_models(session) if t.adapter_id is not None] == []
    assert BASE not in one_by_one(session) and "U.PUBLIC.SHARED" not in one_by_one(session)
