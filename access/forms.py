"""Forms of the admin console: its login, the user pages' forms and the add pages that call the access
services. The user forms check their values with the user service's own rules (access/users.py), so a
value the service would refuse is a form error beside its field."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, AuthenticationForm
from django.core.exceptions import ValidationError

from access import grant_objects, grants, users
from access.models import PRIVILEGES, UserProfile
from access.roles import may_use_console
from access.session import Session
from errors import UserError

ROLE_TYPES = (grants.ROLE, grants.DATABASE_ROLE)
# The console's user and profile fields, and the USER properties (CREATE / ALTER USER) they are.
USER_PROPERTIES = {"first_name": "DISPLAY_NAME", "email": "EMAIL", "is_active": "DISABLED"}
PROFILE_PROPERTIES = {"default_role": "DEFAULT_ROLE", "default_warehouse": "DEFAULT_WAREHOUSE", "comment": "COMMENT"}


class ConsoleAuthenticationForm(AdminAuthenticationForm):
    """The console's login: the user's roles decide, not Django's is_staff flag."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct %(username)s and password of a user who holds USERADMIN, "
                         "SECURITYADMIN or ACCOUNTADMIN. Note that both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # active users only; skips the is_staff check
        if not may_use_console(user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


def _privilege_choices() -> list[tuple[str, str]]:
    names = sorted({p for privileges in PRIVILEGES.values() for p in privileges})
    return [("", "— (granting a role)"), ("ALL", "ALL")] + [(p, p) for p in names]


class GrantForm(forms.Form):
    """GRANT <privilege> ON <object type> <object> TO ROLE|USER <grantee> [WITH GRANT OPTION], or
    GRANT ROLE|DATABASE ROLE <role> TO ROLE|USER <grantee>. Names are SQL identifiers, as in a worksheet."""

    privilege = forms.ChoiceField(choices=_privilege_choices, required=False,
                                  help_text="Leave empty when the object type is ROLE or DATABASE ROLE.")
    object_type = forms.ChoiceField(choices=[(t, t) for t in (*grant_objects.OBJECT_TYPES, *ROLE_TYPES)])
    object_name = forms.CharField(max_length=767, help_text="As in SQL: DEMO.PUBLIC.SUPPORT_TICKETS, "
                                                            "\"My db\", SNOWFLAKE.CORTEX_USER …")
    grantee_type = forms.ChoiceField(choices=[(t, t) for t in grant_objects.GRANTEE_TYPES], initial=grants.ROLE)
    grantee_name = forms.CharField(max_length=255, label="Grantee")
    grant_option = forms.BooleanField(required=False, label="With grant option")

    def clean(self):
        data = super().clean()
        if data.get("object_type") not in ROLE_TYPES and not data.get("privilege"):
            self.add_error("privilege", f"Choose the privilege to grant on the {data.get('object_type', 'object')}.")
        return data

    def execute(self, session: Session) -> str:
        d = self.cleaned_data
        to = f"{d['grantee_type']} {d['grantee_name']}"
        if d["object_type"] in ROLE_TYPES:
            grants.grant_role(session, d["object_type"], d["object_name"], d["grantee_type"], d["grantee_name"])
            return f"Granted {d['object_type']} {d['object_name']} to {to}."
        rows = grants.grant(session, d["privilege"], d["object_type"], d["object_name"], d["grantee_type"],
                            d["grantee_name"], d["grant_option"])
        return f"Granted {', '.join(g.privilege for g in rows)} on {d['object_type']} {rows[0].object_name} to {to}."


class RoleCreateForm(forms.Form):
    name = forms.CharField(max_length=255, help_text="An identifier: unquoted names are upper-cased.")

    def execute(self, session: Session) -> str:
        role, _ = grants.create_role(session, self.cleaned_data["name"])
        return f"Role {role.name} successfully created."


# Users ------------------------------------------------------------------------------------------

def user_properties(form: forms.Form, fields: dict[str, str], *, changed_only: bool) -> dict[str, Any]:
    """The USER properties a validated console form sets, as the user service takes them: with
    changed_only (a change), the changed fields, an emptied one as None (UNSET); else (a new user) the
    fields that hold a value. is_active is DISABLED's opposite."""
    properties: dict[str, Any] = {}
    for field, prop in fields.items():
        if field not in form.cleaned_data or (changed_only and field not in form.changed_data):
            continue
        value = form.cleaned_data[field]
        if field == "is_active":
            value = not value
        elif isinstance(value, str):
            value = value.strip() or None
        if value is not None or changed_only:
            properties[prop] = value
    return properties


def new_password(form: forms.Form) -> dict[str, Any]:
    """PASSWORD as a validated password form sets it: the new one, or None when password sign-in is
    disabled."""
    if not form.cleaned_data.get("set_usable_password"):
        return {"PASSWORD": None}
    return {"PASSWORD": form.cleaned_data["password1"]}


def _field_error(form: forms.Form, fields: dict[str, str], error: UserError) -> None:
    field = next((f for f, prop in fields.items() if prop == error.field), None)
    form.add_error(field if field in form.fields else None, error.message)


class UserProfileForm(forms.ModelForm):
    """The Snowflake properties kept on the profile. DEFAULT_ROLE must name a role; DEFAULT_WAREHOUSE is
    kept as given, as CREATE USER keeps it (a session starts in it only while it exists)."""

    class Meta:
        model = UserProfile
        fields = tuple(PROFILE_PROPERTIES)

    def clean(self):
        data = super().clean()
        try:
            users.check_properties("", user_properties(self, PROFILE_PROPERTIES, changed_only=False))
        except UserError as error:
            _field_error(self, PROFILE_PROPERTIES, error)
        return data


class _ServicePassword:
    """The user service's password rule after Django's validators (which report first, so a short
    password gets one message)."""

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors or not self.cleaned_data.get("set_usable_password"):
            return
        try:
            users.check_password(self.cleaned_data["password1"])
        except UserError as error:
            self.add_error("password2", error.message)


class UserCreationForm(_ServicePassword, AdminUserCreationForm):
    pass


class PasswordChangeForm(_ServicePassword, AdminPasswordChangeForm):
    pass
