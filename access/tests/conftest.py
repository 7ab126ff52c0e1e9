"""The cast of the privilege tests: the bootstrap administrator, and ana, who holds the custom role
ANALYST with exactly what FINETUNE CREATE needs, granted through SQL as ACCOUNTADMIN."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from access.bootstrap import bootstrap
from access.session import Session
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table

ROWS = [{"prompt": f"ticket {i}", "completion": "billing"} for i in range(4)]
ANALYST_GRANTS = [
    "GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE analyst",
    "GRANT USAGE ON WAREHOUSE compute_wh TO ROLE analyst",
    "GRANT USAGE ON DATABASE mdb TO ROLE analyst",
    "GRANT USAGE ON SCHEMA mdb.public TO ROLE analyst",
    "GRANT SELECT ON TABLE mdb.public.training TO ROLE analyst",
    "GRANT CREATE MODEL ON SCHEMA mdb.public TO ROLE analyst",
]


def sql(session: Session, text: str):
    return Executor(session).execute(text)[-1]


def finetune_sql(name: str = "mdb.public.tuned_by_ana") -> str:
    return (f"SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', '{name}', 'tiny-llama', "
            "'SELECT prompt, completion FROM training')")


def make_model(name: str, owner_role: str, tmp_path) -> FineTunedModel:
    from catalog import accountdata

    return FineTunedModel.objects.create(schema=accountdata.get_schema("MDB", "PUBLIC"), name=name,
                                         base_model="tiny-llama", owner_role=owner_role,
                                         adapter_path=str(tmp_path / "adapters" / name))


def new_user(username: str, *roles: str):
    user = get_user_model().objects.create_user(username, password="pw-for-tests-1")
    for role in roles:
        sql(admin_session(), f"GRANT ROLE {role} TO USER {username}")
    return user


@pytest.fixture
def admin(db, tmp_path, settings, tiny_llama) -> Session:
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-admin-1234", demo=False)
    make_table(tmp_path, "MDB", "TRAINING", ROWS)
    return admin_session(database="MDB", schema="PUBLIC")


@pytest.fixture
def analyst(admin) -> Session:
    # Bootstrap lets PUBLIC use COMPUTE_WH; taken back here so the warehouse grant is ANALYST's own.
    sql(admin, "REVOKE USAGE ON WAREHOUSE compute_wh FROM ROLE public")
    sql(admin, "CREATE ROLE analyst")
    for statement in ANALYST_GRANTS:
        sql(admin, statement)
    ana = new_user("ana", "analyst")
    return Session(ana, role="ANALYST", warehouse="COMPUTE_WH", database="MDB", schema="PUBLIC")
