"""What a reproduction is: a grid of runs, the table its report shows, and the paper's claims it tests."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

SCALES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Run:
    """One training-and-evaluation run: its place under ``OUT/runs/``, the config overrides of its
    application, and the labels the report groups it by (``row``, ``column``, ``seed``)."""

    key: str
    config: dict
    row: str
    column: str
    seed: int
    app: str = "fewshot"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: row ``better`` beats row ``worse`` in ``column`` (or ``worse`` in
    ``worse_column``); the effect is their paired difference over seeds. ``paper`` is the paper's effect
    where its number is known, else None.

    ``per_unit`` pairs them over units within each run instead (e.g. the images both rows attacked): the
    results field holding one value per unit, restricted to the units where the boolean list
    ``units_where`` holds for both; ``lower_is_better`` overrides the plan's direction."""

    text: str
    better: str
    worse: str
    column: str
    paper: float | None = None
    worse_column: str | None = None
    per_unit: str | None = None
    units_where: str | None = None
    lower_is_better: bool | None = None


@dataclass
class Plan:
    """Everything an entry needs at one scale: runs, table layout, claims and what differs from the paper."""

    runs: list[Run]
    rows: list[str]
    columns: list[str]
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metric: str = "accuracy"  # the results field the table shows (few-shot: transductive-BN accuracy, %)
    lower_is_better: bool = False
    x_axis: str | None = None  # a figure: the columns are x values (numbers) along this axis
    published: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, column) -> published number


@dataclass(frozen=True)
class Entry:
    """A table or figure of the paper: ``plan(scale, seeds, data_root)`` builds its grid."""

    name: str
    title: str
    plan: Callable[[str, int, str | None], Plan]
