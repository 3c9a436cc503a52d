"""The result rows, and how they render: the console table, markdown and JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

STATUSES = ("pass", "fail", "info", "n/a")
HEADERS = ("figure", "ours", "anchor or limit", "ratio", "target", "result")


@dataclasses.dataclass
class Row:
    """One line of the result table.

    ``ours`` and ``anchor`` are in ``unit``; ``anchor_name`` says what the anchor column holds
    (an Airflow operator, a practical limit measured in the same run, or an ideal count);
    ``ratio`` is ours / anchor; ``status`` is ``pass``/``fail`` against ``target``, ``info`` for a
    figure without a target, ``n/a`` when it could not be measured (``note`` says why).
    """

    benchmark: str
    figure: str
    ours: float | None
    anchor: float | None
    unit: str
    anchor_name: str
    target: str
    status: str
    ratio: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if self.ratio is None:
            self.ratio = ratio(self.ours, self.anchor)


def ratio(ours: float | None, anchor: float | None) -> float | None:
    """``ours / anchor``, or None when either is missing or the anchor is 0."""
    if ours is None or anchor is None or anchor == 0:
        return None
    return ours / anchor


def fmt_value(value: float | None, unit: str) -> str:
    """A number with its unit, 3 significant digits (whole numbers for counts)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:,.0f}" if unit in ("req", "B") or abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}"


def fmt_ratio(value: float | None) -> str:
    """``0.0312x``-style ratio."""
    return "n/a" if value is None else f"{value:.3g}x"


def cells(row: Row) -> list[str]:
    """The table cells of one row."""
    anchor = fmt_value(row.anchor, row.unit)
    if row.anchor_name and row.anchor is not None:
        anchor += f" ({row.anchor_name})"
    return [row.figure, fmt_value(row.ours, row.unit), anchor, fmt_ratio(row.ratio), row.target, row.status.upper()]


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width console table, then the notes numbered below it."""
    body = [cells(row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)), "  ".join("-" * w for w in widths)]
    notes = []
    for row, line in zip(rows, body, strict=True):
        mark = ""
        if row.note:
            notes.append(row.note)
            mark = f" [{len(notes)}]"
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + mark)
    lines += [""] + [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"


def markdown_table(rows: Sequence[Row]) -> str:
    """A markdown table with a notes column."""
    lines = ["| " + " | ".join((*HEADERS, "notes")) + " |", "|" + "---|" * (len(HEADERS) + 1)]
    for row in rows:
        values = [*cells(row), row.note]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    return "\n".join(lines) + "\n"


def json_document(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    """The rows (raw numbers) and run metadata as JSON."""
    return json.dumps({"meta": meta, "rows": [row.__dict__ for row in rows]}, indent=2) + "\n"
