"""The playground's conversations, kept in the browser's Django session: one per model, with the
settings last used for it and up to two columns of turns, "main" (the chosen model) and "base" (its
base model, when compared side by side). What COMPLETE is sent is built here from the turns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SESSION_KEY = "playground"
MAX_TURNS = 200  # per column: older turns are dropped so the session stays small
COLUMNS = ("main", "base")


@dataclass
class Chat:
    model: str
    system: str = ""
    temperature: float = 0.0
    max_tokens: int = 256
    compare: bool = False
    columns: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    # Reading and writing the session ----------------------------------------------------------------

    @classmethod
    def load(cls, session, model: str) -> Chat:
        stored = session.get(SESSION_KEY, {}).get("chats", {}).get(model)
        if not stored:
            return cls(model)
        chat = cls(**{**stored, "model": model})
        chat.columns = {c: list(chat.columns.get(c, [])) for c in COLUMNS}
        return chat

    def save(self, session) -> None:
        state = session.get(SESSION_KEY) or {}
        chats = dict(state.get("chats", {}))
        chats[self.model] = {k: v for k, v in asdict(self).items() if k != "model"}
        session[SESSION_KEY] = {**state, "chats": chats, "model": self.model}

    @staticmethod
    def last_model(session) -> str | None:
        return (session.get(SESSION_KEY) or {}).get("model")

    @staticmethod
    def forget(session, model: str) -> None:
        state = session.get(SESSION_KEY) or {}
        chats = {name: chat for name, chat in state.get("chats", {}).items() if name != model}
        session[SESSION_KEY] = {**state, "chats": chats}

    # The conversation -------------------------------------------------------------------------------

    def ask(self, text: str, columns: list[str]) -> None:
        """Add the user's message to each column. A base column joining an ongoing conversation starts
        from the main column's turns, so both models answer the same conversation."""
        if "base" in columns and not self.columns["base"]:
            # The main column's answers, marked as its model's: they cost the base column nothing.
            self.columns["base"] = [{"role": t["role"], "content": t["content"]} | (
                {"answered_by": self.model} if t["role"] == "assistant" else {})
                for t in self.columns["main"] if t["role"] != "error"]
        for column in columns:
            self._add(column, {"role": "user", "content": text})

    def answer(self, column: str, text: str, prompt_tokens: int, completion_tokens: int, *,
               stopped: bool = False) -> None:
        self._add(column, {"role": "assistant", "content": text, "prompt_tokens": prompt_tokens,
                           "completion_tokens": completion_tokens, "stopped": stopped})

    def fail(self, column: str, message: str) -> None:
        """An error in place of an answer: shown in the chat, never sent back to the model."""
        self._add(column, {"role": "error", "content": message})

    def messages(self, column: str) -> list[dict[str, str]]:
        """The messages COMPLETE is sent for this column: the system prompt, then its user and
        assistant turns (errors left out)."""
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return system + [{"role": t["role"], "content": t["content"]} for t in self.columns[column]
                         if t["role"] in ("user", "assistant")]

    def total_tokens(self, column: str) -> int:
        """Prompt plus completion tokens of every answer in the column: what the conversation has cost."""
        return sum(t.get("prompt_tokens", 0) + t.get("completion_tokens", 0) for t in self.columns[column])

    def _add(self, column: str, turn: dict[str, Any]) -> None:
        self.columns[column] = (self.columns[column] + [turn])[-MAX_TURNS:]
