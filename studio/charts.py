"""The job page's loss chart as SVG geometry, computed here so the template only places it.

x is the epoch (training points at each step's fractional epoch, validation points at epoch ends),
y the loss, on a linear scale with round tick values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from jobs.loss_history import weight


@dataclass
class Tick:
    position: float  # pixels along the axis
    label: str


@dataclass
class LossChart:
    width: int
    height: int
    left: int  # plot area, in pixels inside the SVG
    top: int
    right: int
    bottom: int
    training: str  # SVG polyline points
    validation: str
    validation_dots: list[tuple[float, float]] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    steps_per_point: int = 1  # a long run's stored history averages older steps (jobs/loss_history.py)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering low..high."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


def loss_chart(history: list[dict], validation: list[dict], width: int = 720, height: int = 240) -> LossChart | None:
    if not history:
        return None
    left, top, right, bottom = 44, 10, width - 12, height - 28
    train = [(float(h["epoch"]), float(h["loss"])) for h in history]
    val = [(float(v["epoch"]), float(v["validation_loss"])) for v in validation]
    # The x axis spans the whole run from the start, so a live chart fills in rather than rescaling.
    total_epochs = max([e for e, _ in train + val] + [_planned_epochs(history)])
    y_values = nice_ticks(0.0, max(v for _, v in train + val))
    y_top = y_values[-1] or 1.0

    def x(epoch: float) -> float:
        return left + epoch / total_epochs * (right - left)

    def y(loss: float) -> float:
        return bottom - loss / y_top * (bottom - top)

    def points(series: list[tuple[float, float]]) -> str:
        return " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in series)

    epoch_step = max(1, math.ceil(total_epochs / 10))
    x_ticks = [Tick(x(e), str(e)) for e in range(0, int(total_epochs) + 1, epoch_step)]
    return LossChart(
        width, height, left, top, right, bottom,
        training=points(train),
        validation=points(val),
        validation_dots=[(round(x(e), 1), round(y(v), 1)) for e, v in val],
        x_ticks=x_ticks,
        y_ticks=[Tick(y(v), _label(v)) for v in y_values],
        steps_per_point=max(weight(h) for h in history),
    )


def _planned_epochs(history: list[dict]) -> float:
    """Epochs the run will reach: from the last step's epoch and its share of the planned steps."""
    last = history[-1]
    if last.get("total_steps") and last.get("step"):
        return float(last["epoch"]) * last["total_steps"] / last["step"]
    return float(last["epoch"])


@dataclass
class Bar:
    x: float  # left edge, pixels
    y: float  # top edge
    width: float
    height: float
    title: str  # the bar's tooltip: its slot and value in words


@dataclass
class BarChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)


def bar_chart(labels: list[str], values: list[float], titles: list[str] | None = None, width: int = 720,
              height: int = 200, max_x_ticks: int = 8) -> BarChart | None:
    """One slot per label along x, a bar for each value above zero; None when every value is zero (the
    page shows its empty state instead)."""
    if not labels or not any(v > 0 for v in values):
        return None
    titles = titles or [f"{label}: {value:g}" for label, value in zip(labels, values)]
    left, top, right, bottom = 56, 10, width - 12, height - 28
    y_values = nice_ticks(0.0, max(values))
    y_top = y_values[-1] or 1.0
    slot = (right - left) / len(labels)
    bar_width = max(1.0, slot * 0.7)

    def y(value: float) -> float:
        return bottom - value / y_top * (bottom - top)

    bars = [Bar(round(left + i * slot + (slot - bar_width) / 2, 1), round(y(value), 1), round(bar_width, 1),
                round(bottom - y(value), 1), title)
            for i, (value, title) in enumerate(zip(values, titles)) if value > 0]
    tick_step = max(1, math.ceil(len(labels) / max_x_ticks))
    x_ticks = [Tick(round(left + (i + 0.5) * slot, 1), labels[i]) for i in range(0, len(labels), tick_step)]
    return BarChart(width, height, left, top, right, bottom, bars=bars, x_ticks=x_ticks,
                    y_ticks=[Tick(y(v), _compact(v)) for v in y_values])


def _compact(value: float) -> str:
    """Tick labels for counts: 950, 1.5k, 2M."""
    for divisor, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:g}{suffix}"
    return f"{value:g}"
