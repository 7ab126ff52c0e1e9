"""Input and output tokens recorded per COMPLETE call and user, whatever the entry point (SQL, the
OpenAI-compatible API, the Cortex REST API), and read back through SQL from the account-usage views."""
from __future__ import annotations

import openai
import pytest
from transformers import AutoTokenizer

from errors import UserError
from inference.models import CompletionUsage
from inference.tests.gateway_support import gateway, web  # noqa: F401 (fixtures)
from models_registry.models import FineTunedModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session, make_table, sql_literal, sql_value

REST_VIEW = "SNOWFLAKE.ACCOUNT_USAGE.CORTEX_REST_API_USAGE_HISTORY"
FUNCTIONS_VIEW = "SNOWFLAKE.ACCOUNT_USAGE.CORTEX_FUNCTIONS_USAGE_HISTORY"


def run(session, sql: str):
    return Executor(session).execute(sql)[-1]


def test_sql_complete_records_the_users_input_and_output_tokens(gateway):
    prompt = "Ticket 31: The invoice shows the wrong address."
    before = CompletionUsage.objects.filter(user_name="gw_ana").count()

    response = gateway.complete("gw_ana", gateway.model, prompt, max_tokens=12)

    row = CompletionUsage.objects.filter(user_name="gw_ana").latest("pk")
    assert CompletionUsage.objects.filter(user_name="gw_ana").count() == before + 1
    assert (row.entry_point, row.role, row.warehouse, row.model_name, row.base_model, row.status) == (
        "sql", "GW_ANALYST", "COMPUTE_WH", gateway.model, "tiny-llama", "SUCCESS")
    assert row.user.username == "gw_ana"
    assert (row.input_tokens, row.output_tokens) == (response["usage"]["prompt_tokens"],
                                                     response["usage"]["completion_tokens"])
    assert 0 < row.output_tokens <= 12
    # The input tokens are the prompt rendered with the adapter's own chat template.
    adapter = FineTunedModel.objects.get(schema__database__name="GW", name="GATEWAY_REPLIES").adapter_dir
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    assert row.input_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_complete_over_rows_records_one_call_per_prompt_when_the_statement_ends(gateway, tmp_path):
    make_table(tmp_path, "GW", "USAGE_TICKETS", [{"id": i, "prompt": f"Usage ticket {i}: where is it?"}
                                                 for i in range(3)])
    session = admin_session(database="GW", schema="PUBLIC")
    before = set(CompletionUsage.objects.values_list("pk", flat=True))

    result = run(session, "SELECT id, SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', prompt) FROM usage_tickets ORDER BY id")

    assert len(result.rows) == 3
    rows = CompletionUsage.objects.exclude(pk__in=before)
    assert rows.count() == 3
    assert {(r.entry_point, r.user_name, r.model_name, r.status) for r in rows} == {("sql", "admin", "tiny-llama",
                                                                                     "SUCCESS")}
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in rows)


def test_each_http_request_is_a_row_of_the_rest_api_usage_history(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.tokens["gw_ana"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=gateway.model, max_tokens=10, messages=[{"role": "user", "content": "Ticket 40: Hello?"}])
    answer = raw.parse()
    request_id = raw.headers["x-request-id"]

    result = run(admin_session(), f"SELECT REQUEST_ID, MODEL_NAME, TOKENS, TOKENS_GRANULAR, USER_ID, USER_NAME, "
                                  f"ROLE_NAME, BASE_MODEL, API, STATUS, INFERENCE_REGION, END_TIME >= START_TIME "
                                  f"FROM {REST_VIEW} WHERE REQUEST_ID = {sql_literal(request_id)}")

    usage = answer.usage
    ana = CompletionUsage.objects.get(request_id=request_id).user
    assert result.rows == [(request_id, gateway.model, usage.total_tokens,
                            {"input": usage.prompt_tokens, "output": usage.completion_tokens}, str(ana.pk), "gw_ana",
                            "GW_ANALYST", "tiny-llama", "OPENAI", "SUCCESS", "LOCAL", True)]
    assert result.types[3] == "VARIANT"


def test_the_rest_api_usage_history_sums_tokens_per_user(gateway):
    name, token = gateway.new_user()
    spent = {}
    for user, key in (("gw_ana", gateway.tokens["gw_ana"]), (name, token), (name, token)):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        usage = client.chat.completions.create(model="tiny-llama", max_tokens=6,
                                               messages=[{"role": "user", "content": f"Hello from {user}"}]).usage
        i, o = spent.get(user, (0, 0))
        spent[user] = (i + usage.prompt_tokens, o + usage.completion_tokens)

    result = run(admin_session(), f"SELECT USER_NAME, SUM(INPUT_TOKENS), SUM(OUTPUT_TOKENS), COUNT(*) FROM {REST_VIEW} "
                                  "GROUP BY USER_NAME ORDER BY USER_NAME")

    totals = {user: (i, o, n) for user, i, o, n in result.rows}
    assert totals[name] == (*spent[name], 2)  # a new user: only the two requests above
    expected = {}
    for row in CompletionUsage.objects.filter(entry_point__in=("openai", "cortex_rest")).exclude(status="RUNNING"):
        i, o, n = expected.get(row.user_name, (0, 0, 0))
        expected[row.user_name] = (i + row.input_tokens, o + row.output_tokens, n + 1)
    assert totals == expected


@pytest.mark.parametrize("view", [REST_VIEW, FUNCTIONS_VIEW])
def test_only_security_administrators_read_the_usage_histories(gateway, view):
    with pytest.raises(UserError, match=f"Insufficient privileges to operate on view '{view}'"):
        run(gateway.session("gw_ana"), f"SELECT COUNT(*) FROM {view}")
    security_admin = admin_session()
    security_admin.role = "SECURITYADMIN"
    assert run(security_admin, f"SELECT COUNT(*) FROM {view}").rows[0][0] >= 0  # read, not refused


def test_the_functions_usage_history_totals_sql_complete_by_hour_and_model(gateway):
    gateway.complete("gw_ana", gateway.model, "Ticket 50: Thanks!", max_tokens=5)

    result = run(admin_session(), f"SELECT FUNCTION_NAME, MODEL_NAME, WAREHOUSE_ID, SUM(TOKENS), "
                                  f"MAX(DATEDIFF('minute', START_TIME, END_TIME)), COUNT(TOKEN_CREDITS) "
                                  f"FROM {FUNCTIONS_VIEW} GROUP BY ALL ORDER BY MODEL_NAME")

    from warehouses.models import Warehouse

    calls = CompletionUsage.objects.filter(entry_point="sql", status="SUCCESS", warehouse="COMPUTE_WH")
    by_model = {}
    for row in calls:
        by_model[row.model_name] = by_model.get(row.model_name, 0) + row.total_tokens
    warehouse_id = Warehouse.objects.get(name="COMPUTE_WH").pk
    assert [r for r in result.rows if r[2] == warehouse_id] == [
        ("COMPLETE", model, warehouse_id, tokens, 60, 0) for model, tokens in sorted(by_model.items())]
    assert gateway.model in by_model


def test_a_call_the_inference_server_fails_is_recorded_failed(gateway):
    from inference.models import InferenceServer
    from supervision.processes import free_port

    server = InferenceServer.objects.get(base_model="tiny-llama")
    url = server.url
    InferenceServer.objects.filter(pk=server.pk).update(url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UserError, match="is not reachable"):
            sql_value(gateway.session("gw_ana"), "SELECT SNOWFLAKE.CORTEX.COMPLETE('tiny-llama', 'Hello?')")
    finally:
        InferenceServer.objects.filter(pk=server.pk).update(url=url)
    row = CompletionUsage.objects.filter(user_name="gw_ana").latest("pk")
    assert (row.status, row.input_tokens, row.output_tokens) == ("FAILED", 0, 0)
    assert "is not reachable" in row.message


def test_the_console_lists_usage_read_only_for_accountadmin(gateway, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="admin"))
    page = client.get("/admin/inference/completionusage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "gw_ana" in html and gateway.model in html
    assert "/admin/inference/completionusage/add/" not in html
    client.force_login(get_user_model().objects.get(username="gw_ana"))
    assert client.get("/admin/inference/completionusage/").status_code in (302, 403)


def test_a_stream_the_client_abandons_is_recorded_cancelled_with_the_tokens_sent(gateway):
    import time

    import httpx2

    with httpx2.stream("POST", gateway.url + "/v1/chat/completions", timeout=60,
                       headers={"Authorization": f"Bearer {gateway.tokens['gw_ana']}"},
                       json={"model": "tiny-llama", "max_tokens": 500, "stream": True,
                             "messages": [{"role": "user", "content": "Tell me a very long story."}]}) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the first chunk, then the client goes away
    deadline = time.monotonic() + 60
    while (row := CompletionUsage.objects.get(request_id=request_id)).status == "RUNNING":
        assert time.monotonic() < deadline, "the abandoned stream is still generating"
        time.sleep(0.2)
    assert row.status == "CANCELLED"
    assert row.output_tokens < 500
