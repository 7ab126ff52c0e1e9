"""The per-step metrics a job stores (FineTuneJob.history) and its page draws, bounded in size.

A job writes its whole history to its row about once a second, and a long run has tens of thousands of
steps: kept step by step, each write and each look at the job page would grow with it. Past MAX_POINTS
points, neighbouring points are merged, oldest first, into points that each stand for the same number of
steps: the loss of a merged point is the mean over its steps (what a chart of that width can show
anyway), its other values are those of its last step. The first step and the latest one are never
merged, so the chart always starts at the first loss and ends at the exact latest values. The validation
history (one point per evaluation: every step, with eval_steps=1) is bounded the same way.
"""
from __future__ import annotations

from typing import Any

# 1,000 points is more than a 720-pixel chart can tell apart, and about 150 kB of JSON at most.
MAX_POINTS = 1000


def weight(point: dict[str, Any]) -> int:
    """How many training steps the point stands for."""
    return int(point.get("steps", 1))


def append(history: list[dict[str, Any]], point: dict[str, Any], limit: int = MAX_POINTS,
           key: str = "loss") -> list[dict[str, Any]]:
    """history with `point` (one step's metrics, or one evaluation's with key="validation_loss") added last,
    compacted when it grew past `limit`."""
    history = [*history, point]
    return compact(history, limit, key) if len(history) > limit else history


def compact(history: list[dict[str, Any]], limit: int = MAX_POINTS, key: str = "loss") -> list[dict[str, Any]]:
    """Merge the points between the first and the last into buckets of `size` consecutive steps, size the
    heaviest point's steps doubled until about half of `limit` buckets hold them all: every merged point
    then stands for the same number of steps (the chart's resolution is even along the run), and half the
    room is left for the steps to come before the next compaction."""
    while len(history) > limit and len(history) > 3:
        first, middle, last = history[0], history[1:-1], history[-1]
        total = sum(weight(p) for p in middle)
        size = max(weight(p) for p in middle)
        while total > size * (limit // 2) or size == 1:
            size *= 2
        buckets: list[list[dict[str, Any]]] = [[]]
        filled = 0
        for p in middle:
            if buckets[-1] and filled + weight(p) > size:
                buckets.append([])
                filled = 0
            buckets[-1].append(p)
            filled += weight(p)
        history = [first, *(merge(bucket, key) for bucket in buckets), last]
    return history


def merge(points: list[dict[str, Any]], key: str = "loss") -> dict[str, Any]:
    """One point for consecutive points: the mean `key` over their steps, the rest from the last of them."""
    if len(points) == 1:
        return points[0]
    steps = sum(weight(p) for p in points)
    mean = sum(float(p[key]) * weight(p) for p in points) / steps
    return {**points[-1], key: mean, "steps": steps}


def until(history: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The points of steps up to `step` (a checkpoint's, when a job carries on from it). A merged point
    reaching past it goes whole: the steps it averaged before the checkpoint are lost from the chart, at
    most one point's worth, and training refills the rest."""
    return [p for p in history if p["step"] <= step]
