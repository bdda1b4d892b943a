"""The leaderboard on a terminal: the tables of ``leaderboard.md``, narrowed to fit the console.

Each (dataset, backbone, protocol) group is printed as :func:`~wsolbench.report.leaderboard.compact_table`
when it fits the console's width. When it does not (an 80-column terminal), the group is printed as
:func:`narrow_table`, the widest of its variants that fits: the sort metric as ``mean ± std``, the other
localization metrics as means, classification top-1 and H / log K as means, the Δ with its interval on a
second line, one decimal for percent; the method goes into the title when every row has the same one.
Columns left out are named under the table; every column stays in ``leaderboard.md`` and ``leaderboard.csv``.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from wsolbench.report.aggregate import setting_label
from wsolbench.report.leaderboard import COMPACT_METRICS, compact_table, delta_metric, groups_of, with_units

#: Width of the console when output is not a terminal and ``COLUMNS`` is unset (a log, a pipe).
PIPE_WIDTH = 160


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _has(group: pd.DataFrame, key: str) -> bool:
    return key in group.columns and pd.to_numeric(group[key], errors="coerce").notna().any()


def _number(value: Any, digits: int, *, sign: bool = False) -> str:
    if _missing(value):
        return "-"
    value = round(float(value), digits) + 0.0  # no "-0.0"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _delta(row: pd.Series, key: str) -> str:
    """``-1.4 *`` over ``[-2.5, -0.2]`` (``*``: the interval excludes zero); ``baseline`` for the baseline."""
    if bool(row.get("is_baseline", False)):
        return "baseline"
    diff, low, high = (row.get(f"{key}_{part}") for part in ("diff", "low", "high"))
    if _missing(diff):
        return "-"
    if _missing(low) or _missing(high):
        return _number(diff, 1, sign=True)
    mark = " *" if (low > 0 or high < 0) else ""
    text = f"{_number(diff, 1, sign=True)}{mark}\n[{_number(low, 1, sign=True)}, {_number(high, 1, sign=True)}]"
    compared = row.get("interval_seeds")
    if isinstance(compared, str) and compared != str(row.get("seed_list")):
        text += f"\n(seeds {compared})"
    return text


def _folded(label: str, width: int = 18) -> str:
    """A setting label on short lines: ``method(...)`` and ``+ objective(...)`` on lines of their own, a part
    longer than ``width`` with its parameters on the next line."""
    parts = [p.replace("(", "\n(", 1) if len(p) > width else p for p in label.split(" + ")]
    return "\n+ ".join(parts)


def shared_method(group: pd.DataFrame) -> str | None:
    """The method every row of ``group`` has, when they all have the same one (it then goes into the title)."""
    methods = {str(m) for m in group["method"]} if "method" in group.columns else set()
    return methods.pop() if len(methods) == 1 and "" not in methods else None


def narrow_table(group: pd.DataFrame, *, sort_by: str = "MaxBoxAccV2", baseline: str | None = None,
                 others: bool = True) -> pd.DataFrame:
    """One group as short display strings with units in the headers: setting (without the method when
    :func:`shared_method`; a long label's parameters on a second line), top-1 % (mAP % for multi-label), the Δ metric ``mean ± std`` and, with
    ``others``, the other localization metrics of the compact table as means; ``Δ ... (points)`` with its
    interval on a second line, ``H/log K``, ``seeds``."""
    method = shared_method(group)
    with_cam = "cam" in group.columns and group["cam"].nunique(dropna=False) > 1
    cls_key = "mAP" if _has(group, "mAP") else "top1"
    locs = [k for k in COMPACT_METRICS if _has(group, k)]
    if _has(group, "mPxAP"):
        locs = [k for k in locs if k != "PxAP"] + ["mPxAP"]
    key = delta_metric(group, sort_by)
    main = key if key in locs else (sort_by if sort_by in locs else (locs[0] if locs else None))
    shown = [main] + ([k for k in locs if k != main] if others else []) if main else []
    rows = []
    for _, row in group.iterrows():
        label = setting_label(row, with_cam=with_cam)
        if method and label.startswith(f"{method} + "):
            label = label[len(method) + 3:]
        cells = {"setting": _folded(label)}
        if _has(group, cls_key):
            cells[f"{'top-1' if cls_key == 'top1' else 'mAP'} %"] = _number(row.get(cls_key), 1)
        for k in shown:
            mean, std = row.get(k), row.get(f"{k}_std")
            cells[f"{k} %"] = _number(mean, 1) + ("" if _missing(std) or k != main else f" ± {_number(std, 1)}")
        if key is not None:
            cells[f"Δ {key} vs {baseline or 'baseline'} (points)"] = _delta(row, key)
        if _has(group, "entropy_norm"):
            cells["H/log K"] = _number(row.get("entropy_norm"), 2)
        if "seeds" in group.columns:
            cells["seeds"] = "-" if _missing(row["seeds"]) else str(int(row["seeds"]))
        rows.append(cells)
    return pd.DataFrame(rows)


def _rich_table(shown: pd.DataFrame, title: str, *, narrow: bool) -> Any:
    from rich import box
    from rich.table import Table

    options = dict(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False) if narrow else {}
    table = Table(title=title, **options)
    for col in shown.columns:
        table.add_column(col, justify="left" if col == "setting" else "right",
                         overflow="fold" if col == "setting" else "ellipsis")
    for _, row in shown.iterrows():
        table.add_row(*[str(v) for v in row])
    return table


def _fits(console: Any, table: Any) -> bool:
    from rich.measure import Measurement

    unbounded = console.options.update_width(10**6)  # the width the table wants, not what the console allows
    return Measurement.get(console, unbounded, table).maximum <= console.width


def console_for_tables() -> Any:
    """A rich console on stdout: the terminal's width, else ``COLUMNS`` when set, else :data:`PIPE_WIDTH`."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=PIPE_WIDTH)
    return console


def print_leaderboard(frame: pd.DataFrame, *, sort_by: str = "MaxBoxAccV2", baseline: str | None = "ce",
                      console: Any = None) -> None:
    """Every group of the aggregated leaderboard ``frame`` on ``console`` (:func:`console_for_tables` by
    default): the compact table when it fits, else the widest :func:`narrow_table` that does, and a line
    naming the columns left out."""
    console = console or console_for_tables()
    for title, rows in groups_of(frame):
        full = with_units(compact_table(rows, sort_by=sort_by, baseline=baseline))
        heading = f"wsolbench leaderboard {title}".strip()
        table = _rich_table(full, f"{heading} (test split, mean ± std over seeds)", narrow=False)
        if _fits(console, table):
            console.print(table)
            continue
        method = shared_method(rows)
        narrow_heading = f"{heading} · method {method}" if method else heading
        for others in (True, False):
            shown = narrow_table(rows, sort_by=sort_by, baseline=baseline, others=others)
            table = _rich_table(shown, f"{narrow_heading} (test split)", narrow=True)
            if _fits(console, table):
                break
        console.print(table)
        left = [c for c in full.columns if c not in shown.columns and c not in ("setting",)]
        note = f"narrowed to {console.width} columns: one decimal, ± a std over seeds"
        if left:
            note += f"; left out: {', '.join(left)}"
        console.print(f"{note} (every column: leaderboard.md, leaderboard.csv)", markup=False, highlight=False,
                      soft_wrap=False)
