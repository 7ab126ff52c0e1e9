"""snowflake.cortex.complete() (snowflake-ml 2.6) through a Snowpark session, answered by the stack's real
inference server, with the studio served over HTTPS on port 443 as runstack serves it with STUDIO_TLS_CERT
and STUDIO_TLS_KEY (supervision.processes.web_command).

For a string prompt the client posts to https://<host>/api/v2/cortex/inference:complete itself: https
hard-coded and the connection's port dropped, so only HTTPS on 443 reaches it. The certificate comes from a
throwaway CA (scripts/throwaway_ca.py), which the client trusts through REQUESTS_CA_BUNDLE.
"""
from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from access import roles
from client_protocol import sessions
from client_protocol.models import ClientSession
from client_protocol.tests.conftest import ROOT, SCRIPTS, Studio, client_python
from inference.models import CompletionUsage, InferenceServer
from supervision import processes
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value

GENERATION = "connector4"  # snowflake-ml 2.6 and Snowpark 1.56 pin the 4.x connector
MODEL = "tiny-llama"
PROMPT = "Ticket 7: the parcel came open and the mug inside is broken."
MAX_TOKENS = 12
PATH = "/api/v2/cortex/inference:complete"
USER_PASSWORD = "a long password for cortex"


@dataclass
class Certificates:
    ca: Path  # what the client trusts
    cert: Path  # the server's, for 127.0.0.1 and localhost, signed by the CA
    key: Path


def make_certificates(folder: Path) -> Certificates:
    done = subprocess.run([str(client_python(GENERATION)), str(SCRIPTS / "throwaway_ca.py"), str(folder)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def why_port_443_cannot_be_bound() -> str | None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 443))
        except PermissionError:
            return ("binding port 443 needs root or CAP_NET_BIND_SERVICE, and snowflake.cortex.complete() calls "
                    "https://<host>/ on 443 whatever port the connection names")
        except OSError as exc:
            return f"port 443 is taken on 127.0.0.1 ({exc}), and snowflake.cortex.complete() reaches no other port"
    return None


# Decided when the tests are collected: the stack a test asks for (session-scoped) would start before a
# skip from a module-scoped fixture.
PORT_443_PROBLEM = why_port_443_cannot_be_bound()
needs_port_443 = pytest.mark.skipif(PORT_443_PROBLEM is not None, reason=PORT_443_PROBLEM or "")


@dataclass
class HttpsStudio:
    studio: Studio
    ca: Path
    log: Path

    def run(self, script: str, *args: str, user: str, role: str) -> dict:
        try:
            return self.studio.run(GENERATION, script, *args, user=user, password=USER_PASSWORD, STUDIO_ROLE=role,
                                   REQUESTS_CA_BUNDLE=str(self.ca))
        except AssertionError as failure:
            raise AssertionError(f"{failure}\nThe web app's log:\n{self.log.read_text()[-4000:]}") from None


@pytest.fixture(scope="module")
def https_studio(live_db, tmp_path_factory):
    certificates = make_certificates(tmp_path_factory.mktemp("tls"))
    log = settings.DATA_DIR / "logs" / "web-https.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # The settings' own names, as a user sets them; the web app inherits tests.settings and its data dir.
    environment = {**os.environ, "STUDIO_TLS_CERT": str(certificates.cert), "STUDIO_TLS_KEY": str(certificates.key),
                   "STUDIO_PORT": "443"}
    with open(log, "ab") as output:
        web = subprocess.Popen(processes.web_command("127.0.0.1", 443, tls_cert=certificates.cert,
                                                     tls_key=certificates.key),
                               cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        processes.wait_until(lambda: processes.port_open(443), 60, "the web app over HTTPS", web)
        yield HttpsStudio(Studio("https://127.0.0.1:443"), certificates.ca, log)
    finally:
        processes.stop(web)


@pytest.fixture
def served(stack):
    """The stack's inference server, registered again if a transactional test elsewhere flushed it."""
    if not InferenceServer.objects.filter(base_model=MODEL).exists():
        InferenceServer.objects.create(name="embedded-tiny-llama", url=stack.inference_url, base_model=MODEL)
    return stack


def new_user(*grants: str) -> tuple[str, str]:
    """A user whose default role is PUBLIC, granted a fresh role holding `grants` (role as {role})."""
    suffix = uuid.uuid4().hex[:6]
    name, role = f"cx_{suffix}", f"CX_ROLE_{suffix.upper()}"
    admin = admin_session()
    sql_value(admin, f"CREATE ROLE {role}")
    for grant in grants:
        sql_value(admin, grant.format(role=role))
    sql_value(admin, f"CREATE USER {name} PASSWORD = {sql_literal(USER_PASSWORD)} DEFAULT_ROLE = PUBLIC")
    sql_value(admin, f"GRANT ROLE {role} TO USER {name}")
    return name, role


def sql_complete(user_name: str, role: str, prompt: str) -> dict:
    """COMPLETE through SQL in the session the client signs in to, greedy: what the REST answer must equal."""
    session = roles.open_session(get_user_model().objects.get(username=user_name), role=role)
    messages = f"[{{'role': 'user', 'content': {sql_literal(prompt)}}}]"
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(MODEL)}, {messages}, "
                              f"{{'temperature': 0, 'max_tokens': {MAX_TOKENS}}})")


@needs_port_443
def test_a_string_prompt_is_answered_over_https_in_the_sessions_role_and_metered(https_studio, served):
    user_name, role = new_user("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {role}")
    expected = sql_complete(user_name, role, PROMPT)

    out = https_studio.run("cortex_complete.py", MODEL, PROMPT, str(MAX_TOKENS), "string", user=user_name, role=role)

    assert out["current"][1:] == [role, "COMPUTE_WH"]
    assert out["answer"] and out["answer"] == expected["choices"][0]["messages"]
    rows = list(CompletionUsage.objects.filter(user_name=user_name, entry_point=CompletionUsage.EntryPoint.CORTEX_REST))
    assert [(r.role, r.warehouse, r.model_name, r.status) for r in rows] == [(role, "COMPUTE_WH", MODEL, "SUCCESS")]
    assert (rows[0].input_tokens, rows[0].output_tokens) == (expected["usage"]["prompt_tokens"],
                                                             expected["usage"]["completion_tokens"])


@needs_port_443
def test_the_certificate_is_checked_and_only_the_throwaway_ca_vouches_for_it(https_studio):
    trusting = ssl.create_default_context(cafile=str(https_studio.ca))
    with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw, \
            trusting.wrap_socket(raw, server_hostname="localhost") as tls:
        assert dict(name[0] for name in tls.getpeercert()["subject"]) == {"commonName": "localhost"}
    with socket.create_connection(("127.0.0.1", 443), timeout=10) as raw, pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


@needs_port_443
def test_a_session_role_without_cortex_user_is_refused_with_snowflakes_error(https_studio, served):
    user_name, role = new_user()

    out = https_studio.run("cortex_complete.py", MODEL, PROMPT, str(MAX_TOKENS), "string", user=user_name, role=role)

    assert out["http_error"]["status"] == 403
    assert "the SNOWFLAKE.CORTEX_USER database role is required" in out["http_error"]["body"]["message"]
    assert out["http_error"]["body"]["code"] == "003001"
    assert not CompletionUsage.objects.filter(user_name=user_name, status="SUCCESS").exists()


@needs_port_443
def test_a_column_prompt_goes_through_ai_complete_in_a_query(https_studio, served, tmp_path):
    database = f"CX_{uuid.uuid4().hex[:6].upper()}"
    prompts = ["My order is late.", "The lid does not fit."]
    make_table(tmp_path, database, "PROMPTS", [{"id": i, "prompt": p} for i, p in enumerate(prompts)])
    user_name, role = new_user("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {role}",
                               f"GRANT USAGE ON DATABASE {database} TO ROLE {{role}}",
                               f"GRANT USAGE ON SCHEMA {database}.PUBLIC TO ROLE {{role}}",
                               f"GRANT SELECT ON TABLE {database}.PUBLIC.PROMPTS TO ROLE {{role}}")
    session = roles.open_session(get_user_model().objects.get(username=user_name), role=role)
    expected = [sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(MODEL)}, {sql_literal(p)})")
                for p in prompts]

    out = https_studio.run("cortex_complete.py", MODEL, "", str(MAX_TOKENS), "column", f"{database}.PUBLIC.PROMPTS",
                           user=user_name, role=role)

    assert out["answers"] == expected
    assert all(expected)


# --- the token, without a client or a server: the view in process ------------------------------------

def post(token_header: str):
    return Client().post(PATH, data=json.dumps({"model": MODEL, "messages": [{"content": PROMPT}]}),
                         content_type="application/json", HTTP_AUTHORIZATION=token_header)


@pytest.fixture
def signed_in(db):
    from access.bootstrap import ensure_roles, ensure_warehouse

    ensure_roles()  # PUBLIC, the role of a sign-in in the user's defaults
    ensure_warehouse()
    user = get_user_model().objects.create_user(f"cx_{uuid.uuid4().hex[:6]}", password=USER_PASSWORD)
    return sessions.sign_in(user.username, USER_PASSWORD, address="127.0.0.1")


def test_an_expired_session_token_is_401_with_the_code_clients_renew_on(signed_in):
    ClientSession.objects.filter(pk=signed_in.record.pk).update(token_expires_on=timezone.now())

    response = post(f'Snowflake Token="{signed_in.token}"')

    assert response.status_code == 401
    assert response.json()["code"] == "390112"
    assert response.json()["message"].startswith("Session token expired.")
    assert not CompletionUsage.objects.filter(user=signed_in.record.user).exists()


@pytest.mark.parametrize("how", ["signed out", "unknown", "None"])
def test_a_closed_or_unknown_session_token_is_401_session_gone(signed_in, how):
    token = {"signed out": signed_in.token, "unknown": "sfc_nope", "None": "None"}[how]
    if how == "signed out":
        assert sessions.sign_out(signed_in.token)

    response = post(f'Snowflake Token="{token}"')

    assert response.status_code == 401
    assert response.json() == {"code": "390111", "request_id": response.json()["request_id"],
                               "message": "Session no longer exists.  New login required to access the service."}


def test_half_a_tls_setting_stops_the_settings_with_both_names(tmp_path):
    (tmp_path / "cert.pem").write_text("not read")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "DJANGO_"))}
    environment |= {"DJANGO_SETTINGS_MODULE": "project.settings", "STUDIO_DATA_DIR": str(tmp_path / "data"),
                    "STUDIO_TLS_CERT": str(tmp_path / "cert.pem")}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environment,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "Set both STUDIO_TLS_CERT and STUDIO_TLS_KEY to serve HTTPS, or neither" in done.stderr
