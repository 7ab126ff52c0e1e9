"""A long job's stored loss history stays bounded, and what the job page draws from it still runs from the
first step to the exact latest one; a job carrying on from a checkpoint keeps a history that makes sense."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from jobs import loss_history
from jobs.models import FineTuneJob
from jobs.tasks import JobHooks
from studio.charts import loss_chart

STEPS = 20_000


def step_metrics(step: int, total: int = STEPS) -> SimpleNamespace:
    """What the trainer reports after a step: a loss falling from 4 towards 0.5, with a wiggle."""
    loss = 0.5 + 3.5 * math.exp(-step / 2000) + 0.05 * math.sin(step)
    return SimpleNamespace(step=step, total_steps=total, epoch=step / 1000, loss=loss, learning_rate=1e-3,
                           tokens_per_second=50.0, eta_seconds=float(total - step), progress=step / total)


def point(step: int) -> dict:
    m = step_metrics(step)
    return {"step": m.step, "total_steps": m.total_steps, "epoch": m.epoch, "loss": m.loss}


def long_history(steps: int = STEPS) -> list[dict]:
    history: list[dict] = []
    for step in range(1, steps + 1):
        history = loss_history.append(history, point(step))
    return history


def test_a_20k_step_history_keeps_at_most_the_limit_and_every_step_counted_once():
    history = long_history()
    assert len(history) <= loss_history.MAX_POINTS
    assert sum(loss_history.weight(p) for p in history) == STEPS, "each step stands in exactly one point"
    steps = [p["step"] for p in history]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_the_first_and_the_latest_steps_are_kept_exact():
    history = long_history()
    assert history[0] == point(1)
    assert history[-1] == point(STEPS)


def test_merged_points_are_the_mean_loss_of_their_steps_and_evenly_sized():
    history = long_history()
    exact = {s: point(s)["loss"] for s in range(1, STEPS + 1)}
    previous = history[0]["step"]
    for p in history[1:]:
        steps = range(previous + 1, p["step"] + 1)
        assert len(steps) == loss_history.weight(p)
        assert p["loss"] == pytest.approx(sum(exact[s] for s in steps) / len(steps))
        previous = p["step"]
    # Every merged point stands for the same number of steps (but one or two at the edges of a compaction),
    # the steps since the last compaction for one each.
    sizes = [loss_history.weight(p) for p in history[1:-1]]
    assert len([size for size in sizes if 1 < size < max(sizes)]) <= 2
    assert max(sizes) <= 4 * STEPS / loss_history.MAX_POINTS, "no coarser than the bound needs"


def test_a_short_history_is_stored_step_by_step():
    history = long_history(500)
    assert [p["step"] for p in history] == list(range(1, 501)) and all("steps" not in p for p in history)


def test_the_chart_of_a_long_history_runs_from_the_first_step_to_the_last():
    history = long_history()
    chart = loss_chart(history, [])
    points = [tuple(map(float, p.split(","))) for p in chart.training.split()]
    assert len(points) == len(history) <= loss_history.MAX_POINTS
    first_x = chart.left + (1 / 1000) / (STEPS / 1000) * (chart.right - chart.left)
    assert points[0][0] == pytest.approx(first_x, abs=0.1) and points[-1][0] == pytest.approx(chart.right, abs=0.1)
    assert points[0][1] < points[-1][1], "the first loss (highest) is drawn higher than the last"
    assert chart.steps_per_point > 1


def test_resuming_from_a_checkpoint_keeps_the_points_up_to_it_and_carries_on_bounded():
    history = long_history(12_000)
    kept = loss_history.until(history, 7_000)
    assert kept[0] == point(1) and kept[-1]["step"] <= 7_000
    assert kept[-1]["step"] > 7_000 - 2 * max(loss_history.weight(p) for p in kept), "at most one point lost"
    for step in range(7_001, STEPS + 1):
        kept = loss_history.append(kept, point(step))
    steps = [p["step"] for p in kept]
    assert steps == sorted(steps) and len(kept) <= loss_history.MAX_POINTS and kept[-1] == point(STEPS)


# Through the job's own hooks and row, as the worker writes it --------------------------------------------

def running_job() -> FineTuneJob:
    return FineTuneJob.objects.create(
        base_model="tiny-llama", database="DEMO", schema="PUBLIC", requested_name="LONG",
        training_data="SELECT prompt, completion FROM t", warehouse="COMPUTE_WH", role="ACCOUNTADMIN",
        status="IN_PROGRESS", phase="training", rq_job_id="finetune-long", started_on=timezone.now())


def test_a_long_jobs_stored_row_stays_small_across_a_resume(db):
    job = running_job()
    hooks = JobHooks(job)
    for step in range(1, 12_001):
        hooks.on_step(step_metrics(step))
    hooks.on_eval(1.0, 1.5, step=12_000)
    # The worker was stopped; the next try carries on from the checkpoint at step 10,000.
    job.refresh_from_db()
    hooks = JobHooks(job)
    hooks.on_resume(10_000)
    for step in range(10_001, STEPS + 1):
        hooks.on_step(step_metrics(step))
    hooks._save(force=True)
    job.refresh_from_db()
    assert len(job.history) <= loss_history.MAX_POINTS
    assert len(json.dumps(job.history)) < 200_000, "about 150 kB at most, whatever the run's length"
    assert job.history[0]["step"] == 1 and job.history[-1]["step"] == STEPS
    assert job.history[-1]["loss"] == step_metrics(STEPS).loss
    steps = [p["step"] for p in job.history]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert job.validation_history == [], "the evaluation after the checkpoint was dropped with the steps after it"


def test_the_validation_history_of_an_evaluation_every_step_is_bounded_too(db):
    hooks = JobHooks(running_job())
    for step in range(1, 3_001):
        hooks.on_eval(step / 1000, 2.0 - step / 3000, step=step)
    assert len(hooks.validation_history) <= loss_history.MAX_POINTS
    assert hooks.validation_history[-1] == {"epoch": 3.0, "step": 3000, "validation_loss": 1.0}


def test_the_job_page_draws_a_long_jobs_stored_history_start_to_end(db):
    from access.bootstrap import bootstrap

    bootstrap(password="pw-for-tests-1", demo=False)
    job = running_job()
    history = long_history()
    FineTuneJob.objects.filter(pk=job.pk).update(status="SUCCESS", phase="done", progress=1.0, history=history,
                                                 finished_on=timezone.now(), final_model_name="DEMO.PUBLIC.LONG")
    client = Client()
    assert client.login(username="admin", password="pw-for-tests-1")
    page = client.get(f"/jobs/{job.id}/").content.decode()
    drawn = page.split('class="train"')[0].rsplit('points="', 1)[1].split('"')[0].split()
    assert len(drawn) == len(history) <= loss_history.MAX_POINTS
    assert "older steps averaged, up to" in page
