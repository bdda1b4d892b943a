"""Per-image outcomes: recomputed numbers equal the accumulators' exactly; the metric table; the base class."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolbench.errors import ConfigError, MetricInputError
from wsolbench.metrics import (
    METRIC_KEYS,
    METRICS,
    OUTCOME_KINDS,
    BoxAccumulator,
    ClassificationAccumulator,
    MaskAccumulator,
    MultiClassMaskAccumulator,
    best_iou,
    best_ious,
    best_threshold_index,
    box_counts,
    box_result_of,
    cam_thresholds,
    classification_result_of,
    correct_at,
    fast_score_histograms,
    from_arrays,
    gt_known_correct,
    gt_known_loc,
    iou_hits,
    ious_float32,
    mask_result_of,
    metric,
    multiclass_result_of,
    pooled_histograms,
    pxap_of,
    result_of,
    score_histograms,
    score_histograms_torch,
    to_arrays,
    top1_correct,
    top1_loc,
)
from wsolbench.metrics.base import exact_add, exact_value

pytestmark = pytest.mark.filterwarnings("error")

THRESHOLDS = cam_thresholds(0.01)


# ---------------------------------------------------------------- fixtures


def smooth_maps(rng: np.random.Generator, n: int, size=(24, 24)) -> np.ndarray:
    h, w = size
    maps = []
    for _ in range(n):
        up = cv2.resize(rng.random((5, 5)), (w, h), interpolation=cv2.INTER_CUBIC)
        maps.append((up - up.min()) / (up.max() - up.min()))
    return np.stack(maps).astype(np.float32)


def box_case(seed: int, n: int = 12, size=(24, 24)):
    rng = np.random.default_rng(seed)
    maps = smooth_maps(rng, n, size)
    h, w = size
    gts = []
    for _ in range(n):
        boxes = []
        for _ in range(rng.integers(1, 3)):
            x0, x1 = sorted(rng.integers(0, w, size=2))
            y0, y1 = sorted(rng.integers(0, h, size=2))
            boxes.append((x0, y0, x1, y1))
        gts.append(np.array(boxes, dtype=np.int64))
    ids = [f"img{i:03d}" for i in range(n)]
    return maps, gts, ids, rng.random(n) < 0.6


def feed_boxes(acc, maps, gts, ids, ok, batch):
    for lo in range(0, len(maps), batch):
        hi = lo + batch
        acc.update(maps[lo:hi], gts[lo:hi], ids[lo:hi], None if ok is None else ok[lo:hi])
    return acc


def mask_case(seed: int, n: int = 10, size=(20, 22)):
    rng = np.random.default_rng(seed)
    maps = smooth_maps(rng, n, size)
    masks = (maps + 0.3 * rng.standard_normal(maps.shape) > 0.55).astype(np.uint8)
    masks[rng.random(maps.shape) < 0.1] = 255
    masks[:, 0, 0] = 1  # every image has a foreground pixel
    return maps, masks, [f"m{i}" for i in range(n)]


def feed_masks(acc, maps, masks, ids, batch):
    for lo in range(0, len(maps), batch):
        acc.update(maps[lo : lo + batch], masks[lo : lo + batch], ids[lo : lo + batch])
    return acc


def class_case(seed: int, n: int = 40, k: int = 5):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, rng.integers(0, k, size=n), [f"c{i}" for i in range(n)]


def assert_same_outcomes(a, b):
    assert type(a) is type(b)
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, name
            np.testing.assert_array_equal(value, other, err_msg=name)
        else:
            assert value == other, name


def assert_same_box_results(a, b):
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.gt_known_curves, b.gt_known_curves)
    if a.top1_curves is None:
        assert b.top1_curves is None
    else:
        np.testing.assert_array_equal(a.top1_curves, b.top1_curves)


# ---------------------------------------------------------------- the metric table


PLAN_KEYS = ("top1", "mAP", "entropy", "entropy_norm", "MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2@30",
             "MaxBoxAccV2@50", "MaxBoxAccV2@70", "GT-known Loc", "Top-1 Loc", "threshold", "PxAP", "PIoU",
             "mPxAP", "images")


def test_metric_table_covers_every_key():
    assert set(PLAN_KEYS) == set(METRIC_KEYS) and len(METRICS) == len(set(METRIC_KEYS))
    for key in PLAN_KEYS:
        m = metric(key)
        assert m.key == key and m.name and m.description
        assert m.unit in ("%", "nats", "", "count")
    assert metric("PxAP").higher_is_better is True
    assert metric("entropy").unit == "nats" and metric("entropy").higher_is_better is None
    assert metric("images").unit == "count"


@pytest.mark.parametrize("fixed", [0.15, 0.0, 0.5, 0.999])
def test_fixed_threshold_variants_resolve_to_the_base(fixed):
    for base in ("GT-known Loc", "Top-1 Loc"):
        key = f"{base}@{fixed:g}"  # as the record's summary writes it
        m = metric(key)
        assert m.key == key and m.unit == "%" and m.higher_is_better is True
        assert f"{fixed:g}" in m.name and m.variant is None


def test_metric_variants_and_errors():
    assert metric("MaxBoxAccV2@40").unit == "%"
    assert metric("MaxBoxAccV2@50") is metric("MaxBoxAccV2@50")  # a table entry, not a variant
    with pytest.raises(ConfigError, match="unknown metric 'top5'"):
        metric("top5")
    with pytest.raises(ConfigError, match="no '@' variants"):
        metric("PxAP@0.5")
    with pytest.raises(ConfigError, match="CAM threshold"):
        metric("GT-known Loc@1.5")
    with pytest.raises(ConfigError, match="IoU"):
        metric("MaxBoxAccV2@33.3")
    with pytest.raises(ConfigError, match="unknown metric"):
        metric("Nope@0.1")


# ---------------------------------------------------------------- float32 IoUs


def test_float32_iou_of_exactly_0_7_still_counts():
    assert float(np.float32(0.7)) < 0.7  # why iou_hits compares in float32
    # A 9 x 9 blob: its box (5, 5, 14, 14) covers 10 x 10 = 100 pixels; the GT box 7 x 10 of them.
    scoremap = np.zeros((1, 32, 32), dtype=np.float32)
    scoremap[0, 5:14, 5:14] = 1.0
    gt = [np.array([[5, 5, 11, 14]])]
    acc = BoxAccumulator(THRESHOLDS, (30, 50, 70), per_image=True)
    acc.update(scoremap, gt, ["x"])
    r = acc.compute()
    assert r.curve(70, "largest")[0] == 100.0
    out = acc.outcomes()
    assert out.ious.dtype == np.float32
    assert float(out.ious[0, 1, 0]) < 0.7  # widened, the stored IoU would miss the cut
    assert gt_known_loc(out.ious, 0, iou=70) == 100.0
    assert_same_box_results(box_result_of(out), r)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**6)), min_size=1, max_size=50))
def test_ious_float32_keep_every_integer_percent_comparison(pairs):
    # ratios of integers like the IoUs, plus the exact cuts and their float64 neighbours
    ratios = np.array([min(p, q) / q for p, q in pairs])
    cuts = np.arange(101) / 100
    values = np.concatenate([ratios, cuts, np.nextafter(cuts, 0), np.nextafter(cuts, 1)]).clip(0, 1)
    stored = ious_float32(values)
    assert stored.dtype == np.float32
    assert np.abs(stored.astype(np.float64) - values).max() <= 1.2e-7
    for iou in range(101):
        np.testing.assert_array_equal(iou_hits(stored, iou), values >= iou / 100, err_msg=str(iou))
    np.testing.assert_array_equal(iou_hits(values, 70), correct_at(values, (70,))[0])


# ---------------------------------------------------------------- boxes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_outcomes_recompute_the_whole_split_exactly(seed):
    maps, gts, ids, ok = box_case(seed)
    acc = feed_boxes(BoxAccumulator(THRESHOLDS, (30, 50, 70), per_image=True), maps, gts, ids, ok, 5)
    r = acc.compute()
    out = acc.outcomes()
    assert out.ious.shape == (len(maps), 2, len(THRESHOLDS)) and list(out.image_ids) == ids
    np.testing.assert_array_equal(out.cls_correct, ok)
    assert_same_box_results(box_result_of(out), r)
    assert_same_box_results(result_of(out), r)
    correct, correct_top1 = box_counts(out.ious, out.iou_thresholds, out.cls_correct)
    np.testing.assert_array_equal(correct, acc.correct)
    np.testing.assert_array_equal(correct_top1, acc.correct_top1)
    for index in (0, 17, 50, 99):
        for contours in ("all", "largest"):
            for iou in (30, 50, 70):
                assert gt_known_loc(out.ious, index, iou, contours) == r.gt_known_loc(index, iou, contours)
                assert top1_loc(out.ious, out.cls_correct, index, iou, contours) == r.top1_loc(index, iou, contours)
    hits = gt_known_correct(out.ious, 20)
    assert hits.dtype == np.bool_ and hits.shape == (len(maps),)
    np.testing.assert_array_equal(top1_correct(out.ious, out.cls_correct, 20), hits & ok)
    # the float32 IoUs are the protocol's IoUs, rounded
    exact = np.stack([np.stack(best_ious(m, g, THRESHOLDS)) for m, g in zip(maps, gts)])
    np.testing.assert_allclose(out.ious, exact, rtol=0, atol=1.2e-7)
    np.testing.assert_array_equal(best_iou(out.ious, 30, "largest"), out.ious[:, 1, 30])
    np.testing.assert_array_equal(best_iou(out.ious), out.ious[:, 0].max(axis=1))
    np.testing.assert_array_equal(best_threshold_index(out.ious), out.ious[:, 0].argmax(axis=1))


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.booleans())
def test_box_subset_equals_a_fresh_accumulator(seed, repeats, with_top1):
    maps, gts, ids, ok = box_case(seed % 1000, n=10)
    ok = ok if with_top1 else None
    out = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, ok, 4).outcomes()
    rng = np.random.default_rng(seed)
    subset = rng.choice(10, size=int(rng.integers(1, 11)), replace=repeats)
    fresh = BoxAccumulator(THRESHOLDS)
    feed_boxes(fresh, maps[subset], [gts[i] for i in subset], [ids[i] for i in subset],
               None if ok is None else ok[subset], 3)
    assert_same_box_results(box_result_of(out, subset), fresh.compute())
    mask = np.zeros(10, dtype=bool)
    mask[subset] = True
    assert_same_box_results(box_result_of(out, mask), box_result_of(out, np.flatnonzero(mask)))


def test_box_merge_of_halves_equals_whole_and_engines_agree():
    maps, gts, ids, ok = box_case(5, n=9)
    whole = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, ok, 4)
    first = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps[:4], gts[:4], ids[:4], ok[:4], 2)
    second = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps[4:], gts[4:], ids[4:], ok[4:], 5)
    merged = first.merge(second)
    assert_same_outcomes(merged.outcomes(), whole.outcomes())
    assert_same_box_results(merged.compute(), whole.compute())
    exact = feed_boxes(BoxAccumulator(THRESHOLDS, engine="exact", per_image=True), maps, gts, ids, ok, 9)
    threaded = feed_boxes(BoxAccumulator(THRESHOLDS, workers=2, per_image=True), maps, gts, ids, ok, 9)
    assert_same_outcomes(exact.outcomes(), whole.outcomes())
    assert_same_outcomes(threaded.outcomes(), whole.outcomes())
    plain = feed_boxes(BoxAccumulator(THRESHOLDS), maps, gts, ids, ok, 4)
    np.testing.assert_array_equal(plain.correct, whole.correct)
    np.testing.assert_array_equal(plain.correct_top1, whole.correct_top1)


def test_box_outcomes_without_top1_and_options():
    maps, gts, ids, _ = box_case(3, n=4)
    acc = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, None, 4)
    out = acc.outcomes()
    assert out.cls_correct is None
    assert_same_box_results(box_result_of(out), acc.compute())
    with pytest.raises(MetricInputError, match="top-1"):
        box_result_of(out).curve(50, top1=True)
    with pytest.raises(MetricInputError, match="per_image=True"):
        BoxAccumulator(THRESHOLDS).outcomes()
    with pytest.raises(ValueError, match="per_image"):
        BoxAccumulator(THRESHOLDS).merge(BoxAccumulator(THRESHOLDS, per_image=True))
    with pytest.raises(MetricInputError, match="no images"):
        gt_known_loc(out.ious[:0], 0)
    empty = BoxAccumulator(THRESHOLDS, per_image=True).outcomes()
    assert len(empty) == 0 and empty.ious.shape == (0, 2, len(THRESHOLDS)) and empty.cls_correct is None
    acc.reset()
    assert len(acc.outcomes()) == 0


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("engine", ["fast", "exact", "torch"])
def test_mask_outcomes_recompute_exactly(engine):
    maps, masks, ids = mask_case(0)
    if engine == "torch":
        acc = MaskAccumulator(THRESHOLDS, per_image=True)
        feed_masks(acc, torch.from_numpy(maps), torch.from_numpy(masks), ids, 4)
    else:
        acc = feed_masks(MaskAccumulator(THRESHOLDS, engine=engine, per_image=True), maps, masks, ids, 4)
    out = acc.outcomes()
    assert out.fg_hist.dtype == np.int32 and out.fg_hist.shape == (len(maps), len(THRESHOLDS) + 2)
    expected = [score_histograms(m, k, THRESHOLDS) for m, k in zip(maps, masks)]
    np.testing.assert_array_equal(out.fg_hist, [e[0] for e in expected])
    np.testing.assert_array_equal(out.bg_hist, [e[1] for e in expected])
    fg, bg = pooled_histograms(out.fg_hist, out.bg_hist)
    np.testing.assert_array_equal(fg, acc.fg_hist)
    np.testing.assert_array_equal(bg, acc.bg_hist)
    assert mask_result_of(out).to_dict() == acc.compute().to_dict()
    assert pxap_of(out.fg_hist, out.bg_hist) == acc.compute().pxap
    plain = feed_masks(MaskAccumulator(THRESHOLDS), maps, masks, ids, 3)
    assert plain.compute().to_dict() == acc.compute().to_dict()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_mask_subset_equals_a_fresh_accumulator(seed, repeats):
    maps, masks, ids = mask_case(seed % 100, n=8)
    out = feed_masks(MaskAccumulator(THRESHOLDS, per_image=True, workers=2), maps, masks, ids, 3).outcomes()
    rng = np.random.default_rng(seed)
    subset = rng.choice(8, size=int(rng.integers(1, 9)), replace=repeats)
    fresh = feed_masks(MaskAccumulator(THRESHOLDS), maps[subset], masks[subset], [ids[i] for i in subset], 5)
    assert mask_result_of(out, subset).to_dict() == fresh.compute().to_dict()
    assert pxap_of(out.fg_hist, out.bg_hist, subset) == fresh.compute().pxap


def test_mask_merge_of_halves_equals_whole():
    maps, masks, ids = mask_case(4, n=7)
    whole = feed_masks(MaskAccumulator(THRESHOLDS, per_image=True), maps, masks, ids, 7)
    first = feed_masks(MaskAccumulator(THRESHOLDS, per_image=True), maps[:3], masks[:3], ids[:3], 2)
    second = feed_masks(MaskAccumulator(THRESHOLDS, per_image=True), maps[3:], masks[3:], ids[3:], 2)
    merged = first.merge(second)
    assert_same_outcomes(merged.outcomes(), whole.outcomes())
    assert merged.compute().to_dict() == whole.compute().to_dict()


def test_per_image_histogram_functions():
    maps, masks, _ = mask_case(6, n=3)
    expected = [score_histograms(m, k, THRESHOLDS) for m, k in zip(maps, masks)]
    for got in (fast_score_histograms(maps, masks, THRESHOLDS, per_image=True),
                fast_score_histograms(maps, masks, THRESHOLDS, workers=2, per_image=True),
                score_histograms_torch(torch.from_numpy(maps), torch.from_numpy(masks), THRESHOLDS, per_image=True)):
        for rows, exp in zip(got, zip(*expected)):
            assert rows.dtype == np.int64
            np.testing.assert_array_equal(rows, np.stack(exp))
    one = fast_score_histograms(maps[0], masks[0], THRESHOLDS, per_image=True)
    np.testing.assert_array_equal(one[0], expected[0][0][None])


# ---------------------------------------------------------------- classification


def feed_probs(acc, probs, labels, ids, batch):
    for lo in range(0, len(probs), batch):
        acc.update(probs[lo : lo + batch], labels[lo : lo + batch], ids[lo : lo + batch])
    return acc


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.integers(1, 9))
def test_classification_subset_equals_a_fresh_accumulator(seed, repeats, batch):
    probs, labels, ids = class_case(seed % 1000)
    acc = feed_probs(ClassificationAccumulator(5, per_image=True), probs, labels, ids, 7)
    out = acc.outcomes()
    assert classification_result_of(out) == acc.compute()
    np.testing.assert_array_equal(out.predicted, probs.argmax(axis=1))
    np.testing.assert_array_equal(out.label, labels)
    rng = np.random.default_rng(seed)
    subset = rng.choice(len(probs), size=int(rng.integers(1, len(probs))), replace=repeats)
    fresh = feed_probs(ClassificationAccumulator(5), probs[subset], labels[subset], [ids[i] for i in subset], batch)
    assert classification_result_of(out, subset) == fresh.compute()  # exact, entropy included


def test_classification_merge_is_exact_and_checks():
    probs, labels, ids = class_case(7, n=31)
    whole = feed_probs(ClassificationAccumulator(5, per_image=True), probs, labels, ids, 31)
    first = feed_probs(ClassificationAccumulator(5, per_image=True), probs[:13], labels[:13], ids[:13], 4)
    second = feed_probs(ClassificationAccumulator(5, per_image=True), probs[13:], labels[13:], ids[13:], 6)
    merged = second.merge(first)  # order changes the outcomes' order, not the numbers
    assert merged.compute() == whole.compute()
    assert merged.entropy_sum == whole.entropy_sum
    assert list(merged.outcomes().image_ids) == ids[13:] + ids[:13]
    with pytest.raises(MetricInputError, match="image_ids"):
        ClassificationAccumulator(5, per_image=True).update(probs, labels)
    with pytest.raises(MetricInputError, match="2 image ids for 31"):
        ClassificationAccumulator(5).update(probs, labels, ids[:2])
    with pytest.raises(ValueError, match=r"numbers of classes \(5 vs 4\)"):
        ClassificationAccumulator(5).merge(ClassificationAccumulator(4))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 20), min_size=0, max_size=60), st.data())
def test_exact_sum_is_fsum_whatever_the_split(values, data):
    cut = data.draw(st.integers(0, len(values)))
    a, b = [], []
    exact_add(a, values[:cut])
    exact_add(b, values[cut:])
    exact_add(a, b)
    assert exact_value(a) == math.fsum(values)


# ---------------------------------------------------------------- multi-class masks


def multiclass_case(seed: int, n: int = 12, k: int = 4):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, k + 1, size=(n, 8, 8)).astype(np.uint8)
    masks[rng.random(masks.shape) < 0.1] = 255
    return rng.random((n, 8, 8)), masks, rng.integers(0, k, size=n), [f"p{i}" for i in range(n)]


def test_multiclass_outcomes_recompute_exactly():
    maps, masks, classes, ids = multiclass_case(0)
    acc = MultiClassMaskAccumulator(cam_thresholds(0.05), 4, per_image=True)
    for lo in range(0, 12, 5):
        acc.update(maps[lo : lo + 5], masks[lo : lo + 5], classes[lo : lo + 5], ids[lo : lo + 5])
    plain = MultiClassMaskAccumulator(cam_thresholds(0.05), 4)
    plain.update(maps, masks, classes, ids)
    r = acc.compute()
    assert r.to_dict() == plain.compute().to_dict()
    out = acc.outcomes()
    np.testing.assert_array_equal(out.classes, classes)
    assert multiclass_result_of(out).to_dict() == r.to_dict()
    subset = np.array([3, 1, 1, 7, 10, 11, 0])
    fresh = MultiClassMaskAccumulator(cam_thresholds(0.05), 4)
    fresh.update(maps[subset], masks[subset], classes[subset], [ids[i] for i in subset])
    assert multiclass_result_of(out, subset).to_dict() == fresh.compute().to_dict()
    half = MultiClassMaskAccumulator(cam_thresholds(0.05), 4, per_image=True)
    half.update(maps[:6], masks[:6], classes[:6], ids[:6])
    rest = MultiClassMaskAccumulator(cam_thresholds(0.05), 4, per_image=True)
    rest.update(maps[6:], masks[6:], classes[6:], ids[6:])
    assert_same_outcomes(half.merge(rest).outcomes(), out)


# ---------------------------------------------------------------- flat arrays


def all_outcomes():
    maps, gts, ids, ok = box_case(9, n=5)
    boxes = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, ok, 5).outcomes()
    no_top1 = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, None, 5).outcomes()
    maps, masks, ids = mask_case(9, n=4)
    pixels = feed_masks(MaskAccumulator(THRESHOLDS, per_image=True), maps, masks, ids, 4).outcomes()
    probs, labels, ids = class_case(9, n=6)
    classes = feed_probs(ClassificationAccumulator(5, per_image=True), probs, labels, ids, 6).outcomes()
    maps, masks, cls, ids = multiclass_case(9)
    multi = MultiClassMaskAccumulator(cam_thresholds(0.05), 4, per_image=True)
    multi.update(maps, masks, cls, ids)
    return boxes, no_top1, pixels, classes, multi.outcomes()


def test_to_arrays_round_trip_through_npz():
    boxes, no_top1, pixels, classes, multi = all_outcomes()
    arrays = {}
    for out in (boxes, pixels, classes, multi):
        arrays.update(to_arrays(out, prefix="test/"))
    arrays.update(to_arrays(no_top1, prefix="val/"))
    assert set(to_arrays(boxes)) == {"boxes.thresholds", "boxes.iou_thresholds", "boxes.image_ids",
                                     "boxes.ious", "boxes.cls_correct"}
    assert "val/boxes.cls_correct" not in arrays
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        loaded = {k: data[k] for k in data.files}
    test = from_arrays(loaded, prefix="test/")
    assert set(test) == set(OUTCOME_KINDS)
    for out in (boxes, pixels, classes, multi):
        assert_same_outcomes(test[out.kind], out)
    val = from_arrays(loaded, prefix="val/")
    assert set(val) == {"boxes"}
    assert_same_outcomes(val["boxes"], no_top1)
    assert_same_box_results(box_result_of(test["boxes"]), box_result_of(boxes))


def test_from_arrays_checks_the_arrays():
    boxes, _, pixels, _, _ = all_outcomes()
    arrays = to_arrays(pixels)
    del arrays["masks.bg_hist"]
    with pytest.raises(MetricInputError, match="masks.bg_hist is missing"):
        from_arrays(arrays)
    arrays = to_arrays(boxes)
    arrays["boxes.ious"] = arrays["boxes.ious"][:, :, :5]
    with pytest.raises(MetricInputError, match="ious must be float32"):
        from_arrays(arrays)
    arrays = to_arrays(boxes)
    arrays["boxes.cls_correct"] = arrays["boxes.cls_correct"][:2]
    with pytest.raises(MetricInputError, match="cls_correct has shape"):
        from_arrays(arrays)
    assert from_arrays({"other": np.zeros(2)}) == {}


def test_outcomes_are_read_only_and_select_checks():
    boxes, *_ = all_outcomes()
    with pytest.raises(ValueError):
        boxes.ious[0, 0, 0] = 1.0
    with pytest.raises(MetricInputError, match="bool subset"):
        boxes.select(np.array([True, False]))
    with pytest.raises(MetricInputError, match="int positions"):
        boxes.select(np.array([0.5]))
    assert len(boxes.select([])) == 0


# ---------------------------------------------------------------- the base class


def test_refused_merges_change_nothing():
    maps, gts, ids, ok = box_case(1, n=4)
    with_top1 = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, ok, 4)
    without = feed_boxes(BoxAccumulator(THRESHOLDS, per_image=True), maps, gts, ids, None, 4)
    before = with_top1.correct.copy()
    with pytest.raises(ValueError, match="top-1 counts with one without"):
        with_top1.merge(without)
    assert with_top1.count == 4 and len(with_top1.outcomes()) == 4
    np.testing.assert_array_equal(with_top1.correct, before)
    with pytest.raises(ValueError, match=r"IoU thresholds \(\(30, 50, 70\) vs \(50,\)\)"):
        BoxAccumulator(THRESHOLDS).merge(BoxAccumulator(THRESHOLDS, (50,)))
    with pytest.raises(ValueError, match="thresholds .*100 vs 20 values"):
        MaskAccumulator(THRESHOLDS).merge(MaskAccumulator(cam_thresholds(0.05)))
    with pytest.raises(ValueError, match="cannot merge a MaskAccumulator with BoxAccumulator"):
        MaskAccumulator(THRESHOLDS).merge(BoxAccumulator(THRESHOLDS))
    with pytest.raises(ValueError, match="itself"):
        with_top1.merge(with_top1)
    # an empty accumulator merges with either
    assert BoxAccumulator(THRESHOLDS, per_image=True).merge(without).compute().count == 4
