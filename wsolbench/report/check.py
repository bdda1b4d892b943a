"""The regression check: today's aggregated leaderboard against a committed baseline, metric by metric.

Rows are matched by setting (:data:`KEY`: dataset, backbone, method, objective with its strength, CAM
extractor, and the list of seeds). For each metric of each baseline row the verdict is

- ``pass``: the current mean is within the tolerance below the baseline (or equal);
- ``better``: above the baseline by more than the tolerance (passes, and says so);
- ``worse``: below the baseline by more than the tolerance (fails);
- ``missing``: the baseline row has no current row, or the current row lacks the metric (fails).

Rows of the current runs that the baseline does not have are reported as ``new`` and pass. Every metric of
the metric table is higher-is-better except those it marks otherwise; for a lower-is-better metric the
signs flip.

Tolerance, in points of the metric, per (row, metric): a ``--tolerance METRIC=X`` given by the user;
otherwise, when the baseline row has two or more seeds, ``max(FLOOR, 3 * sqrt(2) * std / sqrt(n))``: three
standard errors of a difference of two means of ``n`` seeds each with the baseline's seed spread ``std``;
otherwise (one seed) :data:`FIXED` points. A metric read at the CAM threshold chosen on val (GT-known Loc,
Top-1 Loc) is tolerated at least the change one threshold step makes on test (its ``<metric>_step`` column,
the larger of the baseline's and the current run's, mean over seeds): the choice is discrete, and float
differences between machines move it by a step now and then (:func:`wsolbench.report.leaderboard.threshold_steps`).

A baseline made under another protocol is refused before anything is compared: the columns of
:data:`PROTOCOL` (manifest hash, CAM thresholds, evaluation resolution, contours, IoU thresholds, CAM
resize, the extractor's target stage) must agree for every matched row; the error names the first
difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pandas as pd

from wsolbench._io import atomic_write_text
from wsolbench.errors import ConfigError
from wsolbench.metrics.table import METRICS
from wsolbench.report.aggregate import AXES, PROTOCOL as CONVENTIONS

#: Columns that identify a row: the compared axes and the seeds.
KEY = (*AXES, "seed_list")
#: Columns that must agree between a baseline row and the current row for the comparison to mean anything:
#: the evaluation conventions by name, then the protocol hash (data sizes, schedule, model settings).
PROTOCOL = (*CONVENTIONS, "protocol")
#: The metrics checked unless ``--metrics`` says otherwise (those a row has).
DEFAULT_METRICS = ("top1", "MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP", "mPxAP", "mAP")
#: Tolerance (points) for a one-seed baseline row, and the least tolerance from a seed spread.
FIXED = 1.0
FLOOR = 0.25
_LOWER_IS_BETTER = {m.key for m in METRICS if not m.higher_is_better}


@dataclass(frozen=True)
class Verdict:
    setting: str  # a readable label of the row
    key: tuple[str, ...]
    metric: str
    baseline: float
    current: float
    tolerance: float
    verdict: str  # pass | better | worse | missing | new

    @property
    def diff(self) -> float:
        return self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.verdict in ("worse", "missing")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(_text(row.get(c)) for c in KEY)


def _label(key: tuple[str, ...]) -> str:
    dataset, backbone, method, objective, cam, seeds = key
    return f"{dataset}/{backbone} {method} + {objective} [{cam}] seeds {seeds or '-'}"


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def tolerance_for(row: Mapping[str, Any], metric: str, given: Mapping[str, float],
                  current: Mapping[str, Any] | None = None) -> float:
    """The tolerance rule of the module docstring (``row`` the baseline's, ``current`` the matched current row)."""
    if metric in given:
        return float(given[metric])
    n = _number(row.get("seeds"))
    std = _number(row.get(f"{metric}_std"))
    rule = max(FLOOR, 3 * math.sqrt(2) * std / math.sqrt(n)) if n >= 2 and math.isfinite(std) else FIXED
    steps = [_number(side.get(f"{metric}_step")) for side in (row, current or {})]
    return max([rule, *(s for s in steps if math.isfinite(s))])


def check_protocol(baseline: pd.DataFrame, current: pd.DataFrame, source: str = "baseline") -> None:
    """ConfigError naming the first protocol difference between matched rows (or a protocol column one side
    lacks while the other has it)."""
    for column in PROTOCOL:
        if (column in baseline.columns) != (column in current.columns):
            side = "the current runs" if column in baseline.columns else source
            raise ConfigError(f"{source}: protocol column {column!r} is missing from {side}; it was made by "
                              "another wsolbench version: regenerate it (wsolbench check --update)")
    current_rows = {row_key(r): r for r in current.to_dict("records")}
    for b in baseline.to_dict("records"):
        c = current_rows.get(row_key(b))
        if c is None:
            continue
        for column in PROTOCOL:
            if column in baseline.columns and _text(b.get(column)) != _text(c.get(column)):
                raise ConfigError(f"{source} was made with another protocol: {column} is {_text(b.get(column))!r} "
                                  f"there and {_text(c.get(column))!r} here ({_label(row_key(b))}); not compared")


def compare(baseline: pd.DataFrame, current: pd.DataFrame, *, metrics: Sequence[str] | None = None,
            tolerances: Mapping[str, float] | None = None, source: str = "baseline") -> list[Verdict]:
    """Every (baseline row, metric) verdict, then the current rows the baseline lacks (``new``)."""
    check_protocol(baseline, current, source)
    tolerances = dict(tolerances or {})
    unknown = sorted(set(tolerances) - {m.key for m in METRICS})
    if unknown:
        raise ConfigError(f"--tolerance: unknown metric {unknown[0]!r}")
    current_rows = {row_key(r): r for r in current.to_dict("records")}
    verdicts = []
    for b in baseline.to_dict("records"):
        key = row_key(b)
        c = current_rows.get(key)
        names = [m for m in (metrics or DEFAULT_METRICS) if math.isfinite(_number(b.get(m)))]
        if metrics:
            missing = [m for m in metrics if m not in baseline.columns]
            if missing:
                raise ConfigError(f"{source} has no column {missing[0]!r} (--metrics)")
        for metric in names:
            base = _number(b.get(metric))
            tol = tolerance_for(b, metric, tolerances, c)
            now = _number(c.get(metric)) if c is not None else math.nan
            if not math.isfinite(now):
                verdict = "missing"
            else:
                gain = (now - base) * (-1 if metric in _LOWER_IS_BETTER else 1)
                verdict = "worse" if gain < -tol else "better" if gain > tol else "pass"
            verdicts.append(Verdict(_label(key), key, metric, base, now, tol, verdict))
    known = {row_key(b) for b in baseline.to_dict("records")}
    for key, c in current_rows.items():
        if key not in known:
            verdicts.append(Verdict(_label(key), key, "-", math.nan, math.nan, math.nan, "new"))
    return verdicts


def parse_tolerances(items: Iterable[str]) -> dict[str, float]:
    """``["MaxBoxAccV2=1.0", ...]`` -> ``{"MaxBoxAccV2": 1.0}``; ConfigError on a malformed item."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            tol = float(value)
        except ValueError:
            tol = math.nan
        if not sep or not name.strip() or not math.isfinite(tol) or tol < 0:
            raise ConfigError(f"--tolerance {item!r}: expected METRIC=POINTS with POINTS >= 0, e.g. MaxBoxAccV2=1.0")
        out[name.strip()] = tol
    return out


def verdict_frame(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": v.setting, "metric": v.metric, "baseline": v.baseline, "current": v.current,
                          "diff": v.diff, "tolerance": v.tolerance, "verdict": v.verdict} for v in verdicts],
                        columns=["setting", "metric", "baseline", "current", "diff", "tolerance", "verdict"])


def write_junit(verdicts: Sequence[Verdict], path: Path, *, suite: str = "wsolbench check") -> Path:
    """JUnit XML: one test case per (row, metric); ``worse`` and ``missing`` are failures."""
    cases = [v for v in verdicts if v.verdict != "new"]
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                         failures=str(sum(v.failed for v in cases)), errors="0", skipped="0")
    for v in cases:
        case = ET.SubElement(node, "testcase", classname=v.setting, name=v.metric)
        message = (f"{v.metric}: baseline {v.baseline:.2f}, current {v.current:.2f}, diff {v.diff:+.2f}, "
                   f"tolerance {v.tolerance:.2f}")
        if v.verdict == "missing":
            ET.SubElement(case, "failure", message=f"{v.metric}: no current result (baseline {v.baseline:.2f})",
                          type="missing")
        elif v.verdict == "worse":
            ET.SubElement(case, "failure", message=message, type="regression")
        else:
            ET.SubElement(case, "system-out").text = f"{v.verdict}: {message}"
    ET.indent(root)
    return atomic_write_text(Path(path), ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")


def read_baseline(path: Path) -> pd.DataFrame:
    """A baseline CSV (an aggregated leaderboard.csv, or one ``--update`` wrote); DataError naming the file
    when it cannot be read or lacks the key columns."""
    from wsolbench.errors import DataError

    try:
        frame = pd.read_csv(path, keep_default_na=True)
    except FileNotFoundError:
        raise DataError(f"baseline {path} does not exist (make one with wsolbench check --update)") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"baseline {path} cannot be read: {exc}") from None
    missing = [c for c in KEY if c not in frame.columns]
    if missing:
        raise DataError(f"baseline {path}: no column {missing[0]!r}; it is not an aggregated leaderboard "
                        "(leaderboard.csv of wsolbench bench / leaderboard, or wsolbench check --update)")
    return frame


def write_baseline(agg: pd.DataFrame, path: Path) -> Path:
    """The aggregated leaderboard as a baseline CSV (floats to 4 decimals), atomically."""
    out = agg.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(4)
    return atomic_write_text(Path(path), out.to_csv(index=False))
