"""The playground in a real browser: the fine-tuned model's answer appears piece by piece as it is
generated, equals COMPLETE's answer to the same messages and options, and with "Compare with base
model" the base model answers the same conversation beside it, both columns streaming at once. The
model is the one the gateway tests train on the stack (inference/tests/gateway_support.py)."""
from __future__ import annotations

import pytest

from inference.tests.gateway_support import gateway, web  # noqa: F401 (fixtures)
from studio.tests.browser.support import requires_chromium, screenshot
from studio.tests.playground_support import sql_complete

pytestmark = requires_chromium

SYSTEM = "You answer ACME support tickets."
QUESTION = "Ticket 9: My parcel is late."
MAX_TOKENS = 16

# Every text node added to an answer, with the answer's text up to and including it: the answer as the
# user saw it after each update, even when the browser delivered several updates at once.
RECORD_UPDATES = """
window.__updates = [];
new MutationObserver((records) => {
  for (const record of records) {
    const answer = record.target.closest && record.target.closest('.pg-assistant .pg-text');
    if (!answer) continue;
    for (const node of record.addedNodes) {
      const nodes = Array.from(answer.childNodes);
      const upTo = nodes.slice(0, nodes.indexOf(node) + 1).map((n) => n.textContent).join('');
      window.__updates.push({column: answer.closest('.pg-column').dataset.column, text: upTo, at: performance.now()});
    }
  }
}).observe(document.querySelector('.pg-columns'), {childList: true, subtree: true});
"""


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def answer(page, column: str):
    return page.locator(f".pg-column[data-column='{column}'] .pg-assistant").last


def test_a_streamed_answer_from_the_fine_tuned_model_then_compared_with_its_base_model(login, gateway):
    session = gateway.session("gw_ana")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    expected = sql_complete(session, gateway.model, messages, max_tokens=MAX_TOKENS)
    text, usage = expected["choices"][0]["messages"], expected["usage"]

    page = login("gw_ana", "a long password")
    page.click("nav.sidenav >> text=Playground")
    expect(page.locator("nav.sidenav a.active")).to_have_text("Playground")
    page.goto(f"/playground/?model={gateway.model}")  # as the Models page's "Open in playground" links it
    assert page.locator("#pg-model").input_value() == gateway.model
    expect(page.locator(".pg-column[data-column='base']")).to_be_hidden()

    page.fill("#pg-system", SYSTEM)
    page.fill("#pg-temperature", "0")
    page.fill("#pg-max-tokens", str(MAX_TOKENS))
    page.fill("#pg-message", QUESTION)
    page.evaluate(RECORD_UPDATES)
    page.keyboard.press("Enter")  # in the message box: sends

    done = answer(page, "main").locator(".pg-tokens")
    expect(done).to_have_text(f"{usage['prompt_tokens']} prompt · {usage['completion_tokens']} completion tokens",
                              timeout=30_000)
    assert answer(page, "main").locator(".pg-text").text_content() == text
    updates = [u["text"] for u in page.evaluate("window.__updates") if u["column"] == "main"]
    partial = [u for u in updates if u != text]
    assert len(partial) >= 2, f"the answer did not grow piece by piece: {updates}"
    assert all(text.startswith(u) for u in updates) and updates[-1] == text
    total = page.locator(".pg-column[data-column='main'] .pg-total-tokens")
    expect(total).to_have_text(str(usage["total_tokens"]))
    expect(page.locator("#pg-message")).to_have_value("")

    # Compare: the same conversation goes to the base model too, in a second column.
    page.check("#pg-compare")
    expect(page.locator(".pg-column[data-column='base']")).to_be_visible()
    page.fill("#pg-message", "Ticket 10: Where is my refund?")
    page.evaluate("window.__updates = []")
    page.click("#pg-send")
    for column in ("main", "base"):
        expect(answer(page, column).locator(".pg-tokens")).to_contain_text("completion tokens", timeout=30_000)
    # The base column joined the conversation so far: the first question, and the fine-tuned model's answer.
    base_turns = page.locator(".pg-column[data-column='base'] .pg-turn")
    expect(base_turns).to_have_count(4)
    expect(base_turns.nth(1).locator(".pg-tokens")).to_have_text(f"answer of {gateway.model}")
    tuned = answer(page, "main").locator(".pg-text").text_content()
    base = answer(page, "base").locator(".pg-text").text_content()
    assert tuned and base and tuned != base
    updates = page.evaluate("window.__updates")
    assert {u["column"] for u in updates} == {"main", "base"}
    # At once: the base column got text before the fine-tuned column's last piece.
    first_base = min(u["at"] for u in updates if u["column"] == "base")
    last_main = max(u["at"] for u in updates if u["column"] == "main")
    assert first_base <= last_main
    screenshot(page, "playground")

    # The conversation is kept in the session: a reload shows both columns as they were.
    page.reload()
    expect(page.locator(".pg-column[data-column='base']")).to_be_visible()
    assert page.locator(".pg-column[data-column='main'] .pg-user").count() == 2
    assert answer(page, "main").locator(".pg-text").text_content() == tuned
    assert answer(page, "base").locator(".pg-text").text_content() == base
    expect(page.locator(".pg-column[data-column='base'] .pg-turn")).to_have_count(4)
    expect(page.locator(".pg-column[data-column='base'] .pg-tokens").first).to_have_text(f"answer of {gateway.model}")
    assert page.locator(".pg-column[data-column='main'] .pg-assistant .pg-text").first.text_content() == text

    # New chat clears it.
    page.click("#pg-new-chat")
    expect(page.locator(".pg-column[data-column='main'] .pg-empty")).to_be_visible()
    expect(page.locator(".pg-turn")).to_have_count(0)
