"""The earnings chart's geometry: one bar per UTC day, scaled with integer arithmetic only (money
is never a float, and neither are the pixel heights derived from it). Templates draw the SVG."""

from __future__ import annotations

import dataclasses
import datetime as dt

from trickle import money

WIDTH = 720
HEIGHT = 240
LEFT = 80  # room for the amount labels of the y axis
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the date labels of the x axis
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    day: dt.date
    amount_minor: int
    amount: str  # for people: a decimal string in major units
    x: int
    y: int
    width: int
    height: int


@dataclasses.dataclass(frozen=True, slots=True)
class Label:
    x: int
    y: int
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_labels: list[Label]
    y_labels: list[Label]
    gridlines: list[int]  # y positions
    baseline_y: int
    max_minor: int


def bar_height(amount_minor: int, max_minor: int, plot_height: int = PLOT_HEIGHT) -> int:
    """Pixels for an amount: proportional to the largest, rounded down; a positive amount gets
    at least one pixel so that a small day never looks like an empty one."""
    if amount_minor <= 0 or max_minor <= 0:
        return 0
    return max(amount_minor * plot_height // max_minor, 1)


def build(days: list[tuple[dt.date, int]], scale: int) -> Chart:
    """A bar per entry of ``days`` (oldest first); negative amounts are drawn as zero."""
    count = max(len(days), 1)
    slot = PLOT_WIDTH // count
    gap = slot // 5  # a fifth of each slot stays empty between the bars
    baseline = TOP + PLOT_HEIGHT
    max_minor = max((amount for _, amount in days), default=0)
    bars = []
    for index, (day, amount) in enumerate(days):
        height = bar_height(amount, max_minor)
        bars.append(
            Bar(
                day=day,
                amount_minor=amount,
                amount=money.format_minor(amount, scale),
                x=LEFT + index * slot + gap // 2,
                y=baseline - height,
                width=max(slot - gap, 1),
                height=height,
            )
        )
    # Dates under the first, middle and last bars: more would collide on a phone.
    picks = sorted({0, (len(days) - 1) // 2, len(days) - 1}) if days else []
    x_labels = [
        Label(LEFT + i * slot + slot // 2, HEIGHT - 8, days[i][0].strftime("%b %d")) for i in picks
    ]
    quarters = [0, 1, 2, 3, 4]
    gridlines = [baseline - q * PLOT_HEIGHT // 4 for q in quarters]
    y_labels = [
        Label(LEFT - 6, y + 4, money.format_minor(q * max_minor // 4, scale))
        for q, y in zip(quarters, gridlines, strict=True)
        if q % 2 == 0
    ]
    return Chart(WIDTH, HEIGHT, bars, x_labels, y_labels, gridlines, baseline, max_minor)
