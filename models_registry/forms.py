"""The model page's GRANT and REVOKE forms. They call access.grants as the page's role, which decides who
may (the model's owner, a holder of USAGE WITH GRANT OPTION, or MANAGE GRANTS) and refuses in its own
words; the forms only collect a role name written as in SQL."""
from __future__ import annotations

from django import forms

from access import grants
from access.session import Session
from catalog.identifiers import quote
from models_registry.models import FineTunedModel

# The only privilege a MODEL has besides OWNERSHIP, which stays with its owner role.
PRIVILEGE = "USAGE"


class ModelGrantForm(forms.Form):
    """GRANT USAGE ON MODEL <model> TO ROLE <role> [WITH GRANT OPTION]."""

    role = forms.CharField(max_length=255, label="Role",
                           help_text="As in SQL: analyst is ANALYST, \"Mixed Case\" keeps its case.")
    grant_option = forms.BooleanField(required=False, label="With grant option")

    def execute(self, session: Session, model: FineTunedModel) -> str:
        role, grant_option = self.cleaned_data["role"], self.cleaned_data["grant_option"]
        stored = grants.grant(session, PRIVILEGE, "MODEL", model.qualified_name, grants.ROLE, role, grant_option)
        option = " with grant option" if grant_option else ""
        return f"Granted USAGE on {model.qualified_name} to role {quote(stored[0].grantee_name)}{option}."


class ModelRevokeForm(forms.Form):
    """REVOKE USAGE ON MODEL <model> FROM ROLE <role>; `role` is a stored name (the grants list's)."""

    role = forms.CharField(max_length=255, widget=forms.HiddenInput)

    def execute(self, session: Session, model: FineTunedModel) -> str:
        role = self.cleaned_data["role"]
        removed = grants.revoke(session, PRIVILEGE, "MODEL", model.qualified_name, grants.ROLE, quote(role))
        if not removed:
            return f"Role {quote(role)} held no USAGE on {model.qualified_name}: nothing to revoke."
        return f"Revoked USAGE on {model.qualified_name} from role {quote(role)}."
