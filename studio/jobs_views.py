"""The Jobs pages: the list (FINETUNE SHOW) and a job's page (DESCRIBE) with its live part, and Cancel.

Both need what SHOW and DESCRIBE need (SNOWFLAKE.CORTEX_USER) and list what they list (finetune.
visible_jobs); a role without it gets the service's refusal. Everything shown is read from the job's
row, which the worker keeps up to date, so a refresh or a dropped connection loses nothing: the pages
poll their htmx fragment while a job can still change and stop once it has finished.
"""
from __future__ import annotations

import json
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access import privileges
from access.session import Session
from access.web import session_for
from errors import UserError
from jobs import finetune, retention
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from studio.charts import loss_chart

JOBS_PER_PAGE = 50
# How often an open page asks for fresh values (the worker writes a running job's row about once a second).
LIVE_POLL = "every 2s"


def _refused(request, error: UserError, fragment: str = "studio/_refused.html"):
    """The service's refusal, as the page or as the fragment an htmx poll swaps in (which stops it)."""
    return render(request, fragment if request.htmx else "studio/refused.html", {"problem": error.message},
                  status=403)


def _readable_jobs(session: Session):
    """The jobs the session may list and describe; UserError without CORTEX_USER, as SHOW refuses.
    Pages poll this, so unlike finetune.show it leaves no access-history row per look."""
    privileges.require_cortex_user(session, "FINETUNE")
    return finetune.visible_jobs(session)


@login_required
@require_GET
def job_list(request):
    try:
        jobs = _readable_jobs(session_for(request))
    except UserError as error:
        return _refused(request, error, "studio/_refused_rows.html")
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "jobs": page.object_list,
               "live": any(not job.is_final for job in page.object_list), "poll": LIVE_POLL}
    template = "studio/_job_rows.html" if request.htmx else "studio/jobs.html"
    return render(request, template, context)


def _visible_job(request, job_id: str) -> tuple[Session, FineTuneJob]:
    # Another role's job is a 404, like a missing one, before any privilege check: ids cannot be probed.
    session = session_for(request)
    job = finetune.visible_jobs(session).filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No fine-tuning job {job_id}")
    return session, job


def _collected(request, job_id: str):
    """The page of a job that retention collected: what DESCRIBE says of it, as a 404. None for any other id."""
    session = session_for(request)
    if finetune.visible_jobs(session).filter(pk=job_id).exists():
        return None
    gone = finetune.collected(session, job_id)
    if gone is None:
        return None
    try:
        privileges.require_cortex_user(session, "FINETUNE")
    except UserError as error:
        return _refused(request, error)
    return render(request, "studio/job_collected.html", {"problem": retention.collected_message(gone)}, status=404)


def live_context(job: FineTuneJob, now: float | None = None) -> dict[str, Any]:
    """What the job page's live part shows, all of it derived from the job's row."""
    last = job.history[-1] if job.history else None
    eta = None
    if last and not job.is_final and last.get("eta_seconds") is not None:
        # The worker estimated this at the step it wrote; count down the time since.
        since = ((now or time.time()) - last["at"] / 1000) if last.get("at") else 0.0
        eta = duration(max(0.0, last["eta_seconds"] - max(0.0, since)))
    described = job.describe()
    return {
        "job": job,
        "chart": loss_chart(job.history, job.validation_history),
        "last_step": last,
        "eta": eta,
        "elapsed": _elapsed(job),
        "options": job.options_used(),
        "describe_json": json.dumps(described, indent=2),
        "model": FineTunedModel.objects.filter(job=job).select_related("schema__database").first()
        if job.status == FineTuneJob.Status.SUCCESS else None,
        "poll": LIVE_POLL,
    }


def _elapsed(job: FineTuneJob) -> str | None:
    if job.started_on is None:
        return None
    end = job.finished_on or timezone.now()
    return duration(max(0.0, (end - job.started_on).total_seconds()))


def duration(seconds: float | None) -> str | None:
    """'1 h 05 min', '4 min 10 s', '12 s'."""
    if seconds is None:
        return None
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@login_required
@require_GET
def job_detail(request, job_id: str):
    gone = _collected(request, job_id)
    if gone is not None:
        return gone
    session, job = _visible_job(request, job_id)
    try:
        privileges.require_cortex_user(session, "FINETUNE")
    except UserError as error:
        return _refused(request, error)
    template = "studio/_job_live.html" if request.htmx else "studio/job_detail.html"
    return render(request, template, live_context(job))


@login_required
@require_POST
def job_cancel(request, job_id: str):
    """FINETUNE('CANCEL') with the page's role: the job's page again, with the answer or the refusal."""
    session, job = _visible_job(request, job_id)
    try:
        answer = finetune.cancel(session, job.id)
    except UserError as error:
        job.refresh_from_db()
        context = live_context(job) | {"problem": error.message}
        status = 403 if error.code == privileges.INSUFFICIENT_PRIVILEGES else 400
        template = "studio/_job_live.html" if request.htmx else "studio/job_detail.html"
        return render(request, template, context, status=status)
    if request.htmx:
        job.refresh_from_db()
        return render(request, "studio/_job_live.html", live_context(job) | {"notice": answer})
    messages.success(request, answer)
    return redirect("job_detail", job_id=job.id)
