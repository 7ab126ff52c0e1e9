from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from catalog.models import BaseModel
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from studio.charts import loss_chart


@login_required
def home(request):
    return render(request, "studio/home.html", {
        "jobs": FineTuneJob.objects.all()[:50],
        "models": FineTunedModel.objects.select_related("schema__database")[:50],
        "base_models": BaseModel.objects.all(),
    })


@login_required
def job_detail(request, job_id: str):
    job = FineTuneJob.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No fine-tuning job {job_id}")
    return render(request, "studio/job_detail.html", {
        "job": job,
        "describe_json": json.dumps(job.describe(), indent=2),
        "chart": loss_chart(job.history, job.validation_history),
        "last_step": job.history[-1] if job.history else None,
    })
