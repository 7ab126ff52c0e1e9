"""The fine-tune wizard's step forms. Their choices come from the service layer (pickers.py lists
them for the wizard's role); the one rule checked here, the model name's, is catalog.identifiers'."""
from __future__ import annotations

from django import forms

from catalog.identifiers import split_parts
from errors import UserError

SKIP = "__skip__"


def _choices(values) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


class BaseModelForm(forms.Form):
    base_model = forms.ChoiceField(label="Base model", error_messages={"required": "Choose a base model."})

    def __init__(self, *args, models=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = _choices(m.name for m in models)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", error_messages={
        "required": "Choose the role the job runs as.",
        "invalid_choice": "Role %(value)s is not granted SNOWFLAKE.CORTEX_USER, or not to you: choose one listed."})
    warehouse = forms.ChoiceField(label="Warehouse",
                                  error_messages={"required": "Choose the warehouse the job runs on."})

    def __init__(self, *args, roles=(), warehouses=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _choices(roles)
        self.fields["warehouse"].choices = _choices(warehouses)


class DatabaseForm(forms.Form):
    location = forms.ChoiceField(label="Database and schema", error_messages={
        "required": "Choose where to store the model.",
        "invalid_choice": "The role may not create models in %(value)s: choose a schema listed."})

    def __init__(self, *args, locations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["location"].choices = _choices(locations)


def check_model_name(text: str) -> str:
    """The name as typed, when the identifier rules accept it as one name; UserError otherwise."""
    parts = split_parts(text.strip())
    if len(parts) != 1:
        raise UserError(f"Invalid model name '{text.strip()}': enter the name only, without a database or "
                          "schema; the model is stored in the database and schema chosen in the previous step.")
    return text.strip()


class NameForm(forms.Form):
    name = forms.CharField(label="Model name", max_length=255,
                           error_messages={"required": "Enter a name for the fine-tuned model."})

    def clean_name(self) -> str:
        try:
            return check_model_name(self.cleaned_data["name"])
        except UserError as error:
            raise forms.ValidationError(error.message) from error


class TableForm(forms.Form):
    table = forms.ChoiceField(label="Table or view", error_messages={
        "required": "Choose the table or view that holds the examples.",
        "invalid_choice": "%(value)s is not a table or view the role may use: choose one listed."})

    def __init__(self, *args, tables=(), skippable=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["table"].choices = _choices(tables) + ([(SKIP, "Skip")] if skippable else [])


class ColumnForm(forms.Form):
    column = forms.ChoiceField(error_messages={
        "required": "Choose a column.",
        "invalid_choice": "The table has no column %(value)s: choose one listed."})

    def __init__(self, *args, columns=(), label="Column", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = _choices(columns)
        self.fields["column"].label = label
