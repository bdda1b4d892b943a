"""A run's headline numbers as aligned lines with units, for a terminal (``wsolbench train`` and ``wsolbench
evaluate`` without ``--json``).

Names and units come from the metric table (:mod:`wsolbench.metrics.table`); stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsolbench.metrics.table import metric

#: The summary keys shown, in this order, where a summary has them.
SUMMARY_KEYS = ("top1", "mAP", "MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP", "mPxAP", "entropy", "entropy_norm",
                "threshold")


def format_value(key: str, value: Any) -> str:
    """``value`` of metric ``key`` with its unit: ``"41.67 %"``, ``"1.092 nats"``, ``"0.994"``; ``-`` for none."""
    if value is None or value != value:
        return "-"
    unit = metric(key).unit
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "nats":
        return f"{value:.3f} nats"
    if unit == "count":
        return f"{int(value)}"
    return f"{value:.3f}"


def summary_lines(title: str, columns: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``title``, a header naming the columns (e.g. ``val``, ``test``), then one line per key of
    :data:`SUMMARY_KEYS` that some column's summary has: the metric's name, then each column's value with its
    unit (``-`` where a column lacks it), right-aligned."""
    keys = [k for k in SUMMARY_KEYS if any(k in summary for summary in columns.values())]
    rows = [(metric(k).name, *(format_value(k, summary.get(k)) for summary in columns.values())) for k in keys]
    header = ("metric", *columns)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [title]
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))]
        lines.append("  ".join(cells).rstrip())
    return lines
