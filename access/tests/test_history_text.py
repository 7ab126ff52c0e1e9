"""A name carrying a NUL character is refused like any invalid name, on PostgreSQL too (whose text columns
and lookups refuse NUL outright: it was a server error there), and the access history records the
refusal with the NUL escaped."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from access.models import AccessEvent


@pytest.mark.parametrize("model, invalid", [("pub.s.m\u0000", "'m\\x00' is not a valid unquoted name"),
                                            ('pub.s."m\u0000"', "a name cannot contain the NUL character")])
def test_a_model_named_with_a_nul_is_refused_and_recorded_with_the_nul_escaped(low_account, model, invalid):
    client = Client(raise_request_exception=False)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {low_account.token}")

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "model_not_found"
    event = AccessEvent.objects.filter(action="COMPLETE").latest("pk")
    assert (event.user_name, event.outcome, event.object_name) == ("low", "FAILED", model.replace("\x00", "\\x00"))
    assert invalid in event.message and "\x00" not in event.message
