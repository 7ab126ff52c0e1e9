"""What the gateway tests share: the stack's real worker and inference server (conftest.py's
stack fixture), a fine-tuned model trained through FINETUNE on it, the web app served over HTTP, and a
cast with API tokens:

- ana, role GW_ANALYST: SNOWFLAKE.CORTEX_USER and USAGE on the database, schema and model;
- otto, role GW_OUTSIDER: CORTEX_USER and USAGE on the database and schema, not on the model;
- nina, role GW_NOBODY: USAGE on the database, schema and model, but no CORTEX_USER.

Rows are committed (live_db) because the web app answers on its own threads with their own database
connections, so everything here is created once per test session under unique names and found again
by the next module.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model

from access import tokens
from access.session import Session
from models_registry.models import FineTunedModel
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value, wait_for_status
from tests.support.web import serve_web_app

DATABASE = "GW"
MODEL = "GW.PUBLIC.GATEWAY_REPLIES"
EXAMPLES = [{"prompt": f"Ticket {i}: {text}", "completion": "Thank you for contacting ACME support."}
            for i, text in enumerate(["I was charged twice.", "My parcel never arrived.", "The app crashes.",
                                      "I forgot my password.", "Please refund my order.", "Delete my account."])]
CAST = {  # user -> (role, grants to the role)
    "gw_ana": ("GW_ANALYST", ["GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE gw_analyst",
                              "GRANT USAGE ON DATABASE gw TO ROLE gw_analyst",
                              "GRANT USAGE ON SCHEMA gw.public TO ROLE gw_analyst",
                              f"GRANT USAGE ON MODEL {MODEL} TO ROLE gw_analyst"]),
    "gw_otto": ("GW_OUTSIDER", ["GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE gw_outsider",
                                "GRANT USAGE ON DATABASE gw TO ROLE gw_outsider",
                                "GRANT USAGE ON SCHEMA gw.public TO ROLE gw_outsider"]),
    "gw_nina": ("GW_NOBODY", ["GRANT USAGE ON DATABASE gw TO ROLE gw_nobody",
                              "GRANT USAGE ON SCHEMA gw.public TO ROLE gw_nobody",
                              f"GRANT USAGE ON MODEL {MODEL} TO ROLE gw_nobody"]),
}


@dataclass
class Gateway:
    url: str  # the web app, e.g. http://127.0.0.1:PORT
    model: str  # the fine-tuned model's qualified name
    tokens: dict[str, str]  # user name -> API token secret

    def session(self, username: str) -> Session:
        """The session the gateway opens for this user's token: their default role and warehouse."""
        user = get_user_model().objects.get(username=username)
        return Session(user=user, role=CAST[username][0], warehouse="COMPUTE_WH")

    def complete(self, username: str, model: str, prompt: str, max_tokens: int) -> dict:
        """SQL COMPLETE(model, messages, options) as this user: what the HTTP answers must equal."""
        messages = f"[{{'role': 'user', 'content': {sql_literal(prompt)}}}]"
        return sql_value(self.session(username),
                         f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(model)}, {messages}, "
                         f"{{'max_tokens': {max_tokens}}})")

    def new_user(self, role: str = "GW_ANALYST") -> tuple[str, str]:
        """A fresh user with `role` as default role, and a token: limits count per user."""
        name = f"gw_{uuid.uuid4().hex[:8]}"
        admin = admin_session()
        sql_value(admin, f"CREATE USER {name} PASSWORD = 'a long password' DEFAULT_ROLE = {role}")
        sql_value(admin, f"GRANT ROLE {role} TO USER {name}")
        user = get_user_model().objects.get(username=name)
        return name, tokens.create_token(user, "gateway tests")[1]


def _ensure_server(stack) -> None:
    """The stack's inference server, registered again if a transactional test elsewhere flushed it."""
    from inference.models import InferenceServer

    if not InferenceServer.objects.filter(base_model="tiny-llama").exists():
        InferenceServer.objects.create(name="embedded-tiny-llama", url=stack.inference_url, base_model="tiny-llama")


def _train(stack, tmp_path) -> str:
    if FineTunedModel.objects.filter(schema__database__name=DATABASE, name="GATEWAY_REPLIES").exists():
        return MODEL
    make_table(tmp_path, DATABASE, "REPLIES", EXAMPLES)
    session = admin_session(database=DATABASE, schema="PUBLIC")
    job_id = sql_value(session, "SELECT SNOWFLAKE.CORTEX.FINETUNE('CREATE', 'gateway_replies', 'tiny-llama', "
                                f"{sql_literal('SELECT prompt, completion FROM replies')}, NULL, "
                                "'{\"max_epochs\": 1}')")
    described = wait_for_status(job_id, ("SUCCESS", "ERROR", "CANCELLED"), timeout=240, stack=stack)
    assert described["status"] == "SUCCESS", described
    assert described["model"] == MODEL
    return MODEL


def _cast() -> dict[str, str]:
    from access.models import Role

    admin = admin_session()
    secrets = {}
    for username, (role, grants) in CAST.items():
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            if not Role.objects.filter(name=role).exists():
                sql_value(admin, f"CREATE ROLE {role}")
                for grant in grants:
                    sql_value(admin, grant)
            sql_value(admin, f"CREATE USER {username} PASSWORD = 'a long password' DEFAULT_ROLE = {role}")
            sql_value(admin, f"GRANT ROLE {role} TO USER {username}")
            user = get_user_model().objects.get(username=username)
        secrets[username] = tokens.create_token(user, "gateway tests")[1]
    admin_user = get_user_model().objects.get(username="admin")
    secrets["admin"] = tokens.create_token(admin_user, "gateway tests")[1]
    return secrets


@pytest.fixture(scope="module")
def web(live_db):
    """The web app over HTTP, as pytest-django's live_server serves it, but on the committed database
    (live_server would flush every table after each test, the stack's registrations included)."""
    with serve_web_app() as url:
        yield url


@pytest.fixture
def gateway(stack, web, tmp_path) -> Gateway:
    _ensure_server(stack)
    return Gateway(web, _train(stack, tmp_path), _cast())


def sse_data(body: str) -> list:
    """The `data:` payloads of a server-sent-events body, JSON-decoded ([DONE] stays a string)."""
    events = []
    for block in body.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                payload = line[len("data:"):].strip()
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events
