"""Published numbers: what the literature reports for the methods this suite covers, each with its source.

``leaderboards/published/*.csv`` (in a source checkout), one number per row, columns :data:`COLUMNS`:
``dataset`` / ``backbone`` / ``method`` / ``objective`` in this suite's names (``backbone`` may be
``unstated``), ``metric`` a key of the metric table, ``value`` in percent, ``relative_to`` empty for an
absolute number or the method a printed difference is against (a table of deltas versus CAM), then
``source`` (paper or page), ``table``, ``metric_definition`` (the protocol as that source states it) and
``notes``. A leaderboard shows them beside runs of the same dataset and backbone, marked as published: the
protocols differ (thresholds, checkpoints, tuning budgets), so they are context, not competitors.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from wsolbench.errors import ConfigError, DataError
from wsolbench.metrics.table import metric

COLUMNS = ("dataset", "backbone", "method", "objective", "metric", "value", "relative_to", "source", "table",
           "metric_definition", "notes")
#: Columns every row fills.
REQUIRED = ("dataset", "backbone", "method", "objective", "metric", "value", "source", "table", "metric_definition")
#: ``backbone`` of a number whose source does not say.
UNSTATED = "unstated"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]*(\(.*\))?$")


def default_dir() -> Path:
    """``leaderboards/published`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "leaderboards" / "published"


def _check_row(row: dict[str, str], where: str) -> dict[str, Any]:
    for column in REQUIRED:
        if not row[column]:
            raise DataError(f"{where}: {column} is empty")
    for column in ("dataset", "backbone", "method"):
        if not _NAME.match(row[column]):
            raise DataError(f"{where}: {column} {row[column]!r} is not a lower-case name (this suite's names)")
    if row["relative_to"] and not _NAME.match(row["relative_to"]):
        raise DataError(f"{where}: relative_to {row['relative_to']!r} is not a method name")
    if not _LABEL.match(row["objective"]):
        raise DataError(f"{where}: objective {row['objective']!r} is not an objective label (e.g. ce)")
    try:
        metric(row["metric"])
    except ConfigError as exc:
        raise DataError(f"{where}: {exc}") from None
    try:
        value = float(row["value"])
    except ValueError:
        raise DataError(f"{where}: value {row['value']!r} is not a number") from None
    if not math.isfinite(value) or (not row["relative_to"] and not 0 <= value <= 100):
        raise DataError(f"{where}: value {value} is not a percentage")
    return {**row, "value": value}


def load_published_file(path: Path) -> list[dict[str, Any]]:
    """The rows of one CSV, checked; ``file`` and ``line`` added to each.

    Raises:
        DataError: unreadable file, other columns than :data:`COLUMNS`, or a bad row (file and line named).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"published numbers {path} cannot be read: {exc.strerror or exc}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise DataError(f"published numbers {path} line 1: the header must be {','.join(COLUMNS)}")
    rows = []
    for fields in reader:
        where = f"published numbers {path} line {reader.line_num}"
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(COLUMNS):
            raise DataError(f"{where}: {len(fields)} fields, expected {len(COLUMNS)}")
        row = _check_row({c: f.strip() for c, f in zip(COLUMNS, fields)}, where)
        rows.append({**row, "file": path.name, "line": reader.line_num})
    return rows


def load_published(folder: Path | None = None) -> pd.DataFrame:
    """Every ``*.csv`` of ``folder`` (default :func:`default_dir`) as one frame, columns :data:`COLUMNS` plus
    ``file`` and ``line``.

    Raises:
        DataError: no such folder, a bad file or row, or one number given twice (same dataset, backbone,
            method, objective, metric, relative_to and source).
    """
    folder = Path(folder) if folder is not None else default_dir()
    if not folder.is_dir():
        raise DataError(f"published numbers folder {folder} does not exist (it is in a source checkout: "
                        "leaderboards/published)")
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], str] = {}
    for path in sorted(folder.glob("*.csv")):
        for row in load_published_file(path):
            key = tuple(str(row[c]) for c in ("dataset", "backbone", "method", "objective", "metric", "relative_to",
                                              "source", "table", "notes"))
            if key in seen:
                raise DataError(f"published numbers {path} line {row['line']}: the same number as {seen[key]}")
            seen[key] = f"{path.name} line {row['line']}"
            rows.append(row)
    return pd.DataFrame(rows, columns=[*COLUMNS, "file", "line"])


def published_for(published: pd.DataFrame, dataset: Any, backbone: Any) -> pd.DataFrame:
    """The rows of one dataset with ``backbone`` (and those whose source states no backbone)."""
    mine = published["dataset"] == str(dataset)
    mine &= (published["backbone"] == str(backbone)) | (published["backbone"] == UNSTATED)
    return published[mine].reset_index(drop=True)
