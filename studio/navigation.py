"""The left navigation of every page: its sections, which one the current page belongs to, and whether
the user sees Admin (only users who may enter the admin console, by access.roles.may_use_console)."""
from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from access.roles import may_use_console


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    url_name: str
    pages: tuple[str, ...]  # the URL names whose pages belong to this section

    @property
    def url(self) -> str:
        return reverse(self.url_name)


SECTIONS = (
    Section("studio", "Studio", "home", ("home", "wizard", "wizard_step", "wizard_started")),
    Section("worksheets", "Worksheets", "worksheet", ("worksheet", "worksheet_save", "worksheet_open", "worksheet_rename",
                                                      "worksheet_delete")),
    Section("data", "Data", "data", ("data", "data_table", "data_upload", "data_refresh")),
    Section("models", "Models", "models", ("models", "model_detail", "model_grant", "model_revoke")),
    Section("playground", "Playground", "playground", ("playground",)),
    Section("jobs", "Jobs", "jobs", ("jobs", "job_detail", "job_cancel")),
)
ADMIN = Section("admin", "Admin", "admin:index", ())


def current_section(request) -> str | None:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    if match.namespace == "admin":
        return ADMIN.key
    return next((s.key for s in SECTIONS if match.url_name in s.pages), None)


def navigation(request) -> dict:
    """Context processor: `nav.sections` (Admin last, for console users only), `nav.current` (the key
    of the current page's section) and `nav.current_label`."""
    # htmx fragments have no navigation: their polls skip the console check.
    if not request.user.is_authenticated or getattr(request, "htmx", False):
        return {}
    sections = list(SECTIONS) + ([ADMIN] if may_use_console(request.user) else [])
    current = current_section(request)
    label = next((s.label for s in sections if s.key == current), "")
    return {"nav": {"sections": sections, "current": current, "current_label": label}}
