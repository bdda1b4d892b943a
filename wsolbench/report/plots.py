"""Plots: the entropy-vs-accuracy plot (where a regularizer's sweet spot lies) and the threshold sweeps.

The entropy plot reads the aggregated leaderboard (:mod:`wsolbench.report.sweep` states its columns):
mean normalized predictive entropy H(p) / log K on x; top-1 accuracy (top row) and a localization metric
(bottom row) on y; one column per dataset. Each regularizer (an objective label without its strength)
is a line through its strengths in increasing order, with the seeds' sample std as error bars on both
axes; the baseline (``ce``) is a distinct marker with a dashed reference line; the strength chosen on
``val`` is ringed. Points carry their strength (``λ=0.01``) as labels placed by
:mod:`wsolbench.report.labels`. With several methods (or backbones, CAMs) a colour is one method and a
line style one regularizer, and each method's baseline is joined to its lines by a dotted segment.

The threshold-sweep plot is :func:`wsolbench.report.threshold_plots.plot_threshold_sweeps`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator  # noqa: E402

from wsolbench._io import atomic_write  # noqa: E402
from wsolbench.errors import ConfigError  # noqa: E402
from wsolbench.metrics.table import metric as metric_entry  # noqa: E402
from wsolbench.report.labels import LabelSpec, PlacedLabel, marker_box, path_boxes, place_labels  # noqa: E402
from wsolbench.report.sweep import chosen_strengths, group_columns, regularizer_of, with_axis_names  # noqa: E402
from wsolbench.report.threshold_plots import DPI, SETTING, plot_threshold_sweeps, threshold_sweeps_figure  # noqa: E402

__all__ = ["EntropyFigure", "entropy_vs_accuracy_figure", "plot_entropy_vs_accuracy", "plot_threshold_sweeps",
           "threshold_sweeps_figure"]

ENTROPY = "entropy_norm"
#: How a strength parameter is written in point labels.
SYMBOLS = {"lam": "λ", "eps": "ε", "beta": "β"}
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")
POINT_PT, BASELINE_PT, RING_PT = 5.5, 9.0, 15.0
#: Up to this many methods (contexts) each baseline gets its dashed reference line; past it, only the
#: dotted segment to its lines (a dozen dashed lines hide the data).
MAX_REFERENCE_LINES = 3


@dataclass(frozen=True)
class EntropyFigure:
    """The drawn figure and what tests check on it.

    Attributes:
        figure: the matplotlib figure (layout and limits frozen; closing it is the caller's job).
        axes: ``(dataset, y column) -> Axes``.
        labels: every placed point label, all panels.
        lines: ``(dataset, y column, line name) -> ErrorbarContainer`` of each regularizer line.
        chosen: ``(dataset, y column, line name) -> (x, y)`` of each ringed point.
    """

    figure: Figure
    axes: dict[tuple[str, str], Any]
    labels: list[PlacedLabel]
    lines: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    chosen: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Line:
    """One regularizer of one context (method, backbone, cam) in one dataset, or a baseline point."""

    name: str
    context: str
    rows: pd.DataFrame
    style: dict[str, Any]
    baseline: bool = False


def _strength_text(name: Any, value: Any) -> str:
    return f"{SYMBOLS.get(name, name)}={value:g}" if isinstance(name, str) and pd.notna(value) else ""


def _check(frame: pd.DataFrame, metric: str) -> None:
    for column in (ENTROPY, "top1", metric):
        if column not in frame or pd.to_numeric(frame[column], errors="coerce").isna().all():
            raise ConfigError(f"cannot plot entropy vs accuracy: the frame has no {column} values")
    setting = [c for c in SETTING if c in frame]
    if frame.duplicated(setting).any():
        raise ConfigError("the frame has several rows per setting (one per seed?); aggregate over seeds first")


def _varies_within_a_dataset(frame: pd.DataFrame, column: str) -> bool:
    """True when ``column`` takes several values in one dataset's panel (the protocol and environment differ
    between datasets by construction: that alone does not make two lines of one panel)."""
    if "dataset" not in frame:
        return frame[column].astype(str).nunique() > 1
    return bool((frame.groupby("dataset", dropna=False)[column].agg(lambda v: v.astype(str).nunique()) > 1).any())


def _contexts(frame: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The context of each row (the group columns but the dataset that vary, joined) and a short name of
    each context for labels (labels' names before "(" when those stay distinct)."""
    columns = [c for c in group_columns(frame) if c != "dataset" and _varies_within_a_dataset(frame, c)]
    full = [" · ".join(str(v) for v in values) for values in frame[columns].itertuples(index=False)] \
        if columns else [""] * len(frame)
    names = list(dict.fromkeys(full))
    short = {n: " · ".join(part.split("(", 1)[0] for part in n.split(" · ")) for n in names}
    if len(set(short.values())) < len(names):
        short = {n: n for n in names}
    return full, short


def _errors(rows: pd.DataFrame, column: str) -> Any:
    std = f"{column}_std"
    if std not in rows or rows[std].isna().all():
        return None
    return pd.to_numeric(rows[std], errors="coerce").fillna(0.0).to_numpy()


def _rings(frame: pd.DataFrame, chosen: Mapping[Any, str] | None, metric: str) -> set[Any]:
    """The index of every row to ring: those ``chosen`` names (in every dataset), or the val choice of each
    line (:func:`~wsolbench.report.sweep.chosen_strengths`)."""
    if chosen is None:
        return set(chosen_strengths(frame, metric=metric).index) if f"val_{metric}" in frame else set()
    out: set[Any] = set()
    for key, label in chosen.items():
        method, objective_name = key if isinstance(key, tuple) else (None, key)
        hit = (frame["objective_name"] == objective_name) & (frame["objective"] == label)
        if method is not None:
            hit &= (frame["method"].astype(str) == method) | (frame["method_name"].astype(str) == method)
        if not hit.any():
            raise ConfigError(f"chosen {key!r} -> {label!r}: no such row in the frame")
        out |= set(frame.index[hit])
    return out


def _is_base(frame: pd.DataFrame, baseline: str) -> pd.Series:
    return (frame["objective_name"] == baseline) & frame["strength"].isna()


def _lines(frame: pd.DataFrame, baseline: str, contexts: list[str], regs: list[str]) -> list[_Line]:
    """Every line and baseline point of ``frame`` (one dataset), styled by its place in ``contexts`` and
    ``regs`` (the whole plot's, so a line keeps its style across datasets); rows sorted by strength."""
    is_base = _is_base(frame, baseline)
    many = len(contexts) > 1
    palette = plt.get_cmap("tab10" if len(contexts if many else regs) <= 10 else "tab20").colors
    lines = []
    for k, ctx in enumerate(contexts):
        color = palette[k % len(palette)] if many else "black"
        for index, row in frame[is_base & (frame["_context"] == ctx)].iterrows():
            name = f"{ctx} · {row['objective']} (baseline)" if many else f"{row['objective']} (baseline)"
            lines.append(_Line(name, ctx, frame.loc[[index]], {"color": color, "marker": "X"}, baseline=True))
        for i, reg in enumerate(regs):
            rows = frame[~is_base & (frame["_context"] == ctx) & (frame["_reg"] == reg)]
            if rows.empty:
                continue
            style = ({"color": color, "marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
                     if many else {"color": palette[i % len(palette)], "marker": "o", "linestyle": "-"})
            lines.append(_Line(f"{ctx} · {reg}" if many else reg, ctx,
                               rows.sort_values("strength", kind="stable", na_position="first"), style))
    return lines


def _legend(lines: list[_Line], many: bool, rings: bool, metric: str) -> dict[str, Any]:
    """Legend handles: each line (one context), or a colour per context and a style per regularizer."""
    handles: dict[str, Any] = {}
    if not many:
        for line in lines:
            handles.setdefault(line.name, Line2D([], [], markersize=BASELINE_PT if line.baseline else POINT_PT,
                                                 markeredgecolor="black" if line.baseline else line.style["color"],
                                                 markeredgewidth=0.6, **{"linestyle": "none", **line.style}))
    else:
        for line in lines:
            handles.setdefault(line.context, Line2D([], [], color=line.style["color"], linewidth=6, alpha=0.8))
        for line in lines:
            reg = line.name.rsplit(" · ", 1)[1]
            style = {"linestyle": "none", **line.style, "color": "dimgray"}
            handles.setdefault(reg, Line2D([], [], markeredgecolor="black" if line.baseline else "dimgray",
                                           markersize=BASELINE_PT if line.baseline else POINT_PT, **style))
    if rings:
        handles[f"chosen on val (best val {metric})"] = Line2D(
            [], [], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="black", markeredgewidth=1.5,
            linestyle="none")
    return handles


def _title(frame: pd.DataFrame, metric: str, rings: bool) -> str:
    seeds = pd.to_numeric(frame.get("seeds", pd.Series([1])), errors="coerce").dropna().astype(int)
    stds = [c for c in (f"{ENTROPY}_std", "top1_std", f"{metric}_std") if c in frame]
    if not stds or frame[stds].isna().all().all():
        bars = "one run per setting, no error bars"
    else:
        low, high = int(seeds.min()), int(seeds.max())
        bars = f"error bars: ± sample std over {low if low == high else f'{low}-{high}'} seeds"
    ring = f"; ring: best val {metric}" if rings else ""
    return f"Entropy vs accuracy, test split\n{bars}{ring}"


def _draw(ax, line: _Line, y: str) -> Any:
    rows = line.rows
    common = {"xerr": _errors(rows, ENTROPY), "yerr": _errors(rows, y), "capsize": 2.5, "elinewidth": 0.8,
              "label": line.name}
    if line.baseline:
        container = ax.errorbar(rows[ENTROPY], rows[y], fmt="X", color=line.style["color"], markersize=BASELINE_PT,
                                markeredgecolor="black", markeredgewidth=0.6, zorder=4, **common)
        return container
    return ax.errorbar(rows[ENTROPY], rows[y], markersize=POINT_PT, linewidth=1.3, zorder=3, **line.style, **common)


@dataclass
class _Panel:
    """What one axes collects while drawing, for the label placement: markers (x, y, size in points),
    polylines (error bars, line segments) and the labels to place."""

    markers: list[tuple[float, float, float]] = field(default_factory=list)
    paths: list[tuple[list[float], list[float]]] = field(default_factory=list)
    specs: list[LabelSpec] = field(default_factory=list)

    def add_point(self, x: float, y: float, size: float, xerr: float, yerr: float) -> None:
        self.markers.append((x, y, size))
        if xerr > 0:
            self.paths.append(([x - xerr, x + xerr], [y, y]))
        if yerr > 0:
            self.paths.append(([x, x], [y - yerr, y + yerr]))


def _err(rows: pd.DataFrame, column: str, k: int) -> float:
    errors = _errors(rows, column)
    return 0.0 if errors is None else float(errors[k])


def _draw_panel(ax, lines: list[_Line], y: str, *, dataset: str, many: bool, short: dict[str, str],
                rings: set[Any], out: EntropyFigure) -> _Panel:
    """Draw every line of one dataset with ``y`` on the y axis; record lines and rings in ``out``."""
    panel = _Panel()
    base_of = {line.context: line for line in lines if line.baseline}
    for line in lines:
        container = _draw(ax, line, y)
        xs, ys = list(line.rows[ENTROPY].astype(float)), list(line.rows[y].astype(float))
        if line.baseline:
            if len(base_of) <= MAX_REFERENCE_LINES:
                ax.axhline(ys[0], color=line.style["color"], linestyle="--", linewidth=0.9, alpha=0.6, zorder=1)
            panel.add_point(xs[0], ys[0], BASELINE_PT, _err(line.rows, ENTROPY, 0), _err(line.rows, y, 0))
            continue
        out.lines[(dataset, y, line.name)] = container
        panel.paths.append((xs, ys))
        if many and line.context in base_of:  # the strength -> 0 end of a line is its method's baseline
            b = base_of[line.context].rows.iloc[0]
            ax.plot([b[ENTROPY], xs[0]], [b[y], ys[0]], color=line.style["color"], linestyle=":", linewidth=0.9,
                    alpha=0.8, zorder=2)
            panel.paths.append(([float(b[ENTROPY]), xs[0]], [float(b[y]), ys[0]]))
        ringed = len(line.rows) > 1  # a line of one strength had nothing to choose
        for k, (x, v, (_, r)) in enumerate(zip(xs, ys, line.rows.iterrows())):
            size = POINT_PT
            if ringed and r.name in rings:
                ax.plot([x], [v], "o", markersize=RING_PT, markerfacecolor="none", markeredgecolor="black",
                        markeredgewidth=1.5, zorder=5, gid="chosen")
                out.chosen[(dataset, y, line.name)] = (x, v)
                size = RING_PT
            panel.add_point(x, v, size, _err(line.rows, ENTROPY, k), _err(line.rows, y, k))
            text = _strength_text(r["strength_name"], r["strength"]) or str(r["objective"])
            panel.specs.append(LabelSpec(x, v, f"{short[line.context]} {text}" if many else text,
                                         line.style["color"], size))
    return panel


def entropy_vs_accuracy_figure(agg: pd.DataFrame, *, metric: str = "MaxBoxAccV2",
                               chosen: Mapping[Any, str] | None = None, baseline: str = "ce") -> EntropyFigure:
    """Draw the plot of :func:`plot_entropy_vs_accuracy` and return it with its labels (for tests)."""
    frame = with_axis_names(agg).reset_index(drop=True)  # row labels name the rings
    _check(frame, metric)
    if "dataset" not in frame:
        frame = frame.assign(dataset="")
    full, short = _contexts(frame)
    frame = frame.assign(_context=full, _reg=[regularizer_of(o, s) for o, s in zip(frame["objective"],
                                                                                   frame["strength_name"])])
    many = len(short) > 1
    contexts = list(dict.fromkeys(frame["_context"]))
    regs = list(dict.fromkeys(frame.loc[~_is_base(frame, baseline), "_reg"]))
    rings = _rings(frame, chosen, metric)
    datasets = list(dict.fromkeys(frame["dataset"].astype(str)))
    fig, grid = plt.subplots(2, len(datasets), figsize=(max(7.6, 5.6 * len(datasets) + (2.0 if many else 0.0)), 8.6),
                             dpi=DPI, sharex="col", squeeze=False, layout="constrained")
    out = EntropyFigure(figure=fig, axes={}, labels=[])
    panels: dict[Any, _Panel] = {}
    every: list[_Line] = []
    for col, dataset in enumerate(datasets):
        lines = _lines(frame[frame["dataset"].astype(str) == dataset], baseline, contexts, regs)
        every += lines
        for row, y in enumerate(("top1", metric)):
            ax = out.axes[(dataset, y)] = grid[row][col]
            panels[ax] = _draw_panel(ax, lines, y, dataset=dataset, many=many, short=short, rings=rings, out=out)
            ax.set_ylabel(_y_label(y))
            ax.grid(alpha=0.3)
            ax.margins(x=0.12, y=0.14)
            if row == 0:
                ax.set_title(dataset, fontsize=10)
                ax.tick_params(labelbottom=True)
            else:
                ax.set_xlabel("mean predictive entropy H(p) / log K")
    handles = _legend(every, many, bool(out.chosen), metric)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=8, frameon=False,
               ncols=min(len(handles), 3))
    fig.suptitle(_title(frame, metric, bool(out.chosen)), fontsize=10)
    out.labels.extend(_freeze_and_label(fig, grid, panels))
    return out


def _y_label(column: str) -> str:
    entry = metric_entry(column)
    return f"{entry.name} ({entry.unit})" if entry.unit else entry.name


def _freeze_and_label(fig: Figure, grid, panels: dict[Any, _Panel]) -> list[PlacedLabel]:
    """Fix the layout and every axes' limits, then place the labels in display pixels."""
    for row in grid:
        for ax in row:
            low, high = ax.get_ylim()
            if ax.get_ylabel().startswith("Top-1") and high > 100.0:  # room for labels, no tick past 100 %
                ax.set_ylim(low, 100.0 + max(1.0, 0.1 * (100.0 - low)))
                ax.yaxis.set_major_locator(FixedLocator([t for t in ax.get_yticks() if t <= 100.0]))
    fig.canvas.draw()
    for row in grid:
        for ax in row:
            ax.set_xlim(ax.get_xlim())
            ax.set_ylim(ax.get_ylim())
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    labels: list[PlacedLabel] = []
    for ax, panel in panels.items():
        boxes = [marker_box(ax, x, y, size) for x, y, size in panel.markers]
        boxes += [box for xs, ys in panel.paths for box in path_boxes(ax, xs, ys)]
        labels += place_labels(ax, panel.specs, obstacles=boxes, renderer=renderer)
    return labels


def plot_entropy_vs_accuracy(agg: pd.DataFrame, path: Path, *, metric: str = "MaxBoxAccV2",
                             chosen: Mapping[Any, str] | None = None, baseline: str = "ce") -> Path:
    """Write the entropy-vs-accuracy PNG atomically (see the module docstring); returns ``path``.

    Args:
        agg: the aggregated leaderboard (one row per setting); a per-run frame with one run per setting
            works too (no error bars).
        metric: the localization metric of the bottom row (and of the val choice).
        chosen: objective name, or ``(method, objective name)``, -> the objective label to ring; None:
            the strength with the best ``val_<metric>`` of each line, when the frame has val columns.
            A line of a single strength is never ringed (there was nothing to choose).
        baseline: the objective drawn as the baseline.
    Raises:
        ConfigError: no entropy / top-1 / metric values, several rows per setting, or a ``chosen`` label
            that is no row.
    """
    drawn = entropy_vs_accuracy_figure(agg, metric=metric, chosen=chosen, baseline=baseline)
    try:
        return atomic_write(Path(path), lambda tmp: drawn.figure.savefig(tmp, format="png", dpi=DPI))
    finally:
        plt.close(drawn.figure)
