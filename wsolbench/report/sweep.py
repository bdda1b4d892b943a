"""The sweet spot: choose a regularizer's strength on ``val`` and report ``test`` there, beside the baseline.

Input is the aggregated leaderboard (one row per setting: the SETTING columns, ``method_name``,
``objective_name``, ``strength_name``, ``strength``, ``seeds``, and every metric ``M`` as the mean over
seeds with ``M_std`` its sample std; val metrics as ``val_<M>``). The choice reads the ``val_`` columns
only: a sweep that looks at ``test`` to choose would report an optimistic number (DESIGN.md, "Splits").

A *group* is one (dataset, backbone, method, cam): the strengths of one objective are compared within a
group, never across. A *regularizer* is an objective label without its strength, so
``kl_uniform(lam=0.1, normalize_loss_scale)`` and ``kl_uniform(lam=0.1)`` are two regularizers of one
objective class (two lines of the entropy plot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from wsolbench.errors import ConfigError
from wsolbench.metrics.table import metric as metric_entry
from wsolbench.report.aggregate import SETTING
from wsolbench.report.leaderboard import interval_text

#: The SETTING columns less the objective: the strengths of an objective compete within one group.
GROUP = tuple(c for c in SETTING if c != "objective")
#: Test metrics reported by :func:`sweep_summary` (those the frame has).
SUMMARY_METRICS = ("top1", "MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP", "mPxAP", "entropy_norm")
#: Metrics whose paired interval against the baseline :func:`sweep_summary` has columns for.
INTERVAL_METRICS = ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP")


def _split_label(label: str) -> tuple[str, list[str]]:
    """``"kl_uniform(lam=0.3, normalize_loss_scale)"`` -> ``("kl_uniform", ["lam=0.3", "normalize_loss_scale"])``."""
    name, paren, rest = str(label).partition("(")
    if not paren:
        return name, []
    return name, [p.strip() for p in rest.rstrip(")").split(",") if p.strip()]


def _label_strength(label: str) -> tuple[str | None, float | None]:
    """The first ``key=number`` parameter of an objective label (axis labels show the strength first)."""
    _, params = _split_label(label)
    if params and "=" in params[0]:
        key, value = params[0].split("=", 1)
        try:
            return key, float(value)
        except ValueError:
            return None, None
    return None, None


def with_axis_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``method_name``, ``objective_name``, ``strength_name`` and ``strength`` present.

    Frames of records made before these columns existed get them from the labels (the name is the label
    before ``(``, the strength its first numeric parameter); values already present are kept.
    """
    out = frame.copy()
    if "objective" in out:
        parsed = [_label_strength(label) for label in out["objective"]]
        derived = {
            "objective_name": [_split_label(label)[0] for label in out["objective"]],
            "strength_name": [name for name, _ in parsed],
            "strength": [value for _, value in parsed],
        }
        for column, values in derived.items():
            if column not in out:
                out[column] = values
            else:
                out[column] = out[column].where(out[column].notna(), pd.Series(values, index=out.index))
    if "method" in out and "method_name" not in out:
        out["method_name"] = [_split_label(label)[0] for label in out["method"]]
    out["strength"] = pd.to_numeric(out["strength"], errors="coerce") if "strength" in out else math.nan
    return out


def regularizer_of(objective: str, strength_name: Any) -> str:
    """An objective label without its strength: ``kl_uniform(lam=0.1, normalize_loss_scale)`` ->
    ``kl_uniform(normalize_loss_scale)``; ``ce`` -> ``ce``."""
    name, params = _split_label(objective)
    if isinstance(strength_name, str):
        params = [p for p in params if p.split("=", 1)[0] != strength_name]
    return name + (f"({', '.join(params)})" if params else "")


def group_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in GROUP if c in frame]


def _val_column(frame: pd.DataFrame, metric: str) -> str:
    column = f"val_{metric}"
    if column not in frame:
        raise ConfigError(f"cannot choose on val: the frame has no {column} column (records without val "
                          f"metrics, or a metric val does not have)")
    return column


def best_on_val(rows: pd.DataFrame, *, metric: str = "MaxBoxAccV2") -> pd.Series:
    """The row of ``rows`` with the best ``val_<metric>`` mean; ties -> the smaller strength (None as 0).

    Raises:
        ConfigError: no ``val_<metric>`` column, no value in it, or a metric without a direction.
    """
    column = _val_column(rows, metric)
    entry = metric_entry(metric)
    if entry.higher_is_better is None:
        raise ConfigError(f"metric {metric!r} has no better direction; choose on a localization metric")
    values = pd.to_numeric(rows[column], errors="coerce")
    candidates = rows[values.notna()]
    if candidates.empty:
        raise ConfigError(f"no {column} value among the {len(rows)} row(s) to choose from")
    sign = -1.0 if entry.higher_is_better else 1.0
    strengths = pd.to_numeric(candidates["strength"], errors="coerce").fillna(0.0) if "strength" in candidates \
        else pd.Series(0.0, index=candidates.index)
    keys = {index: (sign * float(values[index]), float(strengths[index])) for index in candidates.index}
    return rows.loc[min(candidates.index, key=lambda index: keys[index])]


def choose_strength(agg: pd.DataFrame, *, objective_name: str, metric: str = "MaxBoxAccV2") -> pd.Series:
    """The aggregated row of ``objective_name`` with the best ``val_<metric>`` mean (never test).

    ``agg`` holds one group (dataset, backbone, method, cam); ties go to the smaller strength.

    Raises:
        ConfigError: no row of that objective, rows of several groups, or no ``val_<metric>`` value.
    """
    frame = with_axis_names(agg)
    _val_column(frame, metric)
    rows = frame[frame["objective_name"] == objective_name]
    if rows.empty:
        known = ", ".join(sorted(set(map(str, frame.get("objective_name", [])))))
        raise ConfigError(f"no row of objective {objective_name!r} to choose a strength from (objectives: "
                          f"{known or 'none'})")
    groups = group_columns(rows)
    if groups and len(rows[groups].drop_duplicates()) > 1:
        raise ConfigError(f"objective {objective_name!r} has rows of {len(rows[groups].drop_duplicates())} "
                          f"groups ({', '.join(groups)}); choose within one group")
    return best_on_val(rows, metric=metric)


def chosen_strengths(agg: pd.DataFrame, *, metric: str = "MaxBoxAccV2") -> pd.DataFrame:
    """One row per (group, regularizer) with a strength: the val-chosen one (see :func:`best_on_val`).

    Rows without a strength (the ``ce`` baseline) are not chosen among. An empty frame when ``agg`` has
    no ``val_<metric>`` column.
    """
    frame = with_axis_names(agg)
    if f"val_{metric}" not in frame:
        return frame.iloc[0:0]
    frame = frame[frame["strength"].notna()]
    if frame.empty:
        return frame
    keys = [*group_columns(frame), "_regularizer"]
    frame = frame.assign(_regularizer=[regularizer_of(o, s)
                                       for o, s in zip(frame["objective"], frame["strength_name"])])
    picked = []
    for _, rows in frame.groupby(keys, sort=False, dropna=False):
        values = pd.to_numeric(rows[f"val_{metric}"], errors="coerce")
        if values.notna().any():
            picked.append(best_on_val(rows, metric=metric))
    if not picked:
        return frame.iloc[0:0].drop(columns="_regularizer")
    return pd.DataFrame(picked).drop(columns="_regularizer")


def _baseline_row(frame: pd.DataFrame, chosen: pd.Series, baseline: str) -> pd.Series:
    same = pd.Series(True, index=frame.index)
    for column in group_columns(frame):
        same &= frame[column].astype(str) == str(chosen[column])
    rows = frame[same & (frame["objective"] == baseline)]
    if rows.empty:
        rows = frame[same & (frame["objective_name"] == baseline)]
    if rows.empty:
        raise ConfigError(f"no baseline {baseline!r} row in the group of {chosen['objective']!r} "
                          f"({', '.join(f'{c}={chosen[c]}' for c in group_columns(frame))})")
    if len(rows) > 1:
        raise ConfigError(f"baseline {baseline!r} matches {len(rows)} rows ({', '.join(map(str, rows['objective']))});"
                          f" name one objective label")
    return rows.iloc[0]


def sweep_summary(agg: pd.DataFrame, *, objective_name: str, baseline: str = "ce", metric: str = "MaxBoxAccV2",
                  metrics: Sequence[str] = SUMMARY_METRICS,
                  intervals: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Two rows, ``role`` = "baseline" then "chosen": test numbers at the val-chosen strength beside the
    baseline's (same group).

    Columns: ``role``, the group columns, ``objective``, ``strength_name``, ``strength``, ``seeds``,
    ``val_<metric>``, then ``M`` and ``M_std`` for each of ``metrics`` the frame has, then
    ``M_diff``, ``M_low``, ``M_high`` for each of :data:`INTERVAL_METRICS` the frame has: the paired
    interval of chosen minus baseline, filled on the chosen row from ``intervals`` (metric ->
    an object with ``diff``, ``low``, ``high``, e.g. ``report.significance.Interval``; percent points),
    NaN where not given. With ``intervals=None`` the chosen row keeps the ``M_diff`` / ``M_low`` /
    ``M_high`` columns ``agg`` already has (``report.leaderboard.leaderboard_frame`` computes them against
    its own baseline: pass the same ``baseline`` here).
    """
    frame = with_axis_names(agg)
    chosen = choose_strength(frame, objective_name=objective_name, metric=metric)
    base = _baseline_row(frame, chosen, baseline)
    shown = [m for m in metrics if m in frame]
    rows = []
    for role, row in (("baseline", base), ("chosen", chosen)):
        out: dict[str, Any] = {"role": role, **{c: row[c] for c in group_columns(frame)}}
        out.update(objective=row["objective"], strength_name=row.get("strength_name"), strength=row.get("strength"),
                   seeds=row.get("seeds", 1))
        out[f"val_{metric}"] = row.get(f"val_{metric}", math.nan)
        for key in shown:
            out[key] = row[key]
            out[f"{key}_std"] = row.get(f"{key}_std", math.nan)
        for key in (m for m in INTERVAL_METRICS if m in frame):
            given = intervals.get(key) if intervals is not None and role == "chosen" else None
            for part in ("diff", "low", "high"):
                if given is not None:
                    out[f"{key}_{part}"] = float(getattr(given, part))
                elif intervals is None and role == "chosen" and f"{key}_{part}" in row.index:
                    out[f"{key}_{part}"] = float(row[f"{key}_{part}"])  # the leaderboard's, against its baseline
                else:
                    out[f"{key}_{part}"] = math.nan
        rows.append(out)
    return pd.DataFrame(rows)


def _mean_std(mean: Any, std: Any, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def sweep_markdown(summary: pd.DataFrame, *, metric: str = "MaxBoxAccV2") -> str:
    """The :func:`sweep_summary` frame as a Markdown table: mean ± std (just the mean for one seed), and
    ``Δ <metric>`` with its interval (``*`` when it excludes zero) on the chosen row."""
    metrics = [c for c in summary.columns if f"{c}_std" in summary.columns]
    lines = []
    for _, row in summary.iterrows():
        strength = "" if pd.isna(row["strength"]) else f"{row['strength_name']}={row['strength']:g}"
        cells = {"": row["role"], "objective": row["objective"], "strength": strength, "seeds": int(row["seeds"]),
                 f"val {metric}": _mean_std(row[f"val_{metric}"], None)}
        cells.update({m: _mean_std(row[m], row[f"{m}_std"], 4 if m.startswith("entropy") else 2) for m in metrics})
        if f"{metric}_diff" in summary:
            cells[f"Δ {metric} (95% CI)"] = interval_text(row[f"{metric}_diff"], row[f"{metric}_low"],
                                                      row[f"{metric}_high"])
        lines.append(cells)
    return pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)


def sweep_tables(agg: pd.DataFrame, *, baseline: str = "ce", metric: str = "MaxBoxAccV2") -> list[tuple[str, pd.DataFrame]]:
    """Per group (dataset, backbone, method, cam): ``(title, frame)`` with the baseline row, then one row per
    regularizer at its val-chosen strength (rows of :func:`sweep_summary`, the intervals those ``agg`` holds
    against ``baseline``). Groups without a baseline row or without a regularizer are left out."""
    frame = with_axis_names(agg)
    chosen = chosen_strengths(frame, metric=metric)
    if chosen.empty:
        return []
    frame = frame.assign(_regularizer=[regularizer_of(o, s) for o, s in zip(frame["objective"], frame["strength_name"])])
    groups = group_columns(frame)
    tables = []
    for key, picks in chosen.groupby(groups, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        same = pd.Series(True, index=frame.index)
        for column, value in zip(groups, key):
            same &= frame[column].astype(str) == str(value)
        rows = []
        for _, pick in picks.iterrows():
            regularizer = regularizer_of(pick["objective"], pick["strength_name"])
            subset = frame[same & ((frame["_regularizer"] == regularizer) | frame["strength"].isna())]
            try:
                summary = sweep_summary(subset.drop(columns="_regularizer"), objective_name=pick["objective_name"],
                                        baseline=baseline, metric=metric)
            except ConfigError:
                continue  # no baseline in this group
            rows.append(summary.iloc[[1]] if rows else summary)
        if rows:
            title = " · ".join(str(v) for v in key if str(v))
            tables.append((title, pd.concat(rows, ignore_index=True)))
    return tables
