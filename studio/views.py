"""The Studio overview. The Jobs pages are in jobs_views.py, the Models pages in models_views.py, the Data
pages in data_views.py."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from access import privileges
from access.web import session_for
from catalog.models import BaseModel
from jobs import finetune

RECENT_JOBS = 5


@login_required
@require_GET
def home(request):
    session = session_for(request)
    may_finetune = privileges.holds_cortex_user(session)
    return render(request, "studio/home.html", {
        "may_finetune": may_finetune,
        "jobs": finetune.visible_jobs(session)[:RECENT_JOBS] if may_finetune else [],
        "base_models": BaseModel.objects.all(),
    })
