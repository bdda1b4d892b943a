"""Leaderboards: one row per run record, as CSV and Markdown, never edited by hand.

Numbers are on the ``test`` split, in the units of the metric table
(:mod:`wsolbench.metrics.table`: percent, entropy in nats and as H / log K);
GT-known Loc and Top-1 Loc use the CAM threshold chosen on ``val``. The first
columns are the run's axes (dataset, backbone, method, objective, CAM extractor).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wsolbench._io import atomic_write_text
from wsolbench.metrics.table import METRICS

#: The experiment axes, first in every leaderboard.
AXES = ("dataset", "backbone", "method", "objective", "cam")
#: Column order of every leaderboard: axes, the objective's relation to label smoothing, every metric of the
#: metric table (fixed-threshold variants after their base), then provenance. Columns no record has are dropped.
COLUMNS = ("name", *AXES, "effective_smoothing", "loss_scale", *(m.key for m in METRICS),
           "seed", "manifest", "config_hash", "code_version")
SORT_BY = ("MaxBoxAccV2", "PxAP", "mPxAP", "top1", "mAP")


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    objective = record.get("objective", {})
    return {
        **record["summary"],
        "effective_smoothing": objective.get("effective_smoothing"),
        "loss_scale": objective.get("applied_loss_scale"),
        "seed": record["config"].get("seed"),
        "manifest": (record.get("manifest") or {}).get("name"),
    }


def _ordered(columns: Sequence[str]) -> list[str]:
    """``COLUMNS`` order; a variant ``<metric>@<x>`` goes right after its base metric."""
    order = {c: i for i, c in enumerate(COLUMNS)}

    def key(col: str) -> tuple[float, str]:
        if col in order:
            return (order[col], "")
        base = col.split("@", 1)[0]
        return (order[base] + 0.5, col) if base in order else (float("inf"), col)

    return sorted(columns, key=key)


def leaderboard_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame with one row per record, best first (by MaxBoxAccV2, then PxAP, then top-1)."""
    rows = [record_row(r) for r in records]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    known = {c for c in frame.columns if c in COLUMNS or c.split("@", 1)[0] in COLUMNS}
    frame = frame[_ordered([c for c in frame.columns if c in known])]
    keys = [c for c in SORT_BY if c in frame.columns]
    if keys:
        frame = frame.sort_values(keys, ascending=False, kind="stable")
    return frame.reset_index(drop=True)


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            digits = 4 if col in ("entropy", "entropy_norm", "effective_smoothing", "loss_scale", "threshold") else 2
            out[col] = out[col].round(digits)
    return out


def write_leaderboard(frame: pd.DataFrame, output_dir: Path, *, command: str | None = None) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` atomically; returns their paths."""
    output_dir = Path(output_dir)
    table = _rounded(frame)
    csv_path = atomic_write_text(output_dir / "leaderboard.csv", table.to_csv(index=False))
    lines = ["# wsolbench leaderboard", ""]
    if command:
        lines += [f"Made by: `{command}`", ""]
    lines += ["Test split; percent. GT-known Loc and Top-1 Loc at the CAM threshold chosen on val "
              "(IoU 0.5, largest contour); MaxBoxAcc/MaxBoxAccV2 best over thresholds (Choe et al., CVPR 2020); "
              "entropy_norm = mean H(p) / log K.", "", table.to_markdown(index=False), ""]
    md_path = atomic_write_text(output_dir / "leaderboard.md", "\n".join(lines))
    return csv_path, md_path
