"""The admin console: Django's admin, entered and governed by Snowflake's roles, not by is_staff.

A user may enter when a role they hold inherits ACCOUNTADMIN, SECURITYADMIN or USERADMIN (superusers
always). Inside, the console acts as one role (console_session); each ModelAdmin names the system role
its pages need (RoleAdmin.view_role / change_role), and every change to grants and roles goes through
the access services, which make their own checks.

This module is imported while the app registry is still loading (StudioAdminConfig makes the site
Django's default admin.site), so anything touching models is imported inside functions.
"""
from __future__ import annotations

import dataclasses

from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from errors import UserError

# The role the console acts with when the user's current role gives no console rights: the first of
# these the user may use.
STRONGEST_FIRST = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN")
# Per-request caches: the permission checks run for every model on every page, and each reads grants.
_SESSION_ATTR, _ROLES_ATTR, _ALLOWED_ATTR = "_console_session", "_console_roles", "_console_allowed"


class StudioAdminConfig(AdminConfig):
    default_site = "access.console.StudioAdminSite"


def _strongest_role(user) -> str:
    from access.role_graph import effective_roles, user_roles

    held = user_roles(user)
    for candidate in STRONGEST_FIRST:
        if any(candidate in effective_roles(role) for role in held):
            return candidate
    return "PUBLIC"


def _console_session(request):
    """The session the console acts in: the user's current web session (the header menu's role and
    warehouse) when its role carries console rights, else with the strongest system role the user
    holds. Entry point "admin"."""
    from access import roles
    from access.role_graph import effective_roles
    from access.web import session_for

    session = session_for(request)
    role = session.role if set(roles.CONSOLE_ROLES) & effective_roles(session.role) else _strongest_role(request.user)
    return dataclasses.replace(session, role=role, entry_point="admin")


def console_session(request):
    """The console's session, built once per request."""
    session = getattr(request, _SESSION_ATTR, None)
    if session is None:
        session = _console_session(request)
        setattr(request, _SESSION_ATTR, session)
    return session


def console_roles(request) -> set[str]:
    """The console role and every role it inherits."""
    from access.role_graph import effective_roles

    roles = getattr(request, _ROLES_ATTR, None)
    if roles is None:
        roles = effective_roles(console_session(request).role)
        setattr(request, _ROLES_ATTR, roles)
    return roles


class StudioAdminSite(admin.AdminSite):
    site_header = "Fine-tuning Studio administration"
    site_title = "Fine-tuning Studio administration"
    index_title = "Account"
    site_url = None  # the header's own links lead back to the studio

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        from access.forms import ConsoleAuthenticationForm

        self.login_form = ConsoleAuthenticationForm

    def has_permission(self, request) -> bool:
        allowed = getattr(request, _ALLOWED_ATTR, None)
        if allowed is None:
            from access.roles import may_use_console

            allowed = may_use_console(request.user)
            setattr(request, _ALLOWED_ATTR, allowed)
        return allowed

    def each_context(self, request):
        context = super().each_context(request)
        if self.has_permission(request):
            context["console_role"] = console_session(request).role
        return context


class RoleAdmin(admin.ModelAdmin):
    """A ModelAdmin whose pages need a system role (by inheritance) instead of Django permissions.

    view_role: who sees the list and the objects; change_role: who adds, changes and deletes (None:
    nobody, the model is read-only here).
    """

    view_role: str = "ACCOUNTADMIN"
    change_role: str | None = None

    def _holds(self, request, role: str | None) -> bool:
        return role is not None and self.admin_site.has_permission(request) and role in console_roles(request)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def for_each(self, request, queryset, call) -> None:
        """call(session, obj) -> message for each selected row, in the console's session; a refusal
        (UserError) is reported as an error and the other rows go on."""
        session = console_session(request)
        for obj in queryset:
            try:
                done = call(session, obj)
            except UserError as exc:
                self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, done, messages.SUCCESS)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.view_role) or self.has_change_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return self._holds(request, self.change_role)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.change_role)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.change_role)


def named_filter(field: str, title: str, names) -> type[admin.SimpleListFilter]:
    """A list filter on `field` whose choices come from `names()` (a small table: base models,
    warehouses) rather than from Django's SELECT DISTINCT over the whole listed table, which reads every
    row of a big one (a job row carries its loss history)."""

    class NamedFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return [(name, name) for name in names()]

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    NamedFilter.title = title
    return NamedFilter


class ReadOnlyRoleAdmin(RoleAdmin):
    """Listed and shown, never added, changed or deleted from the console."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ServiceDeleteMixin:
    """Deleting calls a service (REVOKE, DROP ROLE, DROP USER) instead of deleting the row: from the
    delete page and from a bulk action; a refusal shows the service's message."""

    def service_delete(self, session, obj) -> str:
        """Undo obj through the service (REVOKE, DROP ROLE …); the success message."""
        raise NotImplementedError

    def delete_view(self, request, object_id, extra_context=None):
        """GET: Django's confirmation page. POST: the service, outside the admin's transaction, so what
        the service records (a refusal in the access history) is kept."""
        if request.method != "POST":
            return super().delete_view(request, object_id, extra_context)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        try:
            done = self.service_delete(console_session(request), obj)
        except UserError as exc:
            self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # each deletion goes through the service, one by one
        return actions

    def service_delete_selected(self, request, queryset) -> None:
        self.for_each(request, queryset, self.service_delete)


class ServiceFormMixin(ServiceDeleteMixin):
    """An add page that is a plain form calling an access service rather than saving a ModelForm:
    the service's refusal shows as the form's error, with the service's own message.

    service_form: a Form with `execute(session) -> str` (the success message) that raises UserError.
    """

    service_form = None
    service_form_title = "Add"

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.service_form(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                done = form.execute(console_session(request))
            except UserError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, done, messages.SUCCESS)
                return redirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": self.service_form_title,
            "opts": self.opts,
            "form": form,
            "has_view_permission": self.has_view_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/service_form.html", context, status=400 if form.errors else 200)
