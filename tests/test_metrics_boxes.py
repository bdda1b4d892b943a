"""Box metrics: hand cases with exact answers, a slow reference, and properties."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolbench.errors import MetricInputError
from wsolbench.metrics import (
    BoxAccumulator,
    best_ious,
    box_iou,
    boxes_at_thresholds,
    cam_thresholds,
    quantize_scoremap,
    rescale_boxes,
)

pytestmark = pytest.mark.filterwarnings("error")

THRESHOLDS = cam_thresholds(0.01)


# ---------------------------------------------------------------- helpers


def smooth_maps(seed: int, n: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Random smooth maps: a 7x7 grid upsampled bicubically, min-max normalised."""
    rng = np.random.default_rng(seed)
    h, w = size
    maps = []
    for _ in range(n):
        grid = rng.random((7, 7))
        up = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        up = (up - up.min()) / (up.max() - up.min())
        maps.append(up)
    return np.stack(maps)


def random_gt(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    boxes = []
    for _ in range(rng.integers(1, 3)):
        x0, x1 = sorted(rng.integers(0, w, size=2))
        y0, y1 = sorted(rng.integers(0, h, size=2))
        boxes.append((x0, y0, x1, y1))
    return np.array(boxes, dtype=np.int64)


def slow_iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union if union > 0 else 0.0


def slow_image_correct(scoremap, gt, thresholds, iou_thresholds):
    """Per threshold, cv2.threshold + findContours in a plain loop.

    Returns bool (mode, iou, threshold) with modes ("all", "largest").
    """
    h, w = scoremap.shape
    gray = (scoremap * 255).astype(np.uint8)
    out = np.zeros((2, len(iou_thresholds), len(thresholds)), dtype=bool)
    for ti, t in enumerate(thresholds):
        _, binary = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        for mode in (0, 1):
            if len(contours) == 0:
                boxes = [(0, 0, 0, 0)]
            else:
                chosen = contours if mode == 0 else [max(contours, key=cv2.contourArea)]
                boxes = []
                for c in chosen:
                    x, y, bw, bh = cv2.boundingRect(c)
                    boxes.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
            best = max(slow_iou(p, g) for p in boxes for g in gt)
            for k, delta in enumerate(iou_thresholds):
                out[mode, k, ti] = best >= delta / 100
    return out


def single_result(scoremap, gt, **kwargs):
    acc = BoxAccumulator(THRESHOLDS, **kwargs)
    acc.update(scoremap[None], [np.asarray(gt)], ["img"])
    return acc.compute()


# ---------------------------------------------------------------- conventions


def test_cam_thresholds_are_np_arange():
    np.testing.assert_array_equal(cam_thresholds(0.01), np.arange(0, 1, 0.01))
    assert cam_thresholds(0.001).shape == (1000,)
    assert cam_thresholds().dtype == np.float64
    assert cam_thresholds()[0] == 0.0


def test_rescale_boxes_hand_case():
    # CUB image 1 box (60, 27, 385, 331) in a 500 x 400 image (hand arithmetic):
    # 60*224/500 = 26.88, 27*224/400 = 15.12, 385*224/500 = 172.48, 331*224/400 = 185.36
    out = rescale_boxes(np.array([[60, 27, 385, 331]]), size=(500, 400), resolution=(224, 224))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[26, 15, 172, 185]])


def test_rescale_boxes_matches_python_int():
    rng = np.random.default_rng(0)
    for _ in range(50):
        w, h = (int(v) for v in rng.integers(50, 1000, size=2))
        boxes = rng.random((3, 4)) * [w, h, w, h]
        out = rescale_boxes(boxes, size=(w, h), resolution=(224, 200))
        expected = [
            [int(b[0] * 224 / w), int(b[1] * 200 / h), int(b[2] * 224 / w), int(b[3] * 200 / h)]
            for b in boxes.tolist()
        ]
        np.testing.assert_array_equal(out, expected)


def test_iou_plus_one_convention_hand_case():
    # inter 5x5 = 25; each area 10x10 = 100; union 175
    iou = box_iou(np.array([[0, 0, 9, 9]]), np.array([[5, 5, 14, 14]]))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(25 / 175, abs=0)
    assert box_iou(np.array([[0, 0, 9, 9]]), np.array([[10, 0, 19, 9]]))[0, 0] == 0.0
    # a single shared pixel column: inter 1x10 = 10, union 190
    assert box_iou(np.array([[0, 0, 9, 9]]), np.array([[9, 0, 18, 9]]))[0, 0] == pytest.approx(10 / 190)


def test_iou_zero_denominator_is_zero():
    a = np.array([[0, 0, -1, 5]])  # area 0 * 6 = 0
    assert box_iou(a, a)[0, 0] == 0.0


def test_iou_is_pairwise():
    a = np.array([[0, 0, 9, 9], [0, 0, 4, 4]])
    b = np.array([[0, 0, 9, 9], [5, 5, 14, 14], [0, 0, 0, 0]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1, 25 / 175, 1 / 100], [25 / 100, 0, 1 / 25]])


box_coords = st.integers(0, 40)


@st.composite
def boxes_strategy(draw):
    n = draw(st.integers(1, 4))
    out = []
    for _ in range(n):
        x0, x1 = sorted((draw(box_coords), draw(box_coords)))
        y0, y1 = sorted((draw(box_coords), draw(box_coords)))
        out.append((x0, y0, x1, y1))
    return np.array(out, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(boxes_strategy(), boxes_strategy())
def test_iou_symmetric_and_in_unit_interval(a, b):
    ab = box_iou(a, b)
    np.testing.assert_array_equal(ab, box_iou(b, a).T)
    assert (ab >= 0).all() and (ab <= 1).all()
    np.testing.assert_allclose(np.diag(box_iou(a, a)), 1.0)
    for i in range(len(a)):
        for j in range(len(b)):
            assert ab[i, j] == pytest.approx(slow_iou(a[i], b[j]))


def test_quantization_truncates():
    # 0.5*255 = 127.5 -> 127; 0.999*255 = 254.745 -> 254; 0.0039*255 = 0.9945 -> 0
    q = quantize_scoremap(np.array([[0.5, 0.999, 1.0, 0.0039, 0.0]]))
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, [[127, 254, 255, 0, 0]])


def test_value_at_cut_is_background():
    # Max level 255; the 0.5 pixel has level 127.
    # t = 0.49: cut int(124.95) = 124 < 127 -> foreground; t = 0.50: cut int(127.5) = 127 -> background.
    m = np.zeros((16, 16))
    m[0, 0] = 1.0
    m[8, 8] = 0.5
    thresholds = np.array([0.49, 0.50])
    all_boxes, largest = boxes_at_thresholds(m, thresholds)
    assert (8, 8, 9, 9) in [tuple(b) for b in all_boxes[0]]
    assert [tuple(b) for b in all_boxes[1]] == [(0, 0, 1, 1)]
    np.testing.assert_array_equal(largest[1], (0, 0, 1, 1))


# ---------------------------------------------------------------- hand-made maps


def test_single_blob_box_is_one_past_the_blob():
    m = np.zeros((32, 32))
    m[8:16, 10:20] = 1.0  # rows 8..15, cols 10..19
    all_boxes, largest = boxes_at_thresholds(m, THRESHOLDS)
    assert len(all_boxes) == len(THRESHOLDS) and largest.shape == (len(THRESHOLDS), 4)
    for boxes in all_boxes:
        assert [tuple(b) for b in boxes] == [(10, 8, 20, 16)]
    np.testing.assert_array_equal(largest, np.tile([10, 8, 20, 16], (len(THRESHOLDS), 1)))
    iou_all, iou_largest = best_ious(m, np.array([[10, 8, 20, 16]]), THRESHOLDS)
    np.testing.assert_array_equal(iou_all, 1.0)
    np.testing.assert_array_equal(iou_largest, 1.0)
    # The blob's own inclusive extent: inter 10*8 = 80, predicted area 11*9 = 99, union 99.
    iou_all, _ = best_ious(m, np.array([[10, 8, 19, 15]]), THRESHOLDS)
    np.testing.assert_allclose(iou_all, 80 / 99)
    result = single_result(m, [[10, 8, 19, 15]])
    # 80/99 = 0.808 -> correct at 30, 50, 70
    assert result.max_box_acc == 100.0
    assert result.max_box_acc_v2 == 100.0


def test_two_blobs_all_versus_largest():
    m = np.zeros((32, 32))
    m[2:20, 2:20] = 1.0  # big, level 255
    m[24:28, 24:30] = 0.5  # small, level 127: foreground while int(t*255) < 127, i.e. t <= 0.49
    gt = np.array([[24, 24, 30, 28]])  # the small blob's box (one past, as boundingRect gives)
    iou_all, iou_largest = best_ious(m, gt, THRESHOLDS)
    np.testing.assert_array_equal(iou_all[:50], 1.0)
    np.testing.assert_array_equal(iou_all[50:], 0.0)
    np.testing.assert_array_equal(iou_largest, 0.0)
    result = single_result(m, gt)
    np.testing.assert_array_equal(result.curve(50, "all"), np.r_[np.full(50, 100.0), np.zeros(50)])
    np.testing.assert_array_equal(result.curve(50, "largest"), 0.0)
    assert result.max_box_acc == 0.0
    assert result.max_box_acc_v2 == 100.0
    assert result.best_index(50, "all") == 0


def test_ring_has_a_hole_contour():
    m = np.zeros((32, 32))
    m[4:28, 4:28] = 1.0
    m[10:22, 10:22] = 0.0
    # Outer contour spans pixels 4..27 -> box (4, 4, 28, 28). The hole's border is
    # the ring pixels next to the hole, 9..22 -> box (9, 9, 23, 23).
    all_boxes, largest = boxes_at_thresholds(m, THRESHOLDS)
    assert sorted(tuple(b) for b in all_boxes[0]) == [(4, 4, 28, 28), (9, 9, 23, 23)]
    np.testing.assert_array_equal(largest[0], (4, 4, 28, 28))
    gt = np.array([[9, 9, 23, 23]])
    # largest vs gt: inter 15*15 = 225, union 25*25 = 625 -> 0.36
    iou_all, iou_largest = best_ious(m, gt, THRESHOLDS)
    np.testing.assert_array_equal(iou_all, 1.0)
    np.testing.assert_allclose(iou_largest, 0.36)
    result = single_result(m, gt)
    assert result.curve(30, "largest")[0] == 100.0
    assert result.curve(50, "largest")[0] == 0.0
    assert result.curve(70, "all")[0] == 100.0


def test_zero_map_gives_the_zero_box():
    m = np.zeros((32, 32))
    all_boxes, largest = boxes_at_thresholds(m, THRESHOLDS)
    for boxes in all_boxes:
        np.testing.assert_array_equal(boxes, [[0, 0, 0, 0]])
    np.testing.assert_array_equal(largest, 0)
    # (0,0,0,0) vs (0,0,3,3): inter 1, union 16
    iou_all, iou_largest = best_ious(m, np.array([[0, 0, 3, 3]]), THRESHOLDS)
    np.testing.assert_allclose(iou_all, 1 / 16)
    np.testing.assert_allclose(iou_largest, 1 / 16)
    iou_all, _ = best_ious(m, np.array([[5, 5, 9, 9]]), THRESHOLDS)
    np.testing.assert_array_equal(iou_all, 0.0)


def test_flat_map_is_all_foreground():
    # level int(0.3*255) = 76; cut int(t*76) < 76 for every t < 1
    m = np.full((24, 40), 0.3)
    all_boxes, largest = boxes_at_thresholds(m, THRESHOLDS)
    for boxes in all_boxes:
        np.testing.assert_array_equal(boxes, [[0, 0, 39, 23]])  # (0,0,40,24) clipped
    result = single_result(m, [[0, 0, 39, 23]])
    np.testing.assert_array_equal(result.curve(70, "largest"), 100.0)


def test_blob_on_right_and_bottom_border_is_clipped():
    m = np.zeros((24, 40))  # H = 24, W = 40
    m[10:24, 30:40] = 1.0  # boundingRect (30, 10, 10, 14) -> (30, 10, 40, 24) -> clipped
    _, largest = boxes_at_thresholds(m, np.array([0.0, 0.5]))
    np.testing.assert_array_equal(largest, [[30, 10, 39, 23], [30, 10, 39, 23]])


def test_thresholds_sharing_a_cut_agree():
    # max level 3: thresholds 0.0..0.33 map to cut 0, 0.34..0.66 to 1, ...
    m = np.zeros((16, 16))
    m[2:6, 2:6] = 3 / 255 + 1e-9
    m[8:12, 8:14] = 1 / 255 + 1e-9
    all_boxes, _ = boxes_at_thresholds(m, THRESHOLDS)
    assert len(all_boxes[0]) == 2
    assert [tuple(b) for b in all_boxes[40]] == [(2, 2, 6, 6)]
    assert [tuple(b) for b in all_boxes[99]] == [(2, 2, 6, 6)]


# ---------------------------------------------------------------- against a slow reference


@pytest.mark.parametrize("seed", [0, 1])
def test_accumulator_matches_slow_reference(seed):
    size = (32, 40)
    maps = smooth_maps(seed, 12, size)
    rng = np.random.default_rng(100 + seed)
    gts = [random_gt(rng, size) for _ in maps]
    cls_correct = rng.random(len(maps)) < 0.6
    ids = [f"img{i}" for i in range(len(maps))]
    iou_thresholds = (30, 50, 70)

    acc = BoxAccumulator(THRESHOLDS, iou_thresholds)
    acc.update(maps[:5], gts[:5], ids[:5], cls_correct[:5])
    acc.update(maps[5:], gts[5:], ids[5:], cls_correct[5:])
    result = acc.compute()

    correct = np.zeros((2, 3, len(THRESHOLDS)))
    correct_top1 = np.zeros_like(correct)
    for m, gt, ok in zip(maps, gts, cls_correct):
        hits = slow_image_correct(m, gt, THRESHOLDS, iou_thresholds)
        correct += hits
        correct_top1 += hits & ok
    assert result.count == 12 and result.has_top1
    np.testing.assert_array_equal(acc.correct, correct)
    np.testing.assert_array_equal(acc.correct_top1, correct_top1)
    for m, mode in enumerate(("all", "largest")):
        for k, iou in enumerate(iou_thresholds):
            np.testing.assert_array_equal(result.curve(iou, mode), correct[m, k] * 100.0 / 12)
            np.testing.assert_array_equal(result.curve(iou, mode, top1=True), correct_top1[m, k] * 100.0 / 12)
    expected_v1 = (correct[1, 1] * 100.0 / 12).max()
    expected_v2 = np.mean([(correct[0, k] * 100.0 / 12).max() for k in range(3)])
    assert result.max_box_acc == expected_v1
    assert result.max_box_acc_v2 == pytest.approx(expected_v2)


def test_best_ious_match_slow_reference_on_fine_thresholds():
    thresholds = cam_thresholds(0.001)
    maps = smooth_maps(7, 3)
    rng = np.random.default_rng(7)
    for m in maps:
        gt = random_gt(rng, m.shape)
        iou_all, iou_largest = best_ious(m, gt, thresholds)
        # Check IoU values exactly at every 37th threshold with the slow path.
        for ti in range(0, len(thresholds), 37):
            t = thresholds[ti]
            gray = (m * 255).astype(np.uint8)
            _, binary = cv2.threshold(gray, int(t * np.max(gray)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
            boxes = []
            for c in contours:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append((x, y, min(x + bw, m.shape[1] - 1), min(y + bh, m.shape[0] - 1)))
            boxes = boxes or [(0, 0, 0, 0)]
            assert iou_all[ti] == max(slow_iou(p, g) for p in boxes for g in gt)


# ---------------------------------------------------------------- result API


def make_two_image_result():
    m1 = np.zeros((32, 32))
    m1[8:16, 10:20] = 1.0  # box (10, 8, 20, 16)
    m2 = np.zeros((32, 32))
    m2[2:20, 2:20] = 1.0  # big box (2, 2, 20, 20), all thresholds
    m2[24:28, 24:30] = 0.5  # small box (24, 24, 30, 28) while t <= 0.49
    acc = BoxAccumulator(THRESHOLDS)
    acc.update(
        np.stack([m1, m2]),
        [np.array([[10, 8, 20, 16]]), np.array([[24, 24, 30, 28]])],
        ["a", "b"],
        np.array([True, False]),
    )
    return acc.compute()


def test_result_summary_numbers():
    r = make_two_image_result()
    # image a: always correct in both modes; image b: correct only with all contours, t <= 0.49
    np.testing.assert_array_equal(r.curve(50, "largest"), 50.0)
    np.testing.assert_array_equal(r.curve(50, "all"), np.r_[np.full(50, 100.0), np.full(50, 50.0)])
    np.testing.assert_array_equal(r.curve(50, "all", top1=True), 50.0)  # only image a is class-correct
    assert r.max_box_acc == 50.0
    assert r.max_box_acc_v2 == 100.0
    assert r.max_box_acc_v2_at(70) == 100.0
    assert r.best_index(50, "all") == 0
    assert r.best_index(50, "largest") == 0
    assert r.gt_known_loc(60, iou=50, contours="all") == 50.0
    assert r.top1_loc(10) == 50.0
    assert r.index_of(0.2) == 20
    assert r.index_of(0.2049) == 20
    assert r.index_of(2.0) == 99


def test_result_to_dict_is_json_ready():
    d = make_two_image_result().to_dict()
    text = json.dumps(d)
    back = json.loads(text)
    assert back["count"] == 2
    assert back["max_box_acc"] == 50.0
    assert back["max_box_acc_v2"] == 100.0
    assert len(back["curves"]["gt_known"]["all"]["50"]) == 100
    assert back["curves"]["top1"]["largest"]["30"][0] == 50.0
    assert back["thresholds"] == THRESHOLDS.tolist()


def test_top1_unavailable_without_cls_correct():
    m = np.zeros((1, 16, 16))
    acc = BoxAccumulator(THRESHOLDS)
    acc.update(m, [np.array([[0, 0, 3, 3]])], ["x"])
    r = acc.compute()
    assert not r.has_top1 and r.top1_curves is None
    np.testing.assert_array_equal(acc.correct_top1, 0)
    with pytest.raises(MetricInputError, match="top-1"):
        r.curve(50, "all", top1=True)
    assert r.to_dict()["curves"]["top1"] is None


def test_cls_correct_must_be_given_consistently():
    acc = BoxAccumulator(THRESHOLDS)
    acc.update(np.zeros((1, 8, 8)), [np.array([[0, 0, 1, 1]])], ["x"], np.array([True]))
    with pytest.raises(MetricInputError, match="cls_correct"):
        acc.update(np.zeros((1, 8, 8)), [np.array([[0, 0, 1, 1]])], ["y"])


def test_unknown_iou_and_mode_raise():
    r = make_two_image_result()
    with pytest.raises(ValueError, match="IoU threshold 40"):
        r.curve(40)
    with pytest.raises(ValueError, match="contours"):
        r.curve(50, "biggest")


def test_empty_accumulator_compute_raises():
    with pytest.raises(MetricInputError, match="no images were evaluated"):
        BoxAccumulator(THRESHOLDS).compute()


def test_merge_requires_same_thresholds():
    with pytest.raises(ValueError):
        BoxAccumulator(THRESHOLDS).merge(BoxAccumulator(cam_thresholds(0.05)))
    with pytest.raises(ValueError):
        BoxAccumulator(THRESHOLDS).merge(BoxAccumulator(THRESHOLDS, (50,)))


def test_reset_clears_state():
    acc = BoxAccumulator(THRESHOLDS)
    acc.update(np.ones((2, 8, 8)), [np.array([[0, 0, 7, 7]])] * 2, ["a", "b"], np.array([True, True]))
    acc.reset()
    assert acc.count == 0 and not acc.correct.any() and not acc.correct_top1.any()
    acc.update(np.ones((1, 8, 8)), [np.array([[0, 0, 7, 7]])], ["c"])  # no cls_correct now: allowed
    assert acc.compute().count == 1


# ---------------------------------------------------------------- properties

map_seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=15, deadline=None)
@given(map_seeds, st.integers(1, 5))
def test_curves_non_increasing_in_iou(seed, n):
    rng = np.random.default_rng(seed)
    maps = smooth_maps(seed, n, (24, 24))
    gts = [random_gt(rng, (24, 24)) for _ in range(n)]
    acc = BoxAccumulator(THRESHOLDS, (30, 50, 70))
    acc.update(maps, gts, [str(i) for i in range(n)], rng.random(n) < 0.5)
    r = acc.compute()
    for mode in ("all", "largest"):
        for top1 in (False, True):
            c30, c50, c70 = (r.curve(i, mode, top1) for i in (30, 50, 70))
            assert (c30 >= c50).all() and (c50 >= c70).all()
        # all contours can only help
        assert (r.curve(50, "all") >= r.curve(50, "largest")).all()
    assert (r.curve(50, "all", top1=True) <= r.curve(50, "all")).all()


@settings(max_examples=10, deadline=None)
@given(map_seeds, st.integers(2, 6), st.data())
def test_merge_of_halves_equals_whole(seed, n, data):
    split = data.draw(st.integers(1, n - 1))
    rng = np.random.default_rng(seed)
    maps = smooth_maps(seed, n, (24, 24))
    gts = [random_gt(rng, (24, 24)) for _ in range(n)]
    ids = [str(i) for i in range(n)]
    ok = rng.random(n) < 0.5
    whole = BoxAccumulator(THRESHOLDS)
    whole.update(maps, gts, ids, ok)
    first, second = BoxAccumulator(THRESHOLDS), BoxAccumulator(THRESHOLDS)
    first.update(maps[:split], gts[:split], ids[:split], ok[:split])
    second.update(maps[split:], gts[split:], ids[split:], ok[split:])
    merged = first.merge(second)
    assert merged.count == whole.count
    np.testing.assert_array_equal(merged.correct, whole.correct)
    np.testing.assert_array_equal(merged.correct_top1, whole.correct_top1)
    np.testing.assert_array_equal(merged.compute().gt_known_curves, whole.compute().gt_known_curves)


# ---------------------------------------------------------------- validation


def test_nan_map_error_names_the_image():
    maps = np.zeros((3, 8, 8))
    maps[1, 2, 2] = np.nan
    acc = BoxAccumulator(THRESHOLDS)
    with pytest.raises(MetricInputError, match=r"score map for image 'val/000012.png' has NaN or inf"):
        acc.update(maps, [np.array([[0, 0, 1, 1]])] * 3, ["val/000011.png", "val/000012.png", "c"])
    assert acc.count == 0


def test_out_of_range_map_error_names_the_image():
    maps = np.zeros((2, 8, 8))
    maps[1, 0, 0] = 1.5
    with pytest.raises(MetricInputError, match=r"image 'b' has values outside \[0, 1\]"):
        BoxAccumulator(THRESHOLDS).update(maps, [np.array([[0, 0, 1, 1]])] * 2, ["a", "b"])


def test_map_shape_and_id_count_errors():
    acc = BoxAccumulator(THRESHOLDS)
    with pytest.raises(MetricInputError, match="3-D"):
        acc.update(np.zeros((8, 8)), [np.array([[0, 0, 1, 1]])], ["a"])
    with pytest.raises(MetricInputError, match="2 image ids for 1 score maps"):
        acc.update(np.zeros((1, 8, 8)), [np.array([[0, 0, 1, 1]])], ["a", "b"])
    with pytest.raises(MetricInputError, match="floating point"):
        acc.update(np.zeros((1, 8, 8), dtype=np.uint8), [np.array([[0, 0, 1, 1]])], ["a"])


def test_expected_shape_check_names_the_image():
    from wsolbench.metrics import check_scoremaps

    with pytest.raises(MetricInputError, match=r"image 'a' has shape \(8, 8\), expected \(224, 224\)"):
        check_scoremaps(np.zeros((1, 8, 8)), ["a"], shape=(224, 224))


def test_gt_box_errors_name_the_image():
    acc = BoxAccumulator(THRESHOLDS)
    maps = np.zeros((2, 8, 8))
    with pytest.raises(MetricInputError, match=r"boxes for image 'b' must have shape \(n, 4\) with n >= 1"):
        acc.update(maps, [np.array([[0, 0, 1, 1]]), np.zeros((0, 4), dtype=np.int64)], ["a", "b"])
    with pytest.raises(MetricInputError, match=r"image 'b': box \(5, 0, 1, 1\) has x1 < x0"):
        acc.update(maps, [np.array([[0, 0, 1, 1]]), np.array([[5, 0, 1, 1]])], ["a", "b"])
    with pytest.raises(MetricInputError, match=r"image 'a' must be integer pixel"):
        acc.update(maps, [np.array([[0, 0, 1.5, 1]]), np.array([[0, 0, 1, 1]])], ["a", "b"])


def test_cls_correct_shape_error():
    with pytest.raises(MetricInputError, match="cls_correct"):
        BoxAccumulator(THRESHOLDS).update(
            np.zeros((2, 8, 8)), [np.array([[0, 0, 1, 1]])] * 2, ["a", "b"], np.array([True])
        )


def test_float32_maps_are_accepted():
    m = np.zeros((1, 16, 16), dtype=np.float32)
    m[0, 4:8, 4:8] = 1.0
    r = single_result(m[0], [[4, 4, 8, 8]])
    assert r.max_box_acc == 100.0


def test_iou_threshold_is_inclusive():
    m = np.zeros((32, 32))
    m[0:9, 0:9] = 1.0  # predicted box (0, 0, 9, 9), area 100
    # GT (0,0,9,4): inter 50 / union 100 = 0.5 exactly; GT (0,0,9,6): 70 / 100 = 0.7
    r = single_result(m, [[0, 0, 9, 4]])
    assert r.curve(50, "largest")[0] == 100.0 and r.curve(70, "largest")[0] == 0.0
    r = single_result(m, [[0, 0, 9, 6]])
    assert r.curve(70, "all")[0] == 100.0
