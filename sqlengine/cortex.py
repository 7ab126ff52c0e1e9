"""SNOWFLAKE.CORTEX.FINETUNE, COMPLETE and AI_COMPLETE with their arguments already evaluated to Python
values, and the Snowflake type each call returns."""
from __future__ import annotations

from typing import Any

from sqlglot import exp

from access.session import Session
from errors import compilation_error, invalid_argument
from inference import complete as complete_service
from jobs import finetune
from sandbox.expressions import constant, is_constant

FUNCTIONS = ("FINETUNE", "COMPLETE", "AI_COMPLETE")

# Snowflake's clients read a cell by its column's type: TEXT as the string itself, OBJECT / ARRAY /
# VARIANT as JSON text. snowflake-ml takes FINETUNE CREATE's cell as the job id and json.loads()
# DESCRIBE's and SHOW's, so an id typed VARIANT would reach it as '"ft_…"'.
FINETUNE_TYPES = {"CREATE": "TEXT", "CANCEL": "TEXT", "DESCRIBE": "OBJECT", "SHOW": "ARRAY"}
AI_COMPLETE_PARAMETERS = ("max_tokens", "temperature", "top_p", "guardrails")
AI_COMPLETE_SIGNATURE = "AI_COMPLETE(model, prompt [, model_parameters [, response_format]])"


def call(session: Session, name: str, values: list[Any]) -> Any:
    if name == "FINETUNE":
        return finetune_call(session, values)
    if name == "COMPLETE":
        if len(values) not in (2, 3):
            raise compilation_error("COMPLETE takes (model, prompt) or (model, messages, options).")
        return complete_service.complete(session, *values)
    if name == "AI_COMPLETE":
        check_ai_complete_arity(len(values))
        return ai_complete(session, *values)
    raise compilation_error(f"Unknown function SNOWFLAKE.CORTEX.{name}.")


def result_type(name: str, args: list[exp.Expression]) -> str:
    """The type of a call's result column. FINETUNE's depends on its action, known only when the action
    is a constant; one read from a column could be any of them, so it is a VARIANT."""
    if name == "FINETUNE":
        action = constant(args[0]) if args and is_constant(args[0]) else None
        return FINETUNE_TYPES.get(action.upper(), "VARIANT") if isinstance(action, str) else "VARIANT"
    if name == "COMPLETE" and len(args) == 3:
        return "OBJECT"
    return "TEXT"


def finetune_call(session: Session, values: list[Any]) -> Any:
    if not values or not isinstance(values[0], str):
        raise compilation_error("FINETUNE's first argument must be 'CREATE', 'SHOW', 'DESCRIBE' or 'CANCEL'.")
    action, rest = values[0].upper(), values[1:]
    if action == "CREATE":
        if not 3 <= len(rest) <= 5:
            raise compilation_error("FINETUNE('CREATE', name, base_model, training_query "
                                    "[, validation_query [, options]]) takes 3 to 5 arguments after 'CREATE'.")
        return finetune.create(session, *rest)
    if action == "SHOW":
        if rest:
            raise compilation_error("FINETUNE('SHOW') takes no further arguments.")
        return finetune.show(session)
    if action in ("DESCRIBE", "CANCEL"):
        if len(rest) != 1:
            raise compilation_error(f"FINETUNE('{action}', job_id) takes one job id.")
        return (finetune.describe if action == "DESCRIBE" else finetune.cancel)(session, rest[0])
    raise compilation_error(f"FINETUNE action '{values[0]}' is not one of CREATE, SHOW, DESCRIBE, CANCEL.")


# AI_COMPLETE --------------------------------------------------------------------------------------

def check_ai_complete_arity(count: int) -> None:
    if not 2 <= count <= 4:
        raise compilation_error(f"{AI_COMPLETE_SIGNATURE} takes 2 to 4 arguments, got {count}.")


def ai_complete(session: Session, model: Any, prompt: Any, model_parameters: Any = None,
                response_format: Any = None) -> str | None:
    """The completion string, as AI_COMPLETE returns it without show_details: COMPLETE's service
    (its privileges, limits and usage) with the model parameters as COMPLETE's options."""
    options = ai_complete_options(model_parameters, response_format)
    if model is None or prompt is None:
        return None
    if not isinstance(prompt, str):
        raise invalid_argument("AI_COMPLETE's prompt must be a string.", field="prompt")
    if not options:
        return complete_service.complete(session, model, prompt)
    return complete_service.complete(session, model, prompt, options)["choices"][0]["messages"]


def ai_complete_options(model_parameters: Any, response_format: Any = None) -> dict[str, Any]:
    """COMPLETE's options for AI_COMPLETE's model_parameters, or the error naming the argument the studio
    cannot honour: structured output (response_format) and Cortex Guard (guardrails: true) are not here."""
    if response_format is not None:
        raise invalid_argument("AI_COMPLETE's response_format argument (structured output) is not supported "
                               "here; call AI_COMPLETE without it.", field="response_format")
    if model_parameters is None:
        return {}
    if not isinstance(model_parameters, dict):
        raise invalid_argument("AI_COMPLETE's model_parameters argument must be an object such as "
                               "{'max_tokens': 100, 'temperature': 0.2}.", field="model_parameters")
    for key in model_parameters:
        if key not in AI_COMPLETE_PARAMETERS:
            raise invalid_argument(f"AI_COMPLETE's model_parameters has an unknown parameter '{key}'; use "
                                   f"{', '.join(AI_COMPLETE_PARAMETERS)}.", field="model_parameters")
    guardrails = model_parameters.get("guardrails", False)
    if not isinstance(guardrails, bool):
        raise invalid_argument("AI_COMPLETE's model_parameters: guardrails must be true or false.",
                               field="model_parameters")
    if guardrails:
        raise invalid_argument("AI_COMPLETE's model_parameters: guardrails (Cortex Guard) is not supported here; "
                               "pass guardrails: false or leave it out.", field="model_parameters")
    return {key: value for key, value in model_parameters.items() if key != "guardrails"}
