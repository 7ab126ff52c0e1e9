"""The console's account pages: users, roles, grants, API tokens and the access history.

Grants and roles change only through access.grants, users only through access.users (the services
check who may and record the access history); rows are never edited here. Users are Django's, with
their Snowflake profile inline.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views.decorators.debug import sensitive_post_parameters

from access import grants, privileges, tokens, users
from access.console import (ReadOnlyRoleAdmin, RoleAdmin, ServiceDeleteMixin, ServiceFormMixin, console_roles,
                            console_session)
from access.forms import (PROFILE_PROPERTIES, USER_PROPERTIES, GrantForm, PasswordChangeForm, RoleCreateForm,
                          UserCreationForm, UserProfileForm, new_password, user_properties)
from access.models import SYSTEM_ROLES, AccessEvent, ApiToken, Grant, Role, UserProfile
from access.role_graph import effective_roles, user_roles
from catalog.identifiers import quote, quote_always
from errors import UserError

User = get_user_model()
ADMIN_ROLES = {"ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN"}

# Django's groups and model permissions decide nothing here: roles do.
for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


# Users ------------------------------------------------------------------------------------------

class UserProfileInline(admin.StackedInline):
    model = UserProfile
    form = UserProfileForm
    can_delete = False
    verbose_name_plural = "Snowflake profile"

    def _user_admin(self, request) -> bool:
        return admin.site.has_permission(request) and "USERADMIN" in console_roles(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._user_admin(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._user_admin(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._user_admin(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _granted_roles(user) -> str:
    return ", ".join(sorted(user_roles(user))) if user is not None and user.pk else ""


@admin.register(User)
class ConsoleUserAdmin(ServiceDeleteMixin, RoleAdmin, UserAdmin):
    """USERADMIN and above manage users; nobody changes a user who holds a system administration role
    the console role lacks (a USERADMIN cannot reset the ACCOUNTADMIN's password). Django's forms
    validate; adding is CREATE USER, saving a change ALTER USER (RENAME TO for a new name), a new
    password ALTER USER SET PASSWORD, deleting DROP USER, each through access/users.py, which checks the
    console role's authority and records the access history. Every field here is a USER property:
    is_superuser (holding ACCOUNTADMIN) is shown, not edited, and granted as a role on the Grants page."""

    view_role = change_role = "USERADMIN"
    inlines = [UserProfileInline]
    add_form = UserCreationForm
    change_password_form = PasswordChangeForm
    list_display = ("username", "email", "is_active", "granted_roles", "last_login")
    list_filter = ("is_active", "is_superuser", "roles")
    filter_horizontal = ()
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "email")}),
        ("Status", {"fields": ("is_active", "is_superuser", "granted_roles"),
                    "description": "A superuser holds ACCOUNTADMIN. Roles are granted on the Grants page "
                                   "(object type ROLE, grantee type USER) or with GRANT ROLE in SQL."}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("is_superuser", "granted_roles", "last_login", "date_joined")

    @admin.display(description="Granted roles")
    def granted_roles(self, obj) -> str:
        return _granted_roles(obj)

    def _outranks_console(self, request, user) -> bool:
        """The user holds a system administration role (a superuser: ACCOUNTADMIN) the console role lacks."""
        mine = console_roles(request)
        theirs = set().union(*(effective_roles(held) for held in user_roles(user)))
        return bool((theirs & ADMIN_ROLES) - mine)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and self._outranks_console(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and (obj == request.user or self._outranks_console(request, obj)):
            return False
        return super().has_delete_permission(request, obj)

    # Adding and changing: the user service writes ------------------------------------------------
    # The POST runs outside Django's transaction, as deleting does (ServiceDeleteMixin): the service
    # commits each change with its access-history record, so a refusal is recorded, not rolled back.

    def _by_the_service(self, request, view):
        try:
            return view()
        except UserError as exc:  # refused once the forms were valid: the service's own words
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())

    @method_decorator(sensitive_post_parameters())
    def add_view(self, request, form_url="", extra_context=None):
        return self._by_the_service(request, lambda: self._add_view(request, form_url, extra_context))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._by_the_service(
            request, lambda: self._changeform_view(request, object_id, form_url, extra_context))

    def save_model(self, request, obj, form, change) -> None:
        """Nothing is written here: save_related hands the user's and the profile's values to the service
        together."""

    def save_related(self, request, form, formsets, change) -> None:
        session = console_session(request)
        profile: dict = {}
        for formset in formsets:
            formset.save(commit=False)  # only what Django's change message lists
            for profile_form in formset.forms:
                if profile_form.has_changed():
                    profile |= user_properties(profile_form, PROFILE_PROPERTIES, changed_only=change)
        user = form.instance
        if not change:
            name = form.cleaned_data["username"]
            users.create_user(session, quote_always(name), {**new_password(form), **profile})
            user.pk = User.objects.get(username=name).pk
            user._state.adding = False
            return
        old = User.objects.get(pk=user.pk).get_username()
        properties = {**user_properties(form, USER_PROPERTIES, changed_only=True), **profile}
        if properties:
            users.alter_user(session, quote_always(old), properties)
        if "username" in form.changed_data:
            users.rename_user(session, quote_always(old), quote_always(form.cleaned_data["username"]))

    @method_decorator(sensitive_post_parameters())
    def user_change_password(self, request, id, form_url=""):
        """A valid new password (or password sign-in disabled) is ALTER USER … SET / UNSET PASSWORD; the
        rest (the page, an invalid form, who may) is Django's."""
        user = self.get_object(request, unquote(id))
        if request.method != "POST" or user is None or not self.has_change_permission(request, user):
            return super().user_change_password(request, id, form_url)
        form = self.change_password_form(user, request.POST)
        if not form.is_valid() or not (form.cleaned_data["set_usable_password"] or "unset-password" in request.POST):
            return super().user_change_password(request, id, form_url)
        try:
            users.alter_user(console_session(request), quote_always(user.get_username()), new_password(form))
        except UserError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(request.get_full_path())
        user.refresh_from_db()
        self.log_change(request, user, self.construct_change_message(request, form, None))
        self.message_user(request, gettext("Password changed successfully.") if user.has_usable_password()
                          else gettext("Password-based authentication was disabled."), messages.SUCCESS)
        update_session_auth_hash(request, user)
        return redirect(reverse("admin:auth_user_change", args=(user.pk,)))

    def service_delete(self, session, obj) -> str:
        return users.drop_user(session, quote_always(obj.get_username()))

    @admin.action(description="Drop selected users")
    def drop_selected(self, request, queryset) -> None:
        allowed = [user for user in queryset if self.has_delete_permission(request, user)]
        for user in set(queryset) - set(allowed):
            self.message_user(request, f"{user}: holds a system role this console role lacks; kept.", messages.ERROR)
        self.service_delete_selected(request, allowed)

    actions = ["drop_selected"]


# Roles ------------------------------------------------------------------------------------------

@admin.register(Role)
class RoleConsoleAdmin(ServiceFormMixin, RoleAdmin):
    """CREATE ROLE / DROP ROLE through access.grants; who holds a role changes on the Grants page."""

    view_role = change_role = "USERADMIN"
    service_form = RoleCreateForm
    service_form_title = "Create role"
    list_display = ("name", "inherits", "held_by_users", "created_on")
    search_fields = ("name",)
    readonly_fields = ("name", "inherits", "held_by_users", "created_on")
    fields = readonly_fields
    actions = ["drop_selected"]

    @admin.display(description="Inherits")
    def inherits(self, obj: Role) -> str:
        return ", ".join(sorted(effective_roles(obj.name) - {obj.name})) or "—"

    @admin.display(description="Users holding it")
    def held_by_users(self, obj: Role) -> str:
        names = set(obj.users.values_list("username", flat=True))
        names |= set(Grant.objects.filter(object_type=grants.ROLE, grantee_type=grants.USER,
                                          object_name=privileges.key(obj.name))
                     .values_list("grantee_name", flat=True))
        return ", ".join(sorted(names)) or "—"

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # nothing to edit: a role is its name and its grants

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.name in SYSTEM_ROLES:
            return False
        return super().has_delete_permission(request, obj)

    def service_delete(self, session, obj: Role) -> str:
        grants.drop_role(session, quote(obj.name))
        return f"{obj.name} successfully dropped."

    @admin.action(description="Drop selected roles")
    def drop_selected(self, request, queryset) -> None:
        self.service_delete_selected(request, queryset)


# Grants -----------------------------------------------------------------------------------------

@admin.register(Grant)
class GrantAdmin(ServiceFormMixin, RoleAdmin):
    """SECURITYADMIN and above see every grant. Adding calls GRANT, deleting calls REVOKE: a refusal
    shows the service's message."""

    view_role = change_role = "SECURITYADMIN"
    service_form = GrantForm
    service_form_title = "Grant a privilege or a role"
    list_display = ("privilege", "object_type", "object_name", "grantee_type", "grantee_name", "grant_option",
                    "granted_by", "created_on")
    list_filter = ("grantee_type", "grantee_name", "object_type", "privilege", "grant_option")
    search_fields = ("object_name",)
    readonly_fields = list_display
    fields = list_display
    actions = ["revoke_selected"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.privilege == "OWNERSHIP":
            return False  # ownership goes with the object (DROP), never by REVOKE
        return self._holds(request, self.change_role)

    def service_delete(self, session, obj: Grant) -> str:
        # The stored grantee's exact name: an unquoted one would match a user's name in any case.
        grantee = quote_always(obj.grantee_name)
        if obj.object_type in (grants.ROLE, grants.DATABASE_ROLE):
            removed = grants.revoke_role(session, obj.object_type, obj.object_name, obj.grantee_type, grantee)
        else:
            removed = grants.revoke(session, obj.privilege, obj.object_type, obj.object_name, obj.grantee_type, grantee)
        if not removed:
            return f"Nothing to revoke: {obj}."
        return f"Revoked {obj}."

    @admin.action(description="Revoke selected grants")
    def revoke_selected(self, request, queryset) -> None:
        self.service_delete_selected(request, queryset.exclude(privilege="OWNERSHIP"))


# API tokens -------------------------------------------------------------------------------------

@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyRoleAdmin):
    """Listed and revoked here; created on the user's tokens page, the only place the secret shows."""

    view_role = "SECURITYADMIN"
    list_display = ("name", "user", "prefix", "created_on", "last_used_on", "revoked_on")
    list_filter = ("revoked_on",)
    search_fields = ("name", "prefix", "user__username")
    fields = ("name", "user", "prefix", "created_on", "last_used_on", "revoked_on")
    actions = ["revoke_selected"]

    @admin.action(description="Revoke selected tokens")
    def revoke_selected(self, request, queryset) -> None:
        live = list(queryset.filter(revoked_on__isnull=True))
        for token in live:
            tokens.revoke(token)
        self.message_user(request, f"Revoked {len(live)} token(s).", messages.SUCCESS)


# Access history ---------------------------------------------------------------------------------

@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyRoleAdmin):
    """The access history, as SNOWFLAKE.ACCOUNT_USAGE.CORTEX_ACCESS_HISTORY shows it in SQL."""

    view_role = "SECURITYADMIN"
    date_hierarchy = "at"
    list_display = ("at", "user_name", "role", "action", "object_type", "object_name", "outcome", "entry_point")
    list_filter = ("outcome", "action", "role", "entry_point")
    search_fields = ("user_name", "object_name")
    fields = ("at", "user_name", "role", "action", "object_type", "object_name", "outcome", "message", "entry_point")
    readonly_fields = fields
