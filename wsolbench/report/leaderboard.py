"""Leaderboards: one row per run record, as CSV and Markdown, never edited by hand.

Numbers are on the ``test`` split, in percent (entropy in nats and as H / log K);
GT-known Loc and Top-1 Loc use the CAM threshold chosen on ``val``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wsolbench._io import atomic_write_text

#: Column order of every leaderboard (columns no record has are dropped).
COLUMNS = (
    "name", "objective", "effective_smoothing", "loss_scale", "top1", "entropy", "entropy_norm",
    "MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2@30", "MaxBoxAccV2@50", "MaxBoxAccV2@70",
    "GT-known Loc", "Top-1 Loc", "threshold", "PxAP", "PIoU", "seed", "manifest", "config_hash", "code_version",
)
SORT_BY = ("MaxBoxAccV2", "PxAP", "top1")


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    objective = record.get("objective", {})
    return {
        **record["summary"],
        "effective_smoothing": objective.get("effective_smoothing"),
        "loss_scale": objective.get("applied_loss_scale"),
        "seed": record["config"].get("seed"),
        "manifest": (record.get("manifest") or {}).get("name"),
    }


def leaderboard_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame with one row per record, best first (by MaxBoxAccV2, then PxAP, then top-1)."""
    rows = [record_row(r) for r in records]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = frame[[c for c in COLUMNS if c in frame.columns]]
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
