"""The threshold-sweep plot: box accuracy against the CAM threshold, pixel precision against recall.

Read from the curves every record holds (``record["test"]["boxes"]`` and ``["masks"]``), so it needs no
per-image outcomes; one curve per setting, its runs (seeds) averaged threshold by threshold.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from wsolbench._io import atomic_write  # noqa: E402
from wsolbench.errors import ConfigError, DataError  # noqa: E402
from wsolbench.report.aggregate import SETTING  # noqa: E402
from wsolbench.report.sweep import regularizer_of, with_axis_names  # noqa: E402

#: Figure resolution (the entropy plot places its labels at it, so PNGs are saved at it too).
DPI = 120

#: Sequential colour maps for the families of a sweep (one regularizer of one group; shade = strength).
FAMILY_CMAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "YlOrBr")
#: Up to this many settings the legend is one column right of the panels; past it, columns below them.
LEGEND_RIGHT_MAX, LEGEND_COLUMNS = 12, 3


@dataclass(frozen=True)
class SettingCurves:
    """The test curves of one setting, averaged over its runs (seeds).

    Attributes:
        label: the legend text (the setting's axes that vary between the plotted settings).
        family: the regularizer and group (a colour family), None for a baseline / strength-less setting.
        strength: the objective's strength (NaN when none), for the shade within a family.
        runs: how many runs were averaged.
        thresholds: ``(T,)`` CAM thresholds, None without boxes.
        loc: ``(T,)`` GT-known box accuracy (%) at the Loc IoU with the Loc contours (the curve the val
            threshold is chosen on), None without boxes.
        loc_name: what ``loc`` is, e.g. "IoU 0.5, largest contour".
        v2: ``(T,)`` mean over IoU thresholds of the MaxBoxAccV2 contours' curves, None when unavailable.
        v2_name: what ``v2`` is, e.g. "IoU 0.3/0.5/0.7, all contours".
        chosen: (val-chosen threshold, ``loc`` there): for one run the record's threshold and its test
            GT-known Loc; for several, the mean of their thresholds and the mean curve there (interpolated),
            so the mark sits on the curve drawn. None without a chosen threshold.
        recall, precision: ``(T,)`` pooled pixel recall / precision (fractions), None without masks.
    """

    label: str
    family: tuple[str, ...] | None
    strength: float
    runs: int
    thresholds: np.ndarray | None
    loc: np.ndarray | None
    loc_name: str
    v2: np.ndarray | None
    v2_name: str
    chosen: tuple[float, float] | None
    recall: np.ndarray | None
    precision: np.ndarray | None


def _floats(values: Any) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)


def _run_curves(record: dict[str, Any]) -> dict[str, Any]:
    """One record's test curves (see :class:`SettingCurves`), before averaging."""
    test = record.get("test") or {}
    selection = record.get("selection") or {}
    conventions = selection.get("conventions") or {}
    out: dict[str, Any] = {}
    boxes = test.get("boxes")
    if boxes:
        gt_known = boxes["curves"]["gt_known"]
        contours, iou = conventions.get("loc_contours", "largest"), int(conventions.get("loc_iou", 50))
        out["thresholds"] = _floats(boxes["thresholds"])
        out["loc"] = _floats(gt_known[contours][str(iou)])
        out["loc_name"] = f"IoU {iou / 100:g}, {contours} contour{'s' if contours == 'all' else ''}"
        v2_mode, ious = conventions.get("maxboxacc_v2_contours", "all"), boxes.get("iou_thresholds", [])
        if v2_mode in gt_known and len(ious) > 1:
            out["v2"] = np.mean([_floats(gt_known[v2_mode][str(i)]) for i in ious], axis=0)
            out["v2_name"] = f"IoU {'/'.join(f'{int(i) / 100:g}' for i in ious)}, {v2_mode} contours"
        threshold = selection.get("threshold")
        if threshold:
            out["chosen"] = float(threshold["threshold"])
    masks = test.get("masks")
    if masks and masks.get("precision") is not None:
        out["recall"], out["precision"] = _floats(masks["recall"]), _floats(masks["precision"])
    return out


def _mean(runs: list[dict[str, Any]], key: str, name: str) -> np.ndarray | None:
    arrays = [r[key] for r in runs if key in r]
    if not arrays:
        return None
    if len(arrays) != len(runs) or any(a.shape != arrays[0].shape for a in arrays):
        raise DataError(f"setting {name}: its runs do not all have the same {key} curve length")
    if key == "thresholds" and any(not np.allclose(a, arrays[0]) for a in arrays):
        raise DataError(f"setting {name}: its runs were evaluated at different CAM thresholds")
    return np.mean(arrays, axis=0)


def _settings(records: Sequence[dict[str, Any]], keep: Collection[str] | None) -> list[SettingCurves]:
    rows = with_axis_names(pd.DataFrame([r.get("summary", {}) for r in records]))
    setting = [c for c in SETTING if c in rows]
    if not setting:
        raise DataError("the records have no summary axes (dataset, method, objective, ...)")
    within = rows.groupby("dataset", dropna=False) if "dataset" in rows else None
    varying = [c for c in setting if rows[c].astype(str).nunique() > 1
               and (c not in ("protocol", "environment") or within is None
                    or (within[c].agg(lambda v: v.astype(str).nunique()) > 1).any())] or ["objective"]
    group = [c for c in setting if c != "objective"]
    rows = rows.assign(_label=[" · ".join(str(v) for v in vals) for vals in rows[varying].itertuples(index=False)],
                       _reg=[regularizer_of(o, s) for o, s in zip(rows["objective"], rows["strength_name"])])
    if keep is not None:
        wanted = set(keep)
        hit = rows["_label"].isin(wanted) | rows["objective"].astype(str).isin(wanted)
        if "name" in rows:
            hit |= rows["name"].astype(str).isin(wanted)
        rows = rows[hit]
        if rows.empty:
            raise ConfigError(f"no record matches the settings {', '.join(sorted(wanted))}")
    rows = rows.sort_values([*group, "objective_name", "strength"], kind="stable", na_position="first")
    out = []
    for _, members in rows.groupby(setting, sort=False, dropna=False):
        first = members.iloc[0]
        runs = [_run_curves(records[i]) for i in members.index]
        name = str(first["_label"])
        chosen = [r["chosen"] for r in runs if "chosen" in r]
        thresholds, loc = _mean(runs, "thresholds", name), _mean(runs, "loc", name)
        mark = None
        if chosen and loc is not None:
            at = float(np.mean(chosen))
            mark = (at, float(np.interp(at, thresholds, loc)))
        loc_names = sorted({r["loc_name"] for r in runs if "loc_name" in r})
        v2_names = sorted({r["v2_name"] for r in runs if "v2_name" in r})
        strength = float(first["strength"]) if pd.notna(first["strength"]) else float("nan")
        family = (*(str(first[c]) for c in group), str(first["_reg"])) if pd.notna(first["strength"]) else None
        out.append(SettingCurves(
            label=name + (f" ({len(runs)} runs)" if len(runs) > 1 else ""), family=family, strength=strength,
            runs=len(runs), thresholds=thresholds, loc=loc, loc_name=", ".join(loc_names), v2=_mean(runs, "v2", name),
            v2_name=", ".join(v2_names),
            chosen=mark,
            recall=_mean(runs, "recall", name), precision=_mean(runs, "precision", name)))
    return out


def _colors(curves: list[SettingCurves]) -> list[Any]:
    """A sequential colour map per family (shade by strength rank) when there are few families, black for
    strength-less settings; a qualitative map otherwise (viridis past 20 settings)."""
    families = list(dict.fromkeys(c.family for c in curves if c.family is not None))
    if len(families) <= len(FAMILY_CMAPS) and sum(c.family is None for c in curves) <= 1:
        colors = []
        for c in curves:
            if c.family is None:
                colors.append("black")
                continue
            members = sorted({m.strength for m in curves if m.family == c.family})
            shade = 0.75 if len(members) == 1 else 0.4 + 0.55 * members.index(c.strength) / (len(members) - 1)
            colors.append(plt.get_cmap(FAMILY_CMAPS[families.index(c.family)])(shade))
        return colors
    if len(curves) <= 20:
        palette = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20").colors
        return [palette[i] for i in range(len(curves))]
    cmap = plt.get_cmap("viridis")
    return [cmap(i / (len(curves) - 1)) for i in range(len(curves))]


def _draw_panel(ax, panel: str, letter: str, curves: list[SettingCurves], colors: list[Any]) -> dict[str, Any]:
    """One panel ("loc", "v2" or "pr"); returns its legend handles by setting label."""
    handles: dict[str, Any] = {}
    for curve, color in zip(curves, colors):
        if panel == "pr" and curve.precision is not None:
            handles[curve.label] = ax.plot(curve.recall, curve.precision, color=color, lw=1.4, gid="pr")[0]
        elif panel != "pr" and getattr(curve, panel) is not None:
            handles[curve.label] = ax.plot(curve.thresholds, getattr(curve, panel), color=color, lw=1.4, gid=panel)[0]
            if panel == "loc" and curve.chosen is not None:
                ax.plot(*curve.chosen, "o", color=color, markeredgecolor="black", markersize=6, zorder=4, gid="chosen")
    if panel == "pr":
        ax.set(xlabel="pixel recall", ylabel="pixel precision", xlim=(0, 1.02), ylim=(0, 1.02))
        title = "pixel precision vs recall (masks, pixels pooled)"
    else:
        ax.set(xlabel="CAM threshold", ylabel="box accuracy, GT-known (%)", ylim=(0, 101))
        names = "; ".join(sorted({getattr(c, f"{panel}_name") for c in curves if getattr(c, panel) is not None}))
        title = f"box accuracy at {names}" if panel == "loc" else f"mean over {names} (MaxBoxAccV2's curves)"
    ax.set_title(f"({letter}) {title}", fontsize=9)
    ax.grid(alpha=0.3)
    return handles


def threshold_sweeps_figure(records: Sequence[dict[str, Any]], *, settings: Collection[str] | None = None) -> Figure:
    """Draw the plot of :func:`plot_threshold_sweeps`; the caller closes the figure."""
    curves = _settings(list(records), settings)
    panels = [p for p, has in (("loc", any(c.loc is not None for c in curves)),
                               ("v2", any(c.v2 is not None for c in curves)),
                               ("pr", any(c.precision is not None for c in curves))) if has]
    if not panels:
        raise DataError("the records hold no box or mask curves to plot")
    below = len(curves) > LEGEND_RIGHT_MAX  # a long legend goes under the panels, in columns
    legend_rows = -(-(len(curves) + 1) // LEGEND_COLUMNS) if below else 0
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.8 * len(panels), 9.0) + (0.0 if below else 3.2),
                                                      4.6 + 0.2 * legend_rows), dpi=DPI, squeeze=False,
                             layout="constrained")
    colors = _colors(curves)
    handles: dict[str, Any] = {}
    for letter, panel, ax in zip("abc", panels, axes[0]):
        handles.update(_draw_panel(ax, panel, letter, curves, colors))
    several = any(c.runs > 1 for c in curves)
    if any(c.chosen is not None for c in curves):
        handles["val-chosen threshold" + (" (mean over runs)" if several else "")] = Line2D(
            [], [], marker="o", color="grey", markeredgecolor="black", linestyle="none")
    fig.legend(list(handles.values()), list(handles), loc="outside lower center" if below else "outside right upper",
               fontsize=7.5, frameon=False, ncols=LEGEND_COLUMNS if below else 1)
    fig.suptitle("Threshold sweeps, test split" + (" (curves: mean over each setting's runs)" if several else ""),
                 fontsize=10)
    return fig


def plot_threshold_sweeps(records: Sequence[dict[str, Any]], path: Path, *,
                          settings: Collection[str] | None = None) -> Path:
    """Write the threshold-sweep PNG atomically; returns ``path``.

    One curve per setting (the runs of a setting, e.g. its seeds, averaged threshold by threshold):
    (a) GT-known box accuracy against the CAM threshold at the Loc IoU with the Loc contours (IoU 0.5,
    largest contour by default), with each setting's val-chosen threshold marked on its curve; (b) the
    mean over IoU 0.3/0.5/0.7 of the all-contour curves that MaxBoxAccV2 takes its maxima from; (c)
    pooled pixel precision against recall, for records with masks. Panels without data are left out (a
    box-only dataset has no (c), a mask-only one only (c)).

    Args:
        records: run records (dicts as loaded by :func:`wsolbench.records.load_record`).
        settings: keep only the records whose run name, objective label or legend label is in it.
    Raises:
        ConfigError: ``settings`` matches no record.
        DataError: no record holds a curve, or runs of one setting have curves of different lengths.
    """
    fig = threshold_sweeps_figure(records, settings=settings)
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    finally:
        plt.close(fig)
