"""The Data page's upload form: which table a file goes into."""
from __future__ import annotations

from django import forms

from catalog import uploads
from catalog.identifiers import split_parts
from errors import UserError


class UploadForm(forms.Form):
    """`schema` and `existing` hold names as Snowflake prints them (DB.SCHEMA, DB.SCHEMA.TABLE); the
    choices are whatever the page offered, but any name is accepted: the service checks privileges."""

    mode = forms.ChoiceField(choices=[("new", "New table"), ("existing", "Existing table")], initial="new",
                             widget=forms.RadioSelect)
    schema = forms.CharField(required=False, label="Schema")
    new_table = forms.CharField(required=False, max_length=255, label="Table name")
    existing = forms.CharField(required=False, label="Table")

    def clean(self):
        data = super().clean()
        try:
            if data.get("mode") == "new":
                schema = _parts(data.get("schema", ""), 2, "schema", "Choose the schema for the new table.")
                name = _parts(data.get("new_table", ""), 1, "new_table", "Name the new table.")
                data["table"] = (*schema, *name)
            elif data.get("mode") == "existing":
                data["table"] = tuple(_parts(data.get("existing", ""), 3, "existing", "Choose the table to load into."))
        except forms.ValidationError as error:
            self.add_error(error.code, error.message)
        return data


def _parts(text: str, count: int, field: str, missing: str) -> list[str]:
    if not text.strip():
        raise forms.ValidationError(missing, code=field)
    try:
        parts = split_parts(text.strip())
    except UserError as error:
        raise forms.ValidationError(error.message, code=field) from error
    if len(parts) != count:
        raise forms.ValidationError(f"Expected a name of {count} part{'s' if count > 1 else ''}: '{text}'.",
                                    code=field)
    return parts


def check_file_name(name: str) -> str | None:
    """The reason a file cannot be loaded, judged by its name; None when its type is supported."""
    try:
        uploads.file_type(name)
    except UserError as error:
        return error.message
    return None
