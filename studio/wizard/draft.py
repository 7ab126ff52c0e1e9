"""The wizard's draft: its steps in order, the choices made so far (kept in the user's Django session),
the FINETUNE arguments they make, and the session the wizard works in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from access.roles import may_use_role
from access.session import Session
from access.web import session_for
from catalog.identifiers import quote, split_parts
from models_registry.registry import name_if_finished_now

DRAFT_KEY = "finetune_wizard"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    fields: tuple[str, ...]  # draft keys this step sets; the step is done when all are set


STEPS = (
    Step("model", "Base model", ("base_model",)),
    Step("role", "Role and warehouse", ("role", "warehouse")),
    Step("database", "Database", ("database", "schema")),
    Step("name", "Model name", ("name",)),
    Step("training", "Training data", ("training",)),
    Step("prompt", "Prompt column", ("prompt",)),
    Step("completion", "Completion column", ("completion",)),
    Step("validation", "Validation data", ("validation",)),
    Step("review", "Review and start", ()),
)
STEP_KEYS = [s.key for s in STEPS]


class Draft:
    """The user's choices so far, in the Django session. A choice that changes clears the choices that
    depend on it (a new table has other columns)."""

    DEPENDENTS = {"role": ("database", "schema", "name", "training", "prompt", "completion", "validation"),
                  "database": ("name",), "schema": ("name",), "training": ("prompt", "completion")}

    def __init__(self, request) -> None:
        self.request = request
        self.data: dict[str, Any] = dict(request.session.get(DRAFT_KEY) or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def update(self, **values: Any) -> None:
        for key, value in values.items():
            if self.data.get(key) != value:
                for dependent in self.DEPENDENTS.get(key, ()):
                    if dependent not in values:
                        self.data.pop(dependent, None)
            self.data[key] = value
        self.save()

    def set_error(self, step: str, field: str, message: str) -> None:
        self.data["error"] = {"step": step, "field": field, "message": message}
        self.save()

    def pop_error(self, step: str) -> dict | None:
        error = self.data.get("error")
        if error and error["step"] == step:
            self.data.pop("error")
            self.save()
            return error
        return None

    def clear(self) -> None:
        self.data = {}
        self.save()

    def save(self) -> None:
        self.request.session[DRAFT_KEY] = self.data

    def done(self, step: Step) -> bool:
        return all(field in self.data for field in step.fields)

    def first_open_step(self) -> Step:
        return next((s for s in STEPS if not self.done(s)), STEPS[-1])

    def reachable(self, step: Step) -> bool:
        return all(self.done(s) for s in STEPS[:STEP_KEYS.index(step.key)])

    @property
    def table(self) -> str | None:
        return self.data.get("training")

    @property
    def validation_table(self) -> str | None:
        return self.data.get("validation") or None

    @property
    def model_location(self) -> str | None:
        if "database" not in self.data:
            return None
        return f"{quote(self.data['database'])}.{quote(self.data['schema'])}"

    def query(self, table: str | None = None, prompt: str | None = None, completion: str | None = None) -> str:
        """The SELECT … AS prompt, … AS completion that FINETUNE reads, as SQL users would write it."""
        return (f"SELECT {quote(prompt or self.data['prompt'])} AS prompt, "
                f"{quote(completion or self.data['completion'])} AS completion FROM {table or self.table}")

    def create_arguments(self) -> dict[str, Any]:
        return {"name": f"{self.model_location}.{self.data['name']}", "base_model": self.data["base_model"],
                "training_query": self.query(),
                "validation_query": self.query(self.validation_table) if self.validation_table else None}


def wizard_session(request, draft: Draft) -> Session:
    """The session the wizard works in: the role and warehouse chosen in it, else the header's. A role
    the user may no longer use falls back to the header's, as session_for does."""
    base = session_for(request)
    role = draft.get("role")
    if not role or not may_use_role(request.user, role):
        role = base.role
    return Session(request.user, role=role, warehouse=draft.get("warehouse") or base.warehouse, entry_point="web")


def final_name(draft: Draft, name: str | None = None) -> dict[str, Any]:
    """The model's name as stored, and the name it gets if that one is taken when the job finishes."""
    name = name if name is not None else draft.get("name")
    stored = split_parts(name)[0]
    final = name_if_finished_now(draft.get("database"), draft.get("schema"), stored)
    location = draft.model_location
    return {"stored": f"{location}.{quote(stored)}", "final": f"{location}.{quote(final)}",
            "suffixed": final != stored, "name": stored}
