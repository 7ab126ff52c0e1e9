"""Where CREATE's refusals belong: the wizard step that changes the argument a refusal names."""
from __future__ import annotations

from errors import UserError

# The argument a refusal names (finetune.create's fields) -> the step that changes it, and the label the
# refusal is shown under there.
FIELD_STEPS = {
    "base_model": ("model", "Base model"),
    "role": ("role", "Role"),
    "warehouse": ("role", "Warehouse"),
    "schema": ("database", "Database"),
    "name": ("name", "Model name"),
    "training_data": ("training", "Training data"),
    "prompt": ("prompt", "Prompt column"),
    "completion": ("completion", "Completion column"),
    "validation_data": ("validation", "Validation data"),
}
# A refusal naming nothing the wizard has a step for stays where Start was pressed.
UNPLACED = ("review", "Fine-tuning job")


def error_step(error: UserError) -> tuple[str, str]:
    return FIELD_STEPS.get(error.field, UNPLACED)
