"""Loss curves as SVG polylines, computed in Python so templates only place them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LossChart:
    width: int
    height: int
    training: str  # SVG points
    validation: str
    y_max: float
    y_min: float


def loss_chart(history: list[dict], validation: list[dict], width: int = 640, height: int = 200) -> LossChart | None:
    losses = [h["loss"] for h in history]
    if not losses:
        return None
    val = [(v["epoch"], v["validation_loss"]) for v in validation]
    total = max(h.get("total_steps", len(history)) for h in history) or 1
    steps_per_epoch = total / max(1, max((h.get("epoch", 1) for h in history), default=1)) if history else 1
    values = losses + [v for _, v in val]
    y_max, y_min = max(values), min(values)
    span = (y_max - y_min) or 1.0

    def point(x: float, y: float) -> str:
        return f"{x / total * (width - 10) + 5:.1f},{height - 5 - (y - y_min) / span * (height - 10):.1f}"

    training = " ".join(point(h["step"], h["loss"]) for h in history)
    validation_points = " ".join(point(min(total, epoch * steps_per_epoch), loss) for epoch, loss in val)
    return LossChart(width, height, training, validation_points, y_max, y_min)
