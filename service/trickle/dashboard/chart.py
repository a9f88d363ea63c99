"""The earnings chart's geometry: one bar per UTC day under a y axis of round amounts ("nice
numbers": 0, 0.02, 0.04, 0.06), all in integers (money is never a float, and neither are the
pixel heights or tick values derived from it). Templates draw it: the bars and gridlines as an
SVG stretched to the page's width, the axis labels as HTML text beside and under it, so that they
keep their size at any width."""

from __future__ import annotations

import dataclasses
import datetime as dt

from trickle import money

WIDTH = 720  # the SVG's own units across; it is stretched to the width of the page
HEIGHT = 200  # ... and down: the same as its CSS height in pixels (dashboard.css), never scaled
LABEL_LINE = 20  # the CSS line height of a y-axis label: the plot keeps half of it free above
TOP = LABEL_LINE // 2  # the top gridline, level with the top label's middle
BASELINE = HEIGHT - LABEL_LINE // 2  # the zero line, level with the bottom label's middle
PLOT_HEIGHT = BASELINE - TOP
MAX_INTERVALS = 4  # at most five labels on the y axis: room for them on a phone
NICE_MULTIPLES = (1, 2, 5)


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
class Axis:
    """The y axis: ``ticks`` minor units from 0 to ``top_minor``, ``step_minor`` apart."""

    step_minor: int
    ticks: list[int]

    @property
    def top_minor(self) -> int:
        return self.ticks[-1]


@dataclasses.dataclass(frozen=True, slots=True)
class XLabel:
    place: str  # "first", "middle" or "last": where under the plot (dashboard.css)
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    gridlines: list[int]  # y positions, top first
    y_labels: list[str]  # top first, one per gridline
    x_labels: list[XLabel]
    axis: Axis
    max_minor: int


def nice_step(max_minor: int, scale: int) -> int:
    """The smallest step of 1, 2 or 5 times a power of ten minor units with which at most
    ``MAX_INTERVALS`` intervals reach ``max_minor``; for nothing at all, 0.01 in major units (or
    the smallest unit when the scale has fewer digits)."""
    if max_minor <= 0:
        return int(10 ** max(scale - 2, 0))
    wanted = -(-max_minor // MAX_INTERVALS)  # ceil: the smallest step that would do
    power = 1
    while True:
        for multiple in NICE_MULTIPLES:
            if multiple * power >= wanted:
                return multiple * power
        power *= 10


def axis(max_minor: int, scale: int) -> Axis:
    step = nice_step(max_minor, scale)
    intervals = max(-(-max_minor // step), 1)
    return Axis(step, [step * i for i in range(intervals + 1)])


def tick_label(amount_minor: int, scale: int) -> str:
    """A tick's amount in major units with no more digits than it has: ``0``, ``0.02``,
    ``1.5``, ``20``. Exact: the digits of the integer, never a float."""
    whole, fraction = divmod(amount_minor, 10**scale)
    digits = f"{fraction:0{scale}d}".rstrip("0") if scale else ""
    return f"{whole}.{digits}" if digits else str(whole)


def bar_height(amount_minor: int, top_minor: int, plot_height: int = PLOT_HEIGHT) -> int:
    """Pixels for an amount: proportional to the axis's top, rounded down; a positive amount gets
    at least one pixel so that a small day never looks like an empty one."""
    if amount_minor <= 0 or top_minor <= 0:
        return 0
    return max(min(amount_minor, top_minor) * plot_height // top_minor, 1)


def build(days: list[tuple[dt.date, int]], scale: int) -> Chart:
    """A bar per entry of ``days`` (oldest first); negative amounts are drawn as zero."""
    count = max(len(days), 1)
    slot = WIDTH // count
    gap = slot // 5  # a fifth of each slot stays empty between the bars
    max_minor = max((amount for _, amount in days), default=0)
    scale_axis = axis(max_minor, scale)
    bars = []
    for index, (day, amount) in enumerate(days):
        height = bar_height(amount, scale_axis.top_minor)
        bars.append(
            Bar(
                day=day,
                amount_minor=amount,
                amount=money.format_minor(amount, scale),
                x=index * slot + gap // 2,
                y=BASELINE - height,
                width=max(slot - gap, 1),
                height=height,
            )
        )
    intervals = len(scale_axis.ticks) - 1
    gridlines = [TOP + i * PLOT_HEIGHT // intervals for i in range(intervals + 1)]
    y_labels = [tick_label(tick, scale) for tick in reversed(scale_axis.ticks)]
    # Dates under the first, middle and last bars: more would collide on a phone.
    x_labels: list[XLabel] = []
    shown: set[int] = set()
    last = len(days) - 1
    for place, index in (("first", 0), ("middle", last // 2), ("last", last)):
        if days and index not in shown:
            shown.add(index)
            x_labels.append(XLabel(place, days[index][0].strftime("%b %d")))
    return Chart(WIDTH, HEIGHT, bars, gridlines, y_labels, x_labels, scale_axis, max_minor)
