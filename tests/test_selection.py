"""The threshold is chosen on val and applied, unchanged, to test."""

import numpy as np
import pytest

from wsolbench.config import EvalConfig
from wsolbench.engine.evaluate import SplitEvaluation
from wsolbench.engine.selection import evaluation_block
from wsolbench.metrics import BoxAccumulator, ClassificationAccumulator, cam_thresholds


def _split(name, maps, boxes, correct):
    thresholds = cam_thresholds(0.1)
    acc = BoxAccumulator(thresholds)
    acc.update(np.stack(maps), boxes, [f"{name}/{i}" for i in range(len(maps))], cls_correct=np.array(correct))
    cls = ClassificationAccumulator(2)
    probs = np.array([[0.9, 0.1] if c else [0.1, 0.9] for c in correct])
    cls.update(probs, np.zeros(len(correct), dtype=int))
    return SplitEvaluation(split=name, classification=cls.compute(), boxes=acc.compute(), masks=None, seconds=0.0)


def _ramp_map(inner_value):
    """A 20x20 map: 1.0 on a 6x6 core, ``inner_value`` on a 12x12 ring around it, 0 elsewhere."""
    m = np.zeros((20, 20))
    m[4:16, 4:16] = inner_value
    m[7:13, 7:13] = 1.0
    return m


def test_val_threshold_is_applied_to_test_and_maxboxacc_stays_the_splits_own():
    big = np.array([[4, 4, 15, 15]])  # GT = the 12x12 ring region
    # val: the ring is at 0.5, so only thresholds below 0.5 keep the 12x12 box -> best index 0
    val = _split("val", [_ramp_map(0.5)] * 2, [big, big], [True, True])
    # test: ring at 0.2 -> thresholds >= 0.2 lose it; the test-optimal threshold is also low,
    # but GT box of image 1 is the core, which needs a high threshold.
    core = np.array([[7, 7, 12, 12]])
    test = _split("test", [_ramp_map(0.2), _ramp_map(0.2)], [big, core], [True, False])
    block = evaluation_block(val, test, EvalConfig(resolution=20, threshold_step=0.1))
    chosen = block["selection"]["threshold"]
    assert chosen["split"] == "val" and chosen["index"] == val.boxes.best_index(50, "largest")
    summary = block["test"]["summary"]
    curve = test.boxes.curve(iou=50, contours="largest")
    assert summary["GT-known Loc"] == pytest.approx(curve[chosen["index"]])
    assert summary["MaxBoxAcc"] == pytest.approx(curve.max())
    top1_curve = test.boxes.curve(iou=50, contours="largest", top1=True)
    assert summary["Top-1 Loc"] == pytest.approx(top1_curve[chosen["index"]])
    assert summary["Top-1 Loc"] <= summary["GT-known Loc"]
    assert block["selection"]["conventions"]["loc_contours"] == "largest"


def test_fixed_threshold_is_reported_too():
    big = np.array([[4, 4, 15, 15]])
    val = _split("val", [_ramp_map(0.5)], [big], [True])
    test = _split("test", [_ramp_map(0.5)], [big], [True])
    block = evaluation_block(val, test, EvalConfig(resolution=20, threshold_step=0.1, fixed_threshold=0.6))
    summary = block["test"]["summary"]
    index = test.boxes.index_of(0.6)
    assert summary["GT-known Loc@0.6"] == pytest.approx(test.boxes.curve(iou=50, contours="largest")[index])
    assert summary["GT-known Loc@0.6"] == 0.0  # at 0.6 only the 6x6 core is left: IoU 49/144 < 0.5
    assert summary["GT-known Loc"] == 100.0
