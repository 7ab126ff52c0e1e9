"""The signed-in user's own things: the header's role and warehouse switches, and API tokens."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from access import tokens, web
from access.models import ApiToken
from errors import UserError


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)


def _back(request):
    """Where a header switch returns to: the page it was made on, never another site."""
    target = request.POST.get("next") or request.headers.get("Referer") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return redirect(target)
    return redirect("home")


def _refused(request, error: UserError, status: int):
    return render(request, "studio/session_refused.html", {"problem": error.message}, status=status)


@login_required
@require_POST
def switch_role(request):
    try:
        role = web.set_role(request, request.POST.get("role", ""))
    except UserError as error:
        return _refused(request, error, 403)
    messages.success(request, f"Now using role {role}.")
    return _back(request)


@login_required
@require_POST
def switch_warehouse(request):
    try:
        name = web.set_warehouse(request, request.POST.get("warehouse", ""))
    except UserError as error:
        return _refused(request, error, 400)
    messages.success(request, f"Now using warehouse {name}.")
    return _back(request)


@never_cache  # the answer to a POST shows the new token's secret: no cache, nor the back button, may keep it
@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    form = TokenForm(request.POST or None)
    context = {"form": form, "secret": None, "created": None}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            context["created"], context["secret"] = tokens.create_token(request.user, form.cleaned_data["name"])
            form = context["form"] = TokenForm()
        else:
            status = 400
    context["tokens"] = ApiToken.objects.filter(user=request.user).order_by("-created_on")
    return render(request, "studio/account_tokens.html", context, status=status)


@login_required
@require_POST
def revoke_api_token(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    tokens.revoke(token)
    messages.success(request, f"Token {token.name} revoked: it no longer signs in.")
    return redirect("api_tokens")
