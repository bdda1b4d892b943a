"""The entropy-vs-accuracy plot and the threshold sweeps: what is drawn is the data, labels never collide."""

import copy
import itertools
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from wsolbench.errors import ConfigError, DataError
from wsolbench.report import aggregate_seeds, runs_frame
from wsolbench.report.plots import (
    entropy_vs_accuracy_figure,
    plot_entropy_vs_accuracy,
    plot_threshold_sweeps,
    threshold_sweeps_figure,
)

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "leaderboards" / "synthetic-quick" / "records"
METHODS = ROOT / "leaderboards" / "synthetic-quick-methods" / "records"
REGULARIZERS = {"kl_uniform": ("lam", [1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0]),
                "label_smoothing": ("eps", [0.01, 0.05, 0.1, 0.2, 0.3, 0.5]),
                "confidence_penalty": ("beta", [0.01, 0.05, 0.1, 0.3, 0.5, 1.0])}


def _sweep_frame(datasets=("synthetic",), methods=("cam",), seeds=3):
    """ce and 3 regularizers x 6 strengths, aggregated over ``seeds`` (std columns NaN for one seed).

    Entropy grows with the strength, localization peaks in the middle, and val prefers a different
    strength than test would (kl_uniform: val peaks at lam=1e-3, test at lam=0.01)."""
    rows = []
    std = (lambda v: v) if seeds > 1 else (lambda v: np.nan)
    for dataset, method in itertools.product(datasets, methods):
        common = {"dataset": dataset, "backbone": "small_cnn", "method": method, "cam": "cam",
                  "method_name": method.split("(")[0], "seeds": seeds}
        rows.append({**common, "objective": "ce", "objective_name": "ce", "strength_name": None, "strength": None,
                     "top1": 97.0, "top1_std": std(0.5), "entropy_norm": 0.08, "entropy_norm_std": std(0.01),
                     "MaxBoxAccV2": 62.0, "MaxBoxAccV2_std": std(1.0), "val_MaxBoxAccV2": 63.0})
        for j, (name, (param, values)) in enumerate(REGULARIZERS.items()):
            for k, value in enumerate(values):
                loc = 62 + 6 * np.exp(-((k - 2 - 0.5 * j) ** 2) / 2) - 1.5 * j
                rows.append({**common, "objective": f"{name}({param}={value:g})", "objective_name": name,
                             "strength_name": param, "strength": value, "top1": 97.5 - 0.9 * k - j,
                             "top1_std": std(0.4 + 0.1 * k), "entropy_norm": 0.1 + 0.13 * k + 0.03 * j,
                             "entropy_norm_std": std(0.01 + 0.004 * k), "MaxBoxAccV2": loc,
                             "MaxBoxAccV2_std": std(0.8 + 0.1 * k),
                             "val_MaxBoxAccV2": loc + (3.0 if (name, k) == ("kl_uniform", 1) else 0.0)})
    return pd.DataFrame(rows)


def _text_boxes(fig: Figure) -> dict:
    """Every annotation's text box (display pixels) per axes, measured on a fresh draw of the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return {ax: [Text.get_window_extent(t, renderer) for t in ax.texts if isinstance(t, Annotation)]
            for ax in fig.axes}


def _marker_boxes(ax) -> list[Bbox]:
    """The display box of every marker drawn in ``ax`` (points, baselines, rings), from the artists."""
    boxes = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " ") or line.get_markersize() == 0:
            continue
        half = line.get_markersize() * ax.figure.dpi / 72.0 / 2.0
        for x, y in ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()])):
            boxes.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    return boxes


def _intersect(a: Bbox, b: Bbox) -> bool:
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def test_labels_never_overlap_each_other_or_a_marker_and_stay_in_their_panel():
    drawn = entropy_vs_accuracy_figure(_sweep_frame())
    try:
        boxes = _text_boxes(drawn.figure)
        assert sum(len(b) for b in boxes.values()) == 2 * 18  # every strength labelled, in both rows
        for ax, texts in boxes.items():
            for a, b in itertools.combinations(texts, 2):
                assert not _intersect(a, b), (a, b)
            markers = _marker_boxes(ax)
            assert len(markers) >= 19
            frame = ax.get_window_extent()
            for text in texts:
                assert not any(_intersect(text, m) for m in markers), text
                assert frame.x0 <= text.x0 and text.x1 <= frame.x1 and frame.y0 <= text.y0 and text.y1 <= frame.y1
        assert {t.get_text() for t in drawn.axes[("synthetic", "top1")].texts} >= {"λ=0.0001", "ε=0.5", "β=1"}
    finally:
        matplotlib.pyplot.close(drawn.figure)


def test_one_line_per_regularizer_with_error_bars_and_the_baseline_marked():
    drawn = entropy_vs_accuracy_figure(_sweep_frame())
    try:
        for y in ("top1", "MaxBoxAccV2"):
            ax = drawn.axes[("synthetic", y)]
            containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
            assert len(containers) == 4  # 3 regularizers + the baseline point
            assert all(c.has_xerr and c.has_yerr for c in containers)
            assert set(n for d, yy, n in drawn.lines if yy == y) == set(REGULARIZERS)
            line = drawn.lines[("synthetic", y, "kl_uniform")].lines[0]
            assert list(line.get_xdata()) == sorted(line.get_xdata())  # through the strengths in order
            assert len(line.get_xdata()) == 6
            dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
            assert [ln.get_ydata()[0] for ln in dashed] == [97.0 if y == "top1" else 62.0]
            baseline = [ln for ln in ax.lines if ln.get_marker() == "X"]
            assert len(baseline) == 1 and baseline[0].get_xdata()[0] == 0.08
    finally:
        matplotlib.pyplot.close(drawn.figure)


def test_the_ring_sits_on_the_val_choice_not_the_test_best():
    frame = _sweep_frame()
    kl = frame[frame["objective_name"] == "kl_uniform"]
    val_pick, test_pick = kl.loc[kl["val_MaxBoxAccV2"].idxmax()], kl.loc[kl["MaxBoxAccV2"].idxmax()]
    assert val_pick["strength"] == 1e-3 and test_pick["strength"] == 1e-2
    drawn = entropy_vs_accuracy_figure(frame)
    try:
        ax = drawn.axes[("synthetic", "MaxBoxAccV2")]
        rings = [ln for ln in ax.lines if ln.get_gid() == "chosen"]
        assert len(rings) == 3  # one per regularizer
        at = {(float(r.get_xdata()[0]), float(r.get_ydata()[0])) for r in rings}
        assert (val_pick["entropy_norm"], val_pick["MaxBoxAccV2"]) in at
        assert (test_pick["entropy_norm"], test_pick["MaxBoxAccV2"]) not in at
        assert drawn.chosen[("synthetic", "MaxBoxAccV2", "kl_uniform")] == (val_pick["entropy_norm"],
                                                                            val_pick["MaxBoxAccV2"])
    finally:
        matplotlib.pyplot.close(drawn.figure)
    given = entropy_vs_accuracy_figure(frame, chosen={"kl_uniform": "kl_uniform(lam=0.3)"})
    try:
        assert given.chosen == {(d, y, "kl_uniform"): (0.1 + 0.13 * 4, row)
                                for d, y, row in [("synthetic", "top1", 97.5 - 0.9 * 4),
                                                  ("synthetic", "MaxBoxAccV2",
                                                   float(kl.loc[kl["strength"] == 0.3, "MaxBoxAccV2"].iloc[0]))]}
    finally:
        matplotlib.pyplot.close(given.figure)
    with pytest.raises(ConfigError, match="no such row"):
        entropy_vs_accuracy_figure(frame, chosen={"kl_uniform": "kl_uniform(lam=7)"})


def test_one_column_of_panels_per_dataset_and_one_line_per_method_and_regularizer():
    drawn = entropy_vs_accuracy_figure(_sweep_frame(datasets=("synthetic", "digits"),
                                                    methods=("cam", "adl(drop_rate=0.75)")))
    try:
        assert len(drawn.figure.axes) == 4
        assert {ax.get_title() for ax in drawn.figure.axes} == {"synthetic", "digits", ""}
        assert set(drawn.axes) == {(d, y) for d in ("synthetic", "digits") for y in ("top1", "MaxBoxAccV2")}
        names = {n for d, y, n in drawn.lines if (d, y) == ("digits", "top1")}
        assert names == {f"{m} · {r}" for m in ("cam", "adl(drop_rate=0.75)") for r in REGULARIZERS}
        ax = drawn.axes[("digits", "top1")]
        cam = drawn.lines[("digits", "top1", "cam · kl_uniform")].lines[0]
        adl = drawn.lines[("digits", "top1", "adl(drop_rate=0.75) · kl_uniform")].lines[0]
        assert cam.get_color() != adl.get_color()  # methods told apart by colour
        assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2 * 4
        boxes = _text_boxes(drawn.figure)[ax]
        assert all(not _intersect(a, b) for a, b in itertools.combinations(boxes, 2))
        assert any(t.get_text() == "adl λ=0.01" for t in ax.texts)
    finally:
        matplotlib.pyplot.close(drawn.figure)
    one = entropy_vs_accuracy_figure(_sweep_frame(methods=("cam", "adl(drop_rate=0.75)")),
                                     chosen={("adl", "kl_uniform"): "kl_uniform(lam=0.3)"})
    try:  # a (method, objective) key rings that method's line only
        line = "adl(drop_rate=0.75) · kl_uniform"
        assert set(one.chosen) == {("synthetic", y, line) for y in ("top1", "MaxBoxAccV2")}
    finally:
        matplotlib.pyplot.close(one.figure)


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/record.json"))]


def test_the_committed_bench_one_seed_one_strength_per_regularizer():
    agg = aggregate_seeds(runs_frame(_records(QUICK)))
    assert len(agg) == 4 and (agg["seeds"] == 1).all()
    drawn = entropy_vs_accuracy_figure(agg)
    try:
        ax = drawn.axes[("synthetic", "MaxBoxAccV2")]
        containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(containers) == 4 and not any(c.has_xerr or c.has_yerr for c in containers)
        assert {t.get_text() for t in ax.texts} == {"ε=0.1", "β=0.5", "λ=0.3"}
        assert drawn.chosen == {}  # one strength per line: nothing was chosen
        assert "no error bars" in drawn.figure.get_suptitle()
    finally:
        matplotlib.pyplot.close(drawn.figure)


def test_ten_methods_of_the_committed_zoo_get_apart_labels():
    agg = aggregate_seeds(runs_frame(_records(METHODS)))
    drawn = entropy_vs_accuracy_figure(agg)
    try:
        for ax, texts in _text_boxes(drawn.figure).items():
            assert len(texts) == 10
            assert all(not _intersect(a, b) for a, b in itertools.combinations(texts, 2))
            markers = _marker_boxes(ax)
            assert all(not _intersect(t, m) for t in texts for m in markers)
    finally:
        matplotlib.pyplot.close(drawn.figure)


def test_the_png_is_written_atomically(tmp_path, monkeypatch):
    path = plot_entropy_vs_accuracy(_sweep_frame(seeds=1), tmp_path / "plot.png")
    first = path.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"

    def broken(self, fname, **kwargs):
        Path(fname).write_bytes(b"half a png")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        plot_entropy_vs_accuracy(_sweep_frame(seeds=1), path)
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_frames_that_cannot_be_plotted_are_refused():
    runs = pd.concat([_sweep_frame(seeds=1)] * 2, ignore_index=True)
    with pytest.raises(ConfigError, match="aggregate over seeds first"):
        entropy_vs_accuracy_figure(runs)
    with pytest.raises(ConfigError, match="no PxAP values"):
        entropy_vs_accuracy_figure(_sweep_frame(), metric="PxAP")


# --------------------------------------------------------------------- threshold sweeps


def _one(name="cam-ce-39f877d7") -> dict:
    return json.loads((QUICK / name / "record.json").read_text())


def _curves(fig: Figure, gid: str) -> list:
    return [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == gid]


def test_the_curves_drawn_are_the_records_numbers():
    record = _one()
    fig = threshold_sweeps_figure([record])
    try:
        boxes, masks = record["test"]["boxes"], record["test"]["masks"]
        (loc,) = _curves(fig, "loc")
        assert np.array_equal(loc.get_xdata(), boxes["thresholds"])
        assert np.array_equal(loc.get_ydata(), boxes["curves"]["gt_known"]["largest"]["50"])
        (v2,) = _curves(fig, "v2")
        by_hand = [sum(boxes["curves"]["gt_known"]["all"][k][i] for k in ("30", "50", "70")) / 3
                   for i in range(len(boxes["thresholds"]))]
        assert np.allclose(v2.get_ydata(), by_hand)
        assert max(by_hand) <= record["test"]["summary"]["MaxBoxAccV2"] + 1e-9  # mean of maxima >= max of mean
        (pr,) = _curves(fig, "pr")
        assert np.array_equal(pr.get_xdata(), masks["recall"]) and np.array_equal(pr.get_ydata(), masks["precision"])
        (mark,) = _curves(fig, "chosen")
        assert mark.get_xdata()[0] == record["selection"]["threshold"]["threshold"]
        assert mark.get_ydata()[0] == record["test"]["summary"]["GT-known Loc"]
        assert len(fig.axes) == 3
    finally:
        matplotlib.pyplot.close(fig)


def test_a_record_without_masks_gives_only_box_panels_and_seeds_are_averaged():
    a = _one()
    a["test"]["masks"] = None
    b = copy.deepcopy(a)
    b["summary"]["seed"] = 1
    curve = a["test"]["boxes"]["curves"]["gt_known"]["largest"]["50"]
    b["test"]["boxes"]["curves"]["gt_known"]["largest"]["50"] = [v / 2 for v in curve]
    fig = threshold_sweeps_figure([a, b])
    try:
        assert len(fig.axes) == 2 and "mean over each setting's runs" in fig.get_suptitle()
        assert not any("precision" in ax.get_title() for ax in fig.axes)
        (loc,) = _curves(fig, "loc")
        assert np.allclose(loc.get_ydata(), [0.75 * v for v in curve])  # the mean of the two seeds
    finally:
        matplotlib.pyplot.close(fig)


def test_mask_only_records_settings_filter_and_bad_inputs(tmp_path):
    record = _one()
    record["test"]["boxes"] = None
    fig = threshold_sweeps_figure([record, _one("cam-kl_uniform-lam0.3-7858dfcf")], settings=["ce"])
    try:
        assert len(fig.axes) == 1 and "precision" in fig.axes[0].get_title()
        assert len(_curves(fig, "pr")) == 1
    finally:
        matplotlib.pyplot.close(fig)
    with pytest.raises(ConfigError, match="no record matches"):
        threshold_sweeps_figure([_one()], settings=["nothing"])
    bare = _one()
    bare["test"]["boxes"] = bare["test"]["masks"] = None
    with pytest.raises(DataError, match="no box or mask curves"):
        threshold_sweeps_figure([bare])
    path = plot_threshold_sweeps(_records(METHODS), tmp_path / "sweeps.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["sweeps.png"]
