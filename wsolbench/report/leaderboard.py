"""Leaderboards, never edited by hand: one row per run, one row per setting, and their files.

Numbers are on the ``test`` split (``val_<metric>`` columns: the same metrics on
``val``), in the units of the metric table (:mod:`wsolbench.metrics.table`: percent,
entropy in nats and as H / log K); GT-known Loc and Top-1 Loc use the CAM threshold
chosen on ``val``. :func:`runs_frame` has one row per run record;
:func:`leaderboard_frame` aggregates it over seeds (:mod:`wsolbench.report.aggregate`),
adds the paired intervals against a baseline (:mod:`wsolbench.report.significance`)
and sorts it. :func:`write_leaderboard` writes the aggregated frame as
``leaderboard.csv`` (every column) and ``leaderboard.md`` (a compact table per
dataset and backbone); :func:`write_runs` writes ``runs.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wsolbench._io import atomic_write_text
from wsolbench.config.sections import protocol_payload, stable_hash
from wsolbench.errors import ConfigError, DataError
from wsolbench.metrics.table import METRICS, metric
from wsolbench.records import find_records, load_record
from wsolbench.report.aggregate import PROTOCOL, SETTING, aggregate_seeds, setting_label
from wsolbench.report.published import published_for
from wsolbench.report.significance import INTERVAL_METRICS, compare_to_baseline, parse_baseline

#: The experiment axes, first in every leaderboard.
AXES = SETTING
#: Bare class names and the objective's strength (derived from the labels for records that lack them).
NAMES = ("method_name", "objective_name", "strength_name", "strength")
#: Metrics read at the CAM threshold chosen on val, with the test curve they are read from (records' boxes
#: ``curves``): their ``<metric>_step`` column is the largest change one threshold step either way makes.
STEP_METRICS = {"GT-known Loc": "gt_known", "Top-1 Loc": "top1"}
#: Provenance, last in every leaderboard.
PROVENANCE = ("seed", "seconds", "manifest", "schedule", "protocol", "environment", "config_hash", "code_version",
              "run_dir")
#: Column order of the per-run frame: name, axes, names, the objective's relation to label smoothing, every
#: metric of the metric table (fixed-threshold variants after their base), the same on val, provenance.
COLUMNS = ("name", *AXES, *NAMES, "effective_smoothing", "loss_scale", *(m.key for m in METRICS),
           *(f"val_{m.key}" for m in METRICS), *(f"{m}_step" for m in STEP_METRICS), *PROTOCOL, *PROVENANCE)
#: Facts of a run's protocol a group title names when they differ between groups.
PROTOCOL_DETAILS = ("manifest", "images", "schedule", "threshold_step", "resolution", "loc_contours", "cam_stage")
#: Tie-breakers after the chosen sort metric.
SORT_BY = ("MaxBoxAccV2", "PxAP", "mPxAP", "top1", "mAP")
#: The localization metrics of the compact table, in order (mPxAP replaces PxAP where a dataset has it).
COMPACT_METRICS = ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP")
_FOUR_DIGITS = ("entropy", "entropy_norm", "effective_smoothing", "loss_scale", "threshold", "strength")


# ---------------------------------------------------------------- one row per run


def _label_name(label: Any) -> str | None:
    return str(label).split("(", 1)[0] if isinstance(label, str) and label else None


def _derived_strength(record: dict[str, Any], label: Any) -> tuple[str | None, float | None]:
    """The strength of a record made before ``strength_name`` was written: the first ``key=`` of the objective
    label (labels show the strength first), its value from the objective's parameters."""
    if not isinstance(label, str) or "(" not in label:
        return None, None
    key = label.split("(", 1)[1].split(",", 1)[0].split("=", 1)[0].strip()
    params = (record.get("objective") or {}).get("params") or {}
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, None
    return key, float(value)


def protocol_of(record: dict[str, Any]) -> dict[str, Any]:
    """The :data:`~wsolbench.report.aggregate.PROTOCOL` columns of a record (None where it does not say)."""
    conventions = (record.get("selection") or {}).get("conventions") or {}
    evaluation = (record.get("config") or {}).get("eval") or {}
    ious = evaluation.get("iou_thresholds")
    return {"manifest_hash": (record.get("manifest") or {}).get("hash"),
            "threshold_step": conventions.get("threshold_step", evaluation.get("threshold_step")),
            "resolution": conventions.get("resolution", evaluation.get("resolution")),
            "loc_contours": conventions.get("loc_contours", evaluation.get("loc_contours")),
            "iou_thresholds": "+".join(str(i) for i in ious) if ious else None,
            "cam_resize": conventions.get("cam_resize", evaluation.get("cam_resize")),
            "cam_stage": conventions.get("cam_stage", evaluation.get("cam_stage"))}


def record_row(record: dict[str, Any], run_dir: Path | str | None = None) -> dict[str, Any]:
    """One run as a flat dict: the summary (axes, test metrics unprefixed), names and strength, ``val_<metric>``,
    the objective's effective smoothing and loss scale, seed, seconds, manifest name, and ``run_dir`` (str or
    None: where the per-image outcomes are)."""
    summary = record["summary"]
    objective = record.get("objective") or {}
    row: dict[str, Any] = dict(summary)
    row.setdefault("method", (record.get("method") or {}).get("label"))
    row.setdefault("objective", objective.get("label"))
    if row.get("method_name") is None:
        row["method_name"] = (record.get("method") or {}).get("name") or _label_name(row.get("method"))
    if row.get("objective_name") is None:
        row["objective_name"] = objective.get("name") or _label_name(row.get("objective"))
    if "strength_name" not in summary:
        row["strength_name"], row["strength"] = _derived_strength(record, row.get("objective"))
    row["effective_smoothing"] = objective.get("effective_smoothing")
    row["loss_scale"] = objective.get("applied_loss_scale")
    row["seed"] = summary.get("seed", (record.get("config") or {}).get("seed"))
    row["seconds"] = (record.get("timings") or {}).get("total")
    row["manifest"] = (record.get("manifest") or {}).get("name")
    val = ((record.get("val") or {}).get("summary")) or {}
    row.update({f"val_{k}": v for k, v in val.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    row["run_dir"] = None if run_dir is None else str(run_dir)
    row.update(protocol_of(record))
    if not row.get("protocol"):  # records made before the summary carried it: the same hash from the config
        row["protocol"] = stable_hash(protocol_payload(record.get("config") or {}))
    row["environment"] = environment_of(record)
    optim = (record.get("config") or {}).get("optim") or {}
    batch = ((record.get("config") or {}).get("data") or {}).get("batch_size")
    row["schedule"] = f"{optim.get('epochs', '?')} epochs, lr {optim.get('lr', '?')}, batch {batch or '?'}"
    row.update(threshold_steps(record))
    return row


def threshold_steps(record: dict[str, Any]) -> dict[str, float]:
    """``{"GT-known Loc_step": x, ...}``: for each metric read at the val-chosen CAM threshold, the largest
    change on test when that threshold moves one step down or up (0 at an end of the range). The choice is
    discrete, so a float difference that moves it one step (another CPU's kernels: seen moving a smoke run's
    threshold 0.14 -> 0.16, 3.1 points of GT-known Loc, with every threshold-free metric within 0.3) moves the
    metric by this much; :mod:`wsolbench.report.check` tolerates it. Empty when the record has no curves or
    threshold index (a fixed threshold, or older records)."""
    selection = (record.get("selection") or {}).get("threshold") or {}
    conventions = (record.get("selection") or {}).get("conventions") or {}
    curves = (((record.get("test") or {}).get("boxes")) or {}).get("curves") or {}
    index = selection.get("index")
    if not isinstance(index, int) or conventions.get("fixed_threshold") is not None:
        return {}
    contours = conventions.get("loc_contours", "largest")
    iou = str(conventions.get("loc_iou", 50))
    out = {}
    for name, curve_name in STEP_METRICS.items():
        curve = ((curves.get(curve_name) or {}).get(contours) or {}).get(iou)
        if not isinstance(curve, list) or not 0 <= index < len(curve):
            continue
        neighbours = [curve[i] for i in (index - 1, index + 1) if 0 <= i < len(curve)]
        out[f"{name}_step"] = max((abs(float(v) - float(curve[index])) for v in neighbours), default=0.0)
    return out


def environment_of(record: dict[str, Any]) -> str:
    """``torch 2.14.1 cpu``: what, besides the config, moves the numbers (by up to a point across versions)."""
    environment = record.get("environment") or {}
    torch_version = str((environment.get("libraries") or {}).get("torch") or "?").split("+", 1)[0]
    device = str(environment.get("device") or "?").split(":", 1)[0]
    return f"torch {torch_version} {device}"


def _ordered(columns: Sequence[str]) -> list[str]:
    """``COLUMNS`` order; a variant ``<metric>@<x>`` goes right after its base metric; others are dropped."""
    order = {c: i for i, c in enumerate(COLUMNS)}
    known = []
    for col in columns:
        base = col.split("@", 1)[0]
        if col in order:
            known.append(((order[col], ""), col))
        elif base in order:
            known.append(((order[base] + 0.5, col), col))
    return [col for _, col in sorted(known)]


def runs_frame(records_with_dirs: Sequence[Any]) -> pd.DataFrame:
    """One row per run (:func:`record_row`), ordered by setting then seed.

    Args:
        records_with_dirs: ``(record, run_dir)`` pairs (``run_dir`` the folder holding ``record.json`` and the
            per-image outcomes, or None), or bare record dicts (no per-image outcomes: no intervals).
    """
    rows = []
    for item in records_with_dirs:
        record, run_dir = (item, None) if isinstance(item, dict) else item
        rows.append(record_row(record, run_dir))
    if not rows:
        return pd.DataFrame(columns=["name", *AXES, *NAMES, "seed", "run_dir"])
    frame = pd.DataFrame(rows)
    frame = frame[_ordered(list(frame.columns))]
    keys = [c for c in (*AXES, "seed") if c in frame.columns]
    frame = frame.sort_values(keys, kind="stable", na_position="last") if keys else frame
    return frame.reset_index(drop=True)


def with_run_dirs(records: Sequence[Any], root: Path) -> list[tuple[dict[str, Any], Path | None]]:
    """``(record, run_dir)`` pairs: pairs are kept, and a bare record gets the folder under ``root`` whose
    ``record.json`` has its config hash (None when there is none: that run gets no interval)."""
    pairs: list[tuple[dict[str, Any], Path | None]] = []
    folders: dict[str, Path] | None = None
    for item in records:
        if not isinstance(item, dict):
            record, run_dir = item
            pairs.append((record, None if run_dir is None else Path(run_dir)))
            continue
        if folders is None:
            folders = {}
            for path in find_records(root):
                try:
                    folders.setdefault(str(load_record(path).get("config_hash")), path.parent)
                except DataError:
                    continue  # a broken record elsewhere in the folder is not this bench's
        pairs.append((item, folders.get(str(item.get("config_hash")))))
    return pairs


# ---------------------------------------------------------------- one row per setting


def sort_leaderboard(agg: pd.DataFrame, sort_by: str = "MaxBoxAccV2") -> pd.DataFrame:
    """Rows grouped by (dataset, backbone), best first within each by ``sort_by`` (then :data:`SORT_BY`).

    "Best" follows the metric table's direction; metrics without one sort largest first.
    """
    keys = [c for c in dict.fromkeys((sort_by, *SORT_BY)) if c in agg.columns]
    groups = [c for c in ("dataset", "backbone") if c in agg.columns]
    ascending = [True] * len(groups)
    for key in keys:
        try:
            ascending.append(metric(key).higher_is_better is False)
        except ConfigError:
            ascending.append(False)
    by = groups + keys
    if not by:
        return agg.reset_index(drop=True)
    return agg.sort_values(by, ascending=ascending, kind="stable", na_position="last").reset_index(drop=True)


def leaderboard_frame(runs: pd.DataFrame | Sequence[Any], *, baseline: str | None = "ce",
                      sort_by: str = "MaxBoxAccV2", n_resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> pd.DataFrame:
    """The aggregated leaderboard: one row per setting (:func:`~wsolbench.report.aggregate.aggregate_seeds`),
    with ``M_diff`` / ``M_low`` / ``M_high`` against ``baseline`` (:func:`~wsolbench.report.significance.
    compare_to_baseline`; None: no comparison), sorted by :func:`sort_leaderboard`.

    Args:
        runs: a :func:`runs_frame`, or what :func:`runs_frame` takes.
        baseline: ``ce`` (an objective), or ``axis=value`` (``method=cam``); see :func:`parse_baseline`.
        n_resamples: bootstrap resamples; 0 gives the differences without intervals.
    """
    frame = runs if isinstance(runs, pd.DataFrame) else runs_frame(runs)
    agg = aggregate_seeds(frame)
    if baseline is not None and not agg.empty:
        agg = compare_to_baseline(agg, frame, baseline=baseline, n_resamples=n_resamples, seed=seed, level=level)
    return sort_leaderboard(agg, sort_by)


# ---------------------------------------------------------------- the compact table


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean_std(row: pd.Series, key: str) -> str:
    mean, std = row.get(key), row.get(f"{key}_std")
    if _missing(mean):
        return "-"
    digits = 4 if key in _FOUR_DIGITS else 2
    if _missing(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def interval_text(diff: Any, low: Any, high: Any) -> str:
    """``+1.23 [+0.40, +2.10] *`` (``*``: the interval excludes zero); just ``+1.23`` without an interval."""
    if _missing(diff):
        return "-"
    if _missing(low) or _missing(high):
        return f"{round(float(diff), 2) + 0.0:+.2f}"
    mark = " *" if (low > 0 or high < 0) else ""
    diff, low, high = (round(float(v), 2) + 0.0 for v in (diff, low, high))  # no "-0.00"
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]{mark}"


def localization_metric(frame: pd.DataFrame, preferred: str = "MaxBoxAccV2") -> str | None:
    """``preferred`` when it is a localization metric the frame has values of, else the first of MaxBoxAccV2,
    mPxAP, PxAP, GT-known Loc it has (the plot's y metric); None when it has none."""
    for key in dict.fromkeys((preferred, "MaxBoxAccV2", "mPxAP", "PxAP", "GT-known Loc")):
        if key in (*INTERVAL_METRICS, "mPxAP", "MaxBoxAcc") and _has_values(frame, key):
            return key
    return None


def delta_metric(agg: pd.DataFrame, sort_by: str = "MaxBoxAccV2") -> str | None:
    """The metric of the compact table's Δ column: ``sort_by`` when it has differences, else the first of
    :data:`INTERVAL_METRICS` (then mPxAP) that has."""
    for key in dict.fromkeys((sort_by, *INTERVAL_METRICS, "mPxAP")):
        column = f"{key}_diff"
        if column in agg.columns and pd.to_numeric(agg[column], errors="coerce").notna().any():
            return key
    return None


def _delta_cell(row: pd.Series, key: str) -> str:
    if bool(row.get("is_baseline", False)):
        return "baseline"
    text = interval_text(row.get(f"{key}_diff"), row.get(f"{key}_low"), row.get(f"{key}_high"))
    compared = row.get("interval_seeds")
    if text != "-" and isinstance(compared, str) and compared != str(row.get("seed_list")):
        text += f" (seeds {compared})"
    return text


def _has_values(frame: pd.DataFrame, key: str) -> bool:
    return key in frame.columns and pd.to_numeric(frame[key], errors="coerce").notna().any()


def compact_table(group: pd.DataFrame, *, sort_by: str = "MaxBoxAccV2", baseline: str | None = None) -> pd.DataFrame:
    """One (dataset, backbone) group of the aggregated leaderboard as display strings, one row per setting:
    setting, top-1 (mAP instead for multi-label), the localization metrics as ``mean ± std``, ``Δ <metric> vs
    <baseline>`` with its interval, entropy_norm, seeds. Metrics the group has no value of are left out."""
    with_cam = "cam" in group.columns and group["cam"].nunique(dropna=False) > 1
    cls_key = "mAP" if _has_values(group, "mAP") else "top1"  # multi-label: mAP is the classification number
    locs = [k for k in COMPACT_METRICS if _has_values(group, k)]
    if _has_values(group, "mPxAP"):
        locs = [k for k in locs if k != "PxAP"] + ["mPxAP"]
    key = delta_metric(group, sort_by)
    shown_baseline = baseline if baseline else "baseline"
    rows = []
    for _, row in group.iterrows():
        cells = {"setting": setting_label(row, with_cam=with_cam)}
        if _has_values(group, cls_key):
            cells["top-1" if cls_key == "top1" else "mAP"] = _mean_std(row, cls_key)
        cells.update({k: _mean_std(row, k) for k in locs})
        if key is not None:
            cells[f"Δ {key} vs {shown_baseline}"] = _delta_cell(row, key)
        if _has_values(group, "entropy_norm"):
            cells["entropy_norm"] = _mean_std(row, "entropy_norm")
        if "seeds" in group.columns:
            cells["seeds"] = str(int(row["seeds"])) if not _missing(row["seeds"]) else "-"
        rows.append(cells)
    return pd.DataFrame(rows)


def with_units(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`compact_table` with its units in the headers, for the Markdown and terminal views:
    ``MaxBoxAccV2 %``, ``Δ MaxBoxAccV2 vs ce (points)``, ``H/log K`` (entropy_norm); the HTML report and the
    CSV keep the bare keys."""
    units = {m.key: m.unit for m in METRICS}
    names = {}
    for column in table.columns:
        key = "top1" if column == "top-1" else column
        if column.startswith("Δ "):
            names[column] = f"{column} (points)"
        elif column == "entropy_norm":
            names[column] = "H/log K"
        elif units.get(key) == "%":
            names[column] = f"{column} %"
    return table.rename(columns=names)


def groups_of(agg: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``(title, rows)`` per (dataset, backbone, protocol, environment), in the frame's order. The title is
    ``dataset / backbone``, plus, when several groups share a dataset and backbone, what tells them apart:
    the protocol hash with the differing data size, schedule or evaluation facts the rows carry, and the
    environment when it differs."""
    keys = [c for c in ("dataset", "backbone", "protocol", "environment") if c in agg.columns]
    if not keys:
        return [("", agg)]
    groups = [(values if isinstance(values, tuple) else (values,), rows)
              for values, rows in agg.groupby(keys, sort=False, dropna=False)]
    shown = {"dataset", "backbone"}
    varying = [k for k in ("protocol", "environment") if k in keys
               and len({str(dict(zip(keys, v)).get(k)) for v, _ in groups}) > 1]
    details = [c for c in PROTOCOL_DETAILS if c in agg.columns and agg[c].astype(str).nunique() > 1]
    out = []
    for values, rows in groups:
        named = dict(zip(keys, values))
        title = " / ".join("-" if _missing(named.get(k)) else str(named[k]) for k in keys if k in shown)
        extra = []
        if "protocol" in varying:
            first = rows.iloc[0]
            extra.append(f"protocol {str(named['protocol'])[:8]}")
            extra += [f"{c} {first[c]}" for c in details if not _missing(first.get(c))]
        if "environment" in varying:
            extra.append(str(named["environment"]))
        out.append((title + (" · " + ", ".join(extra) if extra else ""), rows))
    return out


# ---------------------------------------------------------------- files


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            base = col.removeprefix("val_").split("@", 1)[0].removesuffix("_std")
            digits = 4 if base in _FOUR_DIGITS or col.endswith(("_diff", "_low", "_high")) else 2
            out[col] = out[col].round(digits)
    return out


def explanation(agg: pd.DataFrame, *, sort_by: str = "MaxBoxAccV2", baseline: str | None = None,
                n_resamples: int = 1000, level: float = 0.95) -> str:
    """The line that says what the leaderboard's numbers are."""
    seeds = pd.to_numeric(agg.get("seeds", pd.Series(dtype=float)), errors="coerce").dropna()
    seed_text = (f"{int(seeds.min())}" if seeds.min() == seeds.max() else f"{int(seeds.min())}-{int(seeds.max())}") \
        if len(seeds) else "?"
    text = (f"Test split, percent (entropy_norm = mean H(p) / log K). Each cell: mean ± sample std over seeds "
            f"({seed_text} per setting; just the mean for one seed). GT-known Loc and Top-1 Loc at the CAM threshold "
            "chosen on val (IoU 0.5); MaxBoxAccV2 best over thresholds (Choe et al., CVPR 2020).")
    if baseline is not None and delta_metric(agg, sort_by) is not None:
        axis, value = parse_baseline(baseline)
        others = ", ".join(c for c in SETTING if c != axis)
        text += (f" Δ: setting minus the baseline {axis} `{value}` of the same {others}, over the seeds both have")
        if n_resamples > 0:
            text += (f", with its {level:.0%} paired bootstrap interval over test images ({n_resamples} resamples; "
                     "the images of every run of both settings drawn jointly, seeds averaged within each "
                     "resample); * = the interval excludes 0; no interval where a run has no per-image outcomes")
        text += "."
    text += f" Sorted by {sort_by}, best first. Every metric, val included: leaderboard.csv; every run: runs.csv."
    return text


def published_section(title: str, rows: pd.DataFrame) -> list[str]:
    """Markdown lines of the published numbers shown beside one (dataset, backbone) group."""
    if rows.empty:
        return [f"No published numbers for {title} in leaderboards/published/.", ""]
    shown = pd.DataFrame({
        "method": rows["method"], "objective": rows["objective"], "metric": rows["metric"],
        "value": [f"{v:+.2f} vs {r}" if isinstance(r, str) and r else f"{v:.2f}"
                  for v, r in zip(rows["value"], rows["relative_to"])],
        "backbone": rows["backbone"], "source": rows["source"], "table": rows["table"], "notes": rows["notes"]})
    return [f"Published numbers for {title} (from the literature, not runs of this suite; "
            "protocols differ, see each row's source and leaderboards/published/README.md):", "",
            shown.to_markdown(index=False), ""]


def write_leaderboard(agg: pd.DataFrame, output_dir: Path, *, command: str | None = None,
                      sort_by: str = "MaxBoxAccV2", baseline: str | None = None, n_resamples: int = 1000,
                      level: float = 0.95, published: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` (every column of ``agg``) and ``leaderboard.md`` (a line saying what the
    numbers are, then a compact table per (dataset, backbone) and, with ``published``, the published numbers
    of that dataset and backbone) atomically; returns their paths."""
    output_dir = Path(output_dir)
    csv_path = atomic_write_text(output_dir / "leaderboard.csv", _rounded(agg).to_csv(index=False))
    lines = ["# wsolbench leaderboard", ""]
    if command:
        lines += [f"Made by: `{command}`", ""]
    lines += [explanation(agg, sort_by=sort_by, baseline=baseline, n_resamples=n_resamples, level=level), ""]
    groups = groups_of(agg)
    for title, rows in groups:
        if len(groups) > 1 or published is not None:
            lines += [f"## {title}", ""]
        lines += [with_units(compact_table(rows, sort_by=sort_by, baseline=baseline)).to_markdown(index=False), ""]
        if published is not None:
            first = rows.iloc[0]
            lines += published_section(title, published_for(published, first.get("dataset"), first.get("backbone")))
    lines += definitions(agg)
    md_path = atomic_write_text(output_dir / "leaderboard.md", "\n".join(lines))
    return csv_path, md_path


def definitions(agg: pd.DataFrame) -> list[str]:
    """The Markdown lines defining every column of the compact tables once, with its unit."""
    keys = ["top1", "mAP", *COMPACT_METRICS, "mPxAP", "entropy_norm"]
    shown = [metric(k) for k in keys if _has_values(agg, k)]
    lines = ["## Columns", ""]
    for entry in shown:
        unit = {"%": "percent", "": "no unit"}.get(entry.unit, entry.unit)
        lines.append(f"- **{'top-1' if entry.key == 'top1' else entry.key}** ({unit}): {entry.description}")
    lines += ["- **Δ**: the setting minus its baseline (same dataset, backbone, method, CAM, protocol and seeds), "
              "percent points, with its paired bootstrap interval; `*` marks an interval that excludes zero.",
              "- **seeds** (count): runs averaged in the row; `mean ± std` is their mean and sample standard "
              "deviation.", ""]
    return lines


def write_runs(runs: pd.DataFrame, output_dir: Path) -> Path:
    """Write ``runs.csv``, one row per run (every column); run folders under ``output_dir`` relative to it."""
    output_dir = Path(output_dir)
    out = runs.copy()
    if "run_dir" in out.columns:
        out["run_dir"] = [_relative(p, output_dir) for p in out["run_dir"]]
    return atomic_write_text(output_dir / "runs.csv", _rounded(out).to_csv(index=False))


def _relative(path: Any, root: Path) -> Any:
    if not isinstance(path, str):
        return path
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path
