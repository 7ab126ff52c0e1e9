"""SNOWFLAKE.CORTEX.FINETUNE and COMPLETE with their arguments already evaluated to Python values."""
from __future__ import annotations

from typing import Any

from access.session import Session
from errors import compilation_error
from inference import complete as complete_service
from jobs import finetune

FUNCTIONS = ("FINETUNE", "COMPLETE")


def call(session: Session, name: str, values: list[Any]) -> Any:
    if name == "FINETUNE":
        return finetune_call(session, values)
    if name == "COMPLETE":
        if len(values) not in (2, 3):
            raise compilation_error("COMPLETE takes (model, prompt) or (model, messages, options).")
        return complete_service.complete(session, *values)
    raise compilation_error(f"Unknown function SNOWFLAKE.CORTEX.{name}.")


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
