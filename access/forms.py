"""Forms of the admin console: its login, and the add pages that call the access services."""
from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from access import grants
from access.session import Session

ROLE_TYPES = (grants.ROLE, grants.DATABASE_ROLE)


class ConsoleAuthenticationForm(AdminAuthenticationForm):
    """The console's login: the user's roles decide, not Django's is_staff flag."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct %(username)s and password of a user who holds USERADMIN, "
                         "SECURITYADMIN or ACCOUNTADMIN. Note that both fields may be case-sensitive.",
    }

    def confirm_login_allowed(self, user) -> None:
        from access.console import may_use_console

        AuthenticationForm.confirm_login_allowed(self, user)  # active users only; skips the is_staff check
        if not may_use_console(user):
            raise ValidationError(self.error_messages["invalid_login"], code="invalid_login",
                                  params={"username": self.username_field.verbose_name})


def _privilege_choices() -> list[tuple[str, str]]:
    names = sorted({p for privileges in grants.PRIVILEGES.values() for p in privileges})
    return [("", "— (granting a role)"), ("ALL", "ALL")] + [(p, p) for p in names]


class GrantForm(forms.Form):
    """GRANT <privilege> ON <object type> <object> TO ROLE|USER <grantee> [WITH GRANT OPTION], or
    GRANT ROLE|DATABASE ROLE <role> TO ROLE|USER <grantee>. Names are SQL identifiers, as in a worksheet."""

    privilege = forms.ChoiceField(choices=_privilege_choices, required=False,
                                  help_text="Leave empty when the object type is ROLE or DATABASE ROLE.")
    object_type = forms.ChoiceField(choices=[(t, t) for t in (*grants.OBJECT_TYPES, *ROLE_TYPES)])
    object_name = forms.CharField(max_length=767, help_text="As in SQL: DEMO.PUBLIC.SUPPORT_TICKETS, "
                                                            "\"My db\", SNOWFLAKE.CORTEX_USER …")
    grantee_type = forms.ChoiceField(choices=[(t, t) for t in grants.GRANTEE_TYPES], initial=grants.ROLE)
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
