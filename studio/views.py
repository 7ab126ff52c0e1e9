from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from access import privileges
from access.web import session_for
from catalog.models import BaseModel
from jobs import finetune
from models_registry.models import FineTunedModel
from studio.charts import loss_chart


@login_required
def home(request):
    session = session_for(request)
    visibility = privileges.Visibility(session)
    models = [m for m in FineTunedModel.objects.select_related("schema__database")
              if visibility.sees("MODEL", m.qualified_name, m.owner_role)][:50]
    return render(request, "studio/home.html", {
        "jobs": finetune.visible_jobs(session)[:50],
        "models": models,
        "base_models": BaseModel.objects.all(),
    })


@login_required
def job_detail(request, job_id: str):
    # Another role's job is a 404, like a missing one.
    job = finetune.visible_jobs(session_for(request)).filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No fine-tuning job {job_id}")
    return render(request, "studio/job_detail.html", {
        "job": job,
        "describe_json": json.dumps(job.describe(), indent=2),
        "chart": loss_chart(job.history, job.validation_history),
        "last_step": job.history[-1] if job.history else None,
        "eta": _duration(job.history[-1].get("eta_seconds")) if job.history else None,
    })


def _duration(seconds: float | None) -> str | None:
    """'1 h 05 min', '4 min 10 s', '12 s'."""
    if seconds is None:
        return None
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
