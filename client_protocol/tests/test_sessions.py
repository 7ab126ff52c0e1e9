"""Sign-in, tokens and their lifetimes over the protocol's own endpoints (Django's test client; the real
clients' own runs are in test_connector.py)."""
from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from access.bootstrap import bootstrap
from client_protocol.models import ClientSession

PASSWORD = "admin-test-password"


@pytest.fixture
def admin(transactional_db, settings, tmp_path):  # statements run on threads of their own: committed rows
    settings.DUCKDB_DIR, settings.STAGE_DIR = tmp_path / "duckdb", tmp_path / "stages"
    settings.CLIENT_RESULT_FORMAT = "json"  # these tests read rows as the JSON rowset (Arrow is the default)
    bootstrap(password=PASSWORD, demo=False)
    yield get_user_model().objects.get(username="admin")
    for thread in threading.enumerate():  # let statements finish before the tables are flushed
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


def post(client, path, body=None, token=None, compress=True, **query):
    raw = json.dumps(body if body is not None else {}).encode()
    headers = {"HTTP_AUTHORIZATION": f'Snowflake Token="{token or "None"}"'}
    if compress:
        raw, headers["HTTP_CONTENT_ENCODING"] = gzip.compress(raw), "gzip"
    url = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    response = client.post(url, raw, content_type="application/json", **headers)
    assert response.status_code == 200  # every answer of the protocol, success or not
    return response.json()


def login(client, user="admin", password=PASSWORD, **query):
    return post(client, "/session/v1/login-request", {"data": {
        "LOGIN_NAME": user, "PASSWORD": password, "ACCOUNT_NAME": "studio", "CLIENT_APP_ID": "PythonConnector",
        "CLIENT_APP_VERSION": "4.8.1"}}, **query)


def run(client, token, sql, **body):
    return post(client, "/queries/v1/query-request", {"sqlText": sql, "sequenceId": 1, **body}, token=token,
                requestId="5f1c0b8e-0000-4000-8000-000000000001")


def test_sign_in_gives_tokens_that_are_kept_only_as_hashes(client, admin):
    answer = login(client, user="ADMIN")  # login names are case-insensitive
    assert answer["success"] is True and answer["code"] is None
    data = answer["data"]
    assert isinstance(data["sessionId"], int) and data["token"] and data["masterToken"]
    assert {"name": "CLIENT_TELEMETRY_ENABLED", "value": False} in data["parameters"]
    assert data["sessionInfo"] == {"databaseName": None, "schemaName": None, "warehouseName": "COMPUTE_WH",
                                   "roleName": "ACCOUNTADMIN"}
    record = ClientSession.objects.get(pk=data["sessionId"])
    stored = json.dumps(list(ClientSession.objects.values()), default=str)
    assert data["token"] not in stored and data["masterToken"] not in stored
    assert record.token_hash != data["token"]
    assert run(client, data["token"], "SELECT 1 + 1 AS two")["data"]["rowset"] == [["2"]]


def test_a_wrong_password_is_snowflakes_390100_and_repeated_failures_lock_the_name(client, admin, settings):
    settings.CLIENT_LOGIN_MAX_FAILURES = 3
    wrong = login(client, password="not-the-password")
    assert wrong["success"] is False and wrong["code"] == "390100"
    assert wrong["message"] == "Incorrect username or password was specified."
    assert login(client, user="nobody")["code"] == "390100"  # an unknown user is answered alike
    login(client, password="again-wrong")
    login(client, password="and-again")
    locked = login(client)  # the right password, after three failures
    assert locked["success"] is False and locked["code"] == "390102"
    assert "too many failed sign-in attempts" in locked["message"]


def test_an_unknown_account_or_authenticator_is_refused_by_name(client, admin):
    answer = post(client, "/session/v1/login-request", {"data": {
        "LOGIN_NAME": "admin", "PASSWORD": PASSWORD, "ACCOUNT_NAME": "xy12345"}})
    assert answer["success"] is False and "account='studio'" in answer["message"]
    answer = post(client, "/session/v1/login-request", {"data": {
        "LOGIN_NAME": "admin", "PASSWORD": PASSWORD, "AUTHENTICATOR": "EXTERNALBROWSER"}})
    assert answer["success"] is False and "EXTERNALBROWSER" in answer["message"]


def test_the_requested_role_must_be_granted(client, admin):
    answer = login(client, roleName="NO_SUCH_ROLE")
    assert answer["success"] is False and answer["code"] == "390189"


def test_use_statements_carry_over_to_the_next_request(client, admin):
    token = login(client)["data"]["token"]
    assert run(client, token, "CREATE DATABASE IF NOT EXISTS CARRY")["success"]
    assert run(client, token, "USE DATABASE CARRY")["data"]["finalDatabaseName"] == "CARRY"
    rows = run(client, token, "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")["data"]["rowset"]
    assert rows == [["CARRY", "PUBLIC"]]


def test_an_expired_token_is_390112_and_renews_with_the_master_token(client, admin):
    data = login(client)["data"]
    ClientSession.objects.filter(pk=data["sessionId"]).update(token_expires_on=timezone.now() - timedelta(seconds=1))
    expired = run(client, data["token"], "SELECT 1")
    assert expired["success"] is False and expired["code"] == "390112"
    renewed = post(client, "/session/token-request", {"oldSessionToken": data["token"], "requestType": "RENEW"},
                   token=data["masterToken"])
    assert renewed["success"] is True and renewed["data"]["sessionId"] == data["sessionId"]
    new_token = renewed["data"]["sessionToken"]
    assert run(client, new_token, "SELECT 1")["data"]["rowset"] == [["1"]]
    assert run(client, data["token"], "SELECT 1")["code"] == "390111"  # the old token is gone
    new_master = renewed["data"]["masterToken"]
    assert new_master != data["masterToken"]  # rotated: the old master token renews nothing now
    stale = post(client, "/session/token-request", {"oldSessionToken": new_token, "requestType": "RENEW"},
                 token=data["masterToken"])
    assert stale["success"] is False and stale["code"] == "390111"
    ClientSession.objects.filter(pk=data["sessionId"]).update(master_expires_on=timezone.now() - timedelta(seconds=1))
    again = post(client, "/session/token-request", {"oldSessionToken": new_token, "requestType": "RENEW"},
                 token=new_master)
    assert again["success"] is False and again["code"] == "390114"


def test_logout_and_disabling_the_user_revoke_the_token(client, admin):
    first, second = login(client)["data"], login(client)["data"]
    assert post(client, "/session/heartbeat", token=first["token"], compress=False)["success"] is True
    assert post(client, "/session", {}, token=first["token"], delete="true")["success"] is True
    gone = run(client, first["token"], "SELECT 1")
    assert gone["success"] is False and gone["code"] == "390111"
    assert post(client, "/session/heartbeat", token=first["token"])["success"] is False
    assert run(client, second["token"], "SELECT 1")["success"] is True
    admin.is_active = False
    admin.save()
    assert run(client, second["token"], "SELECT 1")["code"] == "390111"
    admin.is_active = True
    admin.save()
    assert run(client, second["token"], "SELECT 1")["code"] == "390111"  # re-enabling does not revive it
    assert ClientSession.objects.filter(closed_on__isnull=True).count() == 0


def test_a_gzip_bomb_is_refused_not_inflated(client, admin, settings):
    settings.CLIENT_MAX_REQUEST_BYTES = 1024
    token = login(client)["data"]["token"]
    settings.CLIENT_MAX_REQUEST_BYTES = 64 * 1024
    bomb = gzip.compress(json.dumps({"sqlText": "SELECT 1", "pad": "x" * 10_000_000}).encode())
    response = client.post("/queries/v1/query-request", bomb, content_type="application/json",
                           HTTP_CONTENT_ENCODING="gzip", HTTP_AUTHORIZATION=f'Snowflake Token="{token}"')
    answer = response.json()
    assert answer["success"] is False and "too large once decompressed" in answer["message"]
