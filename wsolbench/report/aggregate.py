"""Seed aggregation: one leaderboard row per setting, each metric as mean, sample std and seed count.

A *setting* is one value of every experiment axis but the seed (:data:`SETTING`; the objective's label
carries its strength, the method's its parameters). Seeds of one setting are repeated measurements of it:
the mean is the setting's number, the sample standard deviation (``ddof=1``) says how much a single seed
moves it. Two runs of one setting with the same seed are refused: they differ in something outside the
axes (a ``--set`` of the schedule, say) and averaging them would mix two protocols.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from wsolbench.errors import DataError

#: The compared axes of a setting.
AXES = ("dataset", "backbone", "method", "objective", "cam")
#: The columns that make one setting (one row of the aggregated leaderboard): the axes, the protocol hash
#: (everything else of the config that changes the numbers: data sizes, schedule, evaluation conventions)
#: and the environment (torch version and device kind), so runs that cannot be compared never average.
SETTING = (*AXES, "protocol", "environment")
#: Per-setting descriptions kept from the setting's first run.
DESCRIPTIVE = ("method_name", "objective_name", "strength_name", "strength")
#: The protocol of a run: what must agree before two of its numbers are compared (manifest content hash,
#: CAM threshold step, evaluation resolution, Loc contours, IoU thresholds, CAM resize, the CAM's stage).
PROTOCOL = ("manifest_hash", "threshold_step", "resolution", "loc_contours", "iou_thresholds", "cam_resize",
            "cam_stage")
#: Numeric run columns that are not measurements (not averaged).
NOT_METRICS = ("seed", "strength", *PROTOCOL)
#: Text columns joined over the setting's runs (unique values, in run order): a protocol that differs inside
#: one setting shows as two values joined, never as an average.
JOINED = ("config_hash", "code_version", "manifest", "schedule", *PROTOCOL)
_SEED_SUFFIX = re.compile(r"-(s|seed)\d+$")


def _seed_int(value: Any) -> Any:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else value


def _merged_name(names: pd.Series) -> Any:
    """One name for the setting: the runs' common name, else their common name without a ``-s<seed>`` suffix,
    else the names joined with ``,``."""
    values = [str(n) for n in names.dropna()]
    if not values:
        return None
    for candidates in (values, [_SEED_SUFFIX.sub("", v) for v in values]):
        if len(set(candidates)) == 1:
            return candidates[0]
    return ",".join(dict.fromkeys(values))


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric columns of a runs frame that are averaged: every metric, test and ``val_``."""
    return [c for c in runs.columns if c not in (*SETTING, *NOT_METRICS)
            and pd.api.types.is_numeric_dtype(runs[c]) and not pd.api.types.is_bool_dtype(runs[c])]


def setting_key(row: pd.Series | dict[str, Any]) -> tuple[str, ...]:
    """The SETTING values of a row as strings ("" for a missing one): the key settings are matched by."""
    out = []
    for column in SETTING:
        value = row.get(column) if hasattr(row, "get") else None
        out.append("" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))
    return tuple(out)


def setting_label(row: pd.Series | dict[str, Any], *, with_cam: bool = False) -> str:
    """``adl(drop_rate=0.75) + kl_uniform(lam=0.3)``, and `` · <cam>`` with ``with_cam`` (when cams differ)."""
    values = dict(zip(SETTING, setting_key(row)))
    method, objective, _cam = values["method"], values["objective"], values["cam"]
    label = " + ".join(v for v in (method, objective) if v)
    return f"{label} · {_cam}" if with_cam and _cam else label


def aggregate_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: the SETTING columns, ``name``, ``method_name``, ``objective_name``,
    ``strength_name``, ``strength``, ``seeds`` (count), ``seed_list`` (``"0,1,2"``), and for every numeric
    metric column ``M`` of ``runs`` (test and ``val_``): ``M`` the mean over seeds and ``M_std`` the sample
    standard deviation (ddof=1; NaN for one seed); then the joined ``config_hash`` / ``code_version`` /
    ``manifest``. Rows in the order settings first appear in ``runs``.

    Raises:
        DataError: two runs of one setting have the same seed.
    """
    if runs.empty:
        return pd.DataFrame(columns=[*SETTING, "name", *DESCRIPTIVE, "seeds", "seed_list"])
    frame = runs.copy()
    for column in SETTING:
        if column not in frame.columns:
            frame[column] = ""
        frame[column] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                         for v in frame[column]]
    metrics = metric_columns(frame)
    rows = []
    for key, group in frame.groupby(list(SETTING), sort=False):
        seeds = [_seed_int(s) for s in group["seed"]] if "seed" in group.columns else [None] * len(group)
        known = [s for s in seeds if s is not None and s == s]
        if len(set(known)) < len(known):
            twice = sorted({s for s in known if known.count(s) > 1})
            dirs = group["run_dir"] if "run_dir" in group.columns else pd.Series(None, index=group.index)
            where = ", ".join(str(d) for d, s in zip(dirs, seeds) if s == twice[0] and pd.notna(d)) or "?"
            raise DataError(f"setting {' / '.join(k for k in key if k)} has {known.count(twice[0])} runs with "
                            f"seed {twice[0]} ({where}): they differ outside the axes; keep them in separate folders")
        first = group.iloc[0]
        row: dict[str, Any] = dict(zip(SETTING, key))
        row["name"] = _merged_name(group["name"]) if "name" in group.columns else None
        row.update({c: first.get(c) for c in DESCRIPTIVE if c in group.columns})
        row["seeds"] = len(group)
        row["seed_list"] = ",".join(str(s) for s in sorted(known))
        for column in metrics:
            values = pd.to_numeric(group[column], errors="coerce")
            row[column] = float(values.mean()) if values.notna().any() else math.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if values.notna().sum() > 1 else math.nan
        for column in JOINED:
            if column in group.columns:
                row[column] = ",".join(dict.fromkeys(str(v) for v in group[column].dropna())) or None
        rows.append(row)
    return pd.DataFrame(rows)
