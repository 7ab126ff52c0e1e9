"""The playground: chat with a model the current role may use, through COMPLETE's service layer
(inference/complete.py), optionally beside the fine-tuned model's base model.

The page posts its form to `playground_stream`, which answers with server-sent events read by
static/js/playground.js: the text pieces of each column as the inference server generates them, then
each answer's token counts. Without JavaScript the same form posts to `playground`, which waits for
the whole answers. The conversation is kept per model in the Django session (studio/chats.py).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django import forms
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from access import privileges
from access.session import Session
from access.web import session_for
from catalog.models import BaseModel
from errors import UserError
from inference import complete
from inference.client import ServedModel
from inference.complete import CompletionStream
from inference.models import CompletionUsage
from studio.chats import Chat
from web.streaming import streaming_response

log = logging.getLogger(__name__)
ENTRY_POINT = CompletionUsage.EntryPoint.PLAYGROUND
TEMPERATURE_ERROR = "Temperature must be a number from 0 to 2."


class ChatForm(forms.Form):
    model = forms.CharField(max_length=767, error_messages={"required": "Model: choose a model to chat with."})
    message = forms.CharField(widget=forms.Textarea, max_length=100_000,
                              error_messages={"required": "Message: type a message to send."})
    system = forms.CharField(widget=forms.Textarea, required=False, strip=False, max_length=100_000)
    temperature = forms.FloatField(min_value=0, max_value=2, error_messages={
        code: TEMPERATURE_ERROR for code in ("required", "invalid", "min_value", "max_value")})
    max_tokens = forms.IntegerField()
    compare = forms.BooleanField(required=False)

    def __init__(self, *args, limit: int | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        message = self.max_tokens_error()
        self.fields["max_tokens"].error_messages.update(required=message, invalid=message)

    def max_tokens_error(self) -> str:
        upper = f"to {self.limit}" if self.limit else "or more"
        return f"Max tokens must be a whole number from 1 {upper}."

    def clean_max_tokens(self) -> int:
        value = self.cleaned_data["max_tokens"]
        if value < 1 or (self.limit and value > self.limit):
            raise forms.ValidationError(self.max_tokens_error())
        return value


@dataclass
class Picker:
    """The models the role may use (COMPLETE's own rule), and the one chosen."""

    models: list[ServedModel]
    chosen: ServedModel | None

    @property
    def base_models(self) -> list[ServedModel]:
        return [m for m in self.models if m.adapter_id is None]

    @property
    def fine_tuned(self) -> list[ServedModel]:
        return [m for m in self.models if m.adapter_id is not None]

    @property
    def compare_with(self) -> str | None:
        """The base model a fine-tuned choice can be compared with."""
        return self.chosen.base_model if self.chosen and self.chosen.adapter_id else None

    @property
    def max_tokens_limit(self) -> int | None:
        if self.chosen is None:
            return None
        return BaseModel.objects.filter(name=self.chosen.base_model).values_list(
            "max_completion_tokens", flat=True).first()


def _page_url(model: str) -> str:
    return f"{reverse('playground')}?{urlencode({'model': model})}"


def _find(models: list[ServedModel], name: str | None) -> ServedModel | None:
    """The model of that name; case-insensitively only when none has it exactly, since two quoted names
    may differ only in case (DB.S."Aa" and DB.S."aA")."""
    wanted = (name or "").strip()
    if not wanted:
        return None
    exact = next((m for m in models if m.display_name == wanted), None)
    return exact or next((m for m in models if m.display_name.lower() == wanted.lower()), None)


def _page(request, session: Session, name: str | None = None, *, form: ChatForm | None = None, status: int = 200):
    models = complete.usable_models(session)
    linked = request.GET.get("model", "").strip()
    picker = Picker(models, _find(models, name or linked or Chat.last_model(request.session)))
    problem = None
    if not privileges.holds_cortex_user(session):
        try:
            privileges.require_cortex_user(session, "COMPLETE")
        except UserError as exc:
            problem = exc.message
    elif linked and picker.chosen is None:
        # A link to a model the role may not use: the service says why (and records the refusal).
        try:
            picker.chosen = complete.authorize(session, linked)
        except UserError as exc:
            problem = exc.message
    if picker.chosen is None and problem is None and models:
        picker.chosen = models[0]  # nothing chosen yet, or the remembered model is no longer usable
    chat = Chat.load(request.session, picker.chosen.display_name) if picker.chosen else None
    limit = picker.max_tokens_limit
    if form is None and chat is not None:
        form = ChatForm(initial={"model": chat.model, "system": chat.system, "temperature": chat.temperature,
                                 "max_tokens": min(chat.max_tokens, limit or chat.max_tokens),
                                 "compare": chat.compare}, limit=limit)
    columns = []
    if chat is not None:
        columns.append({"key": "main", "model": chat.model, "turns": chat.columns["main"],
                        "total": chat.total_tokens("main")})
        if picker.compare_with:
            columns.append({"key": "base", "model": picker.compare_with, "turns": chat.columns["base"],
                            "total": chat.total_tokens("base"), "hidden": not _compare_checked(form)})
    return render(request, "studio/playground/page.html", {
        "picker": picker, "chat": chat, "form": form, "columns": columns, "problem": problem, "limit": limit,
    }, status=status)


def _compare_checked(form: ChatForm | None) -> bool:
    if form is None:
        return False
    if form.is_bound:
        return form.data.get("compare") in ("on", "true", "1")
    return bool(form.initial.get("compare"))


def _targets(form: ChatForm, picker: Picker) -> list[tuple[str, str]]:
    """(column, model) pairs to ask: the chosen model, and its base model when comparing."""
    model = form.cleaned_data["model"]
    columns = [("main", picker.chosen.display_name if picker.chosen else model)]
    if form.cleaned_data["compare"] and picker.compare_with:
        columns.append(("base", picker.compare_with))
    return columns


def _bound(request, session: Session) -> tuple[ChatForm, Picker]:
    models = complete.usable_models(session)
    picker = Picker(models, _find(models, request.POST.get("model")))
    return ChatForm(request.POST, limit=picker.max_tokens_limit), picker


def _start(request, form: ChatForm, picker: Picker) -> tuple[Chat, list[tuple[str, str]]]:
    """The chat with the form's settings and the user's message added to each column asked."""
    data = form.cleaned_data
    targets = _targets(form, picker)
    chat = Chat.load(request.session, targets[0][1])
    chat.system, chat.temperature, chat.max_tokens = data["system"], data["temperature"], data["max_tokens"]
    chat.compare = len(targets) > 1
    chat.ask(data["message"], [column for column, _ in targets])
    return chat, targets


def _options(chat: Chat) -> dict:
    return {"temperature": chat.temperature, "max_tokens": chat.max_tokens}


@login_required
@require_http_methods(["GET", "POST"])
def playground(request):
    """The page; a POST (the form without JavaScript) waits for the whole answers, then shows the page."""
    session = _session(request)
    if request.method == "GET":
        return _page(request, session)
    form, picker = _bound(request, session)
    if not form.is_valid():
        return _page(request, session, request.POST.get("model"), form=form, status=400)
    chat, targets = _start(request, form, picker)
    for column, model in targets:
        try:
            answer = complete.chat_completion(session, model, chat.messages(column), _options(chat),
                                              entry_point=ENTRY_POINT, request_id=_request_id())
        except UserError as exc:
            chat.fail(column, exc.message)
        else:
            chat.answer(column, answer.text, answer.prompt_tokens, answer.completion_tokens)
    chat.save(request.session)
    return redirect(_page_url(chat.model))


@login_required
@require_POST
def playground_stream(request):
    """The answers as server-sent events: `start`, `piece`s, then `done` (token counts) or `error` per
    column, all columns at once, and `end`. Invalid input: 400 with {"errors": {field: [message]}}."""
    session = _session(request)
    form, picker = _bound(request, session)
    if not form.is_valid():
        return JsonResponse({"errors": {name: list(errors) for name, errors in form.errors.items()}}, status=400)
    chat, targets = _start(request, form, picker)
    streams: dict[str, CompletionStream] = {}
    refused: dict[str, str] = {}
    for column, model in targets:
        try:
            streams[column] = complete.stream_completion(session, model, chat.messages(column), _options(chat),
                                                         entry_point=ENTRY_POINT, request_id=_request_id())
        except UserError as exc:  # a refusal, bad options, an undeployed model, no server: before any text
            refused[column] = exc.message
            chat.fail(column, exc.message)
    chat.save(request.session)  # the question (and any refusal) is kept even if the answers never come
    return streaming_response(request, _events(request, chat, dict(targets), streams, refused),
                              content_type="text/event-stream")


@login_required
@require_POST
def playground_clear(request):
    """New chat: forget this model's conversation in this browser session."""
    model = request.POST.get("model", "")
    Chat.forget(request.session, model)
    return redirect(_page_url(model) if model else reverse("playground"))


def _session(request) -> Session:
    session = session_for(request)
    session.entry_point = "playground"
    return session


def _request_id() -> str:
    return f"playground-{uuid.uuid4().hex}"


def _event(kind: str, **data) -> str:
    return f"data: {json.dumps({'type': kind, **data})}\n\n"


def _events(request, chat: Chat, models: dict[str, str], streams: dict[str, CompletionStream],
            refused: dict[str, str]) -> Iterator[str]:
    """Read every column's stream on its own thread and pass the pieces on as they come. Whatever
    happens (the user pressing Stop closes this generator), the answers so far end up in the chat."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    texts = {column: [] for column in streams}
    pending = set(streams)
    try:
        for column, message in refused.items():
            yield _event("error", column=column, model=models[column], message=message)
        for column, stream in streams.items():
            yield _event("start", column=column, model=models[column])
            threading.Thread(target=_pump, args=(column, stream, events, stop), daemon=True,
                             name=f"playground-{column}").start()
        while pending:
            kind, column, value = events.get()
            if kind == "piece":
                texts[column].append(value)
                yield _event("piece", column=column, text=value)
            elif kind == "done":
                pending.discard(column)
                chat.answer(column, "".join(texts[column]), value.prompt_tokens, value.completion_tokens)
                yield _event("done", column=column, prompt_tokens=value.prompt_tokens,
                             completion_tokens=value.completion_tokens, finish_reason=value.finish_reason,
                             total_tokens=chat.total_tokens(column))
            else:
                pending.discard(column)
                chat.fail(column, value)
                yield _event("error", column=column, model=models[column], message=value)
        yield _event("end")
    finally:
        stop.set()
        for column in pending:  # stopped by the user: keep what had arrived
            chat.answer(column, "".join(texts[column]), 0, 0, stopped=True)
        _store(request, chat)


def _pump(column: str, stream: CompletionStream, events: queue.Queue, stop: threading.Event) -> None:
    """One column's stream, read on its own thread (so a slow model never holds up the other)."""
    try:
        for piece in stream.pieces:
            if stop.is_set():
                return
            events.put(("piece", column, piece))
        events.put(("done", column, stream))
    except UserError as exc:
        events.put(("error", column, exc.message))
    except Exception as exc:
        log.exception("playground stream for %s failed", stream.target.display_name)
        events.put(("error", column, f"The answer failed: {type(exc).__name__}: {exc}"))
    finally:
        stream.close()  # stopped early: the usage row says CANCELLED, with the tokens so far
        connections.close_all()  # this thread's own connection (the usage row was saved on it)


def _store(request, chat: Chat) -> None:
    """Save the chat once the response has been sent. The session middleware saved the session
    before streaming began, so the session is read again and only this chat is written into it."""
    fresh = request.session.__class__(request.session.session_key)
    chat.save(fresh)
    fresh.save()
