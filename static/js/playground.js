// The playground's chat: posts the form to the stream URL and shows each column's answer as its pieces
// arrive (server-sent events read from a fetch, since EventSource cannot POST). Without fetch streams
// the form posts normally and the page waits for the whole answer.
(function () {
  "use strict";
  const form = document.getElementById("pg-form");
  if (!form || !window.fetch || !window.ReadableStream || !window.TextDecoder) return;
  const message = document.getElementById("pg-message");
  const send = document.getElementById("pg-send");
  const stop = document.getElementById("pg-stop");
  const compare = document.getElementById("pg-compare");
  let controller = null;
  let live = {};  // column -> the answer being streamed into it

  const column = (key) => form.querySelector(`.pg-column[data-column="${key}"]`);

  function addTurn(key, role, text) {
    const list = column(key).querySelector(".pg-turns");
    list.querySelector(".pg-empty")?.remove();
    const turn = document.createElement("li");
    turn.className = `pg-turn pg-${role}`;
    const who = document.createElement("span");
    who.className = "pg-who";
    who.textContent = { user: "You", error: "Error", assistant: "Model" }[role];
    const body = document.createElement("div");
    body.className = "pg-text";
    if (role === "error") body.setAttribute("role", "alert");
    body.textContent = text;
    turn.append(who, body);
    list.append(turn);
    list.scrollTop = list.scrollHeight;
    return turn;
  }

  function footnote(turn, text) {
    const note = document.createElement("p");
    note.className = "pg-tokens";
    note.textContent = text;
    turn.append(note);
    turn.classList.remove("pg-streaming");
  }

  // The base column joins the conversation so far (the server does the same with the history).
  function joinConversation() {
    const base = column("base").querySelector(".pg-turns");
    if (base.querySelector(".pg-turn")) return;
    base.querySelector(".pg-empty")?.remove();
    for (const turn of column("main").querySelectorAll(".pg-turn:not(.pg-error)")) {
      const copy = turn.cloneNode(true);
      const note = copy.querySelector(".pg-tokens");
      if (note) note.textContent = `answer of ${column("main").dataset.model}`;
      base.append(copy);
    }
  }

  function showErrors(errors) {
    form.querySelectorAll(".pg-field-error").forEach((p) => { p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    for (const [field, messages] of Object.entries(errors)) {
      const slot = form.querySelector(`.pg-field-error[data-field="${field}"]`);
      if (slot) slot.textContent = messages.join(" ");
      form.elements[field]?.setAttribute?.("aria-invalid", "true");
    }
    const first = Object.keys(errors).map((f) => form.elements[f]).find((el) => el && el.focus);
    first?.focus();
  }

  function handle(event) {
    const key = event.column;
    if (event.type === "start") {
      live[key] = addTurn(key, "assistant", "");
      live[key].classList.add("pg-streaming");
    } else if (event.type === "piece") {
      // One text node per piece: the answer grows as the model generates it.
      live[key].querySelector(".pg-text").append(document.createTextNode(event.text));
      const list = live[key].parentElement;
      list.scrollTop = list.scrollHeight;
    } else if (event.type === "done") {
      footnote(live[key], `${event.prompt_tokens} prompt · ${event.completion_tokens} completion tokens`);
      column(key).querySelector(".pg-total-tokens").textContent = event.total_tokens;
      delete live[key];
    } else if (event.type === "error") {
      if (live[key]) { live[key].remove(); delete live[key]; }
      addTurn(key, "error", event.message);
    }
  }

  async function submit(e) {
    e.preventDefault();
    if (controller) return;
    const data = new FormData(form);
    controller = new AbortController();
    send.disabled = true;
    try {
      const response = await fetch(form.dataset.streamUrl, { method: "POST", body: data, signal: controller.signal,
                                                              headers: { Accept: "text/event-stream" } });
      if (response.status === 400) { showErrors((await response.json()).errors); return; }
      if (!response.ok) throw new Error(`The server answered ${response.status} ${response.statusText}.`);
      showErrors({});
      const text = data.get("message");
      if (compare?.checked) joinConversation();
      addTurn("main", "user", text);
      if (compare?.checked) addTurn("base", "user", text);
      message.value = "";
      stop.hidden = false;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) handle(JSON.parse(line.slice(6)));
          }
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") addTurn("main", "error", `The answer failed: ${error.message}`);
    } finally {
      for (const turn of Object.values(live)) footnote(turn, "stopped");
      live = {};
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      message.focus();
    }
  }

  form.addEventListener("submit", submit);
  stop.addEventListener("click", () => controller?.abort());
  message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  compare?.addEventListener("change", () => { column("base").hidden = !compare.checked; });
})();
