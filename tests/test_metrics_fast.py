"""The fast engines equal the exact ones: union-find boxes vs findContours, O(n) and torch PxAP vs np.histogram."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolbench.errors import MetricInputError
from wsolbench.metrics import (
    BoxAccumulator,
    MaskAccumulator,
    best_ious,
    cam_thresholds,
    fast_best_ious,
    fast_boxes,
    fast_score_histograms,
    quantize_scoremap,
    score_histograms,
    score_histograms_torch,
    threshold_cuts,
)
from wsolbench.metrics.fast_boxes import maps_in_unit_interval

pytestmark = pytest.mark.filterwarnings("error")

THRESHOLDS = cam_thresholds(0.01)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# ---------------------------------------------------------------- helpers


def exact_ious(maps, gts, thresholds=THRESHOLDS) -> np.ndarray:
    """(B, 2, T) from the findContours path."""
    return np.stack([np.stack(best_ious(m, g, thresholds)) for m, g in zip(maps, gts)])


def assert_fast_equals_exact(maps, gts=None, thresholds=THRESHOLDS):
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if gts is None:
        h, w = maps.shape[1:]
        # a spread of GT boxes, so that every predicted box matters somewhere
        gts = [np.array([[0, 0, w - 1, h - 1], [w // 4, h // 4, w // 2, h // 2], [1, 1, 3, 3]])] * len(maps)
    fast = fast_best_ious(maps, gts, thresholds)
    np.testing.assert_array_equal(fast, exact_ious(maps, gts, thresholds))
    return fast


def fallback_flags(scoremap, thresholds=THRESHOLDS) -> np.ndarray:
    """The thresholds whose largest contour the fast engine leaves to findContours."""
    n = len(thresholds)
    out_all, out_largest, flags, cuts = np.empty(n), np.empty(n), np.empty(n, bool), np.empty(n, np.int64)
    ws = fast_boxes._workspace(*scoremap.shape)
    gt = np.array([[0, 0, 1, 1]])
    fast_boxes._map_cut_ious(
        np.asarray(scoremap, np.float64), thresholds, gt, fast_boxes._LUT, ws, out_all, out_largest, flags, cuts
    )
    return flags


def smooth_map(rng, shape, grid=(5, 5)) -> np.ndarray:
    up = cv2.resize(rng.random(grid), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    up -= up.min()
    return up / up.max() if up.max() > 0 else up


def random_gts(rng, shape, n_max=3) -> np.ndarray:
    h, w = shape
    boxes = []
    for _ in range(rng.integers(1, n_max + 1)):
        x0, x1 = sorted(rng.integers(0, w, size=2))
        y0, y1 = sorted(rng.integers(0, h, size=2))
        boxes.append((x0, y0, x1, y1))
    return np.array(boxes, dtype=np.int64)


# ---------------------------------------------------------------- boxes: hand cases


def test_ring_with_a_hole():
    m = np.zeros((32, 32))
    m[4:28, 4:28] = 1.0
    m[10:22, 10:22] = 0.0
    gts = [np.array([[9, 9, 23, 23]])]  # the hole contour's box
    fast = assert_fast_equals_exact(m, gts)
    assert (fast[0, 0] == 1.0).all()  # found through the hole, not an outer contour


def test_nested_rings_and_islands():
    m = np.zeros((40, 40))
    m[2:38, 2:38] = 0.9
    m[6:34, 6:34] = 0.2  # a wide hole at high cuts ...
    m[10:30, 10:30] = 0.7  # ... holding an island ...
    m[14:26, 14:26] = 0.0  # ... with its own hole ...
    m[18:22, 18:22] = 1.0  # ... holding a bright dot
    assert_fast_equals_exact(m)
    assert_fast_equals_exact(m.T[::-1])


def test_equal_pixel_counts_different_contour_areas():
    # 12 pixels each: a 3x4 block (polygon area 6) and a 1x12 line (area 0); the
    # block is the largest contour although neither has more pixels.
    m = np.zeros((20, 20))
    m[2, 2:14] = 1.0
    m[8:11, 8:12] = 1.0
    gts = [np.array([[8, 8, 12, 11]])]
    fast = assert_fast_equals_exact(m, gts)
    assert (fast[0, 1] == 1.0).all()


def test_thin_lines_have_zero_area():
    m = np.zeros((24, 24))
    m[3, 1:20] = 1.0  # horizontal
    m[5:22, 2] = 0.8  # vertical
    for i in range(12):
        m[8 + i, 8 + i] = 0.6  # diagonal
    m[20, 20] = 0.4  # a dot
    assert_fast_equals_exact(m)


def test_equal_areas_without_holes_take_the_first_in_contour_order():
    # Two identical blobs: findContours lists the lower one first.
    m = np.zeros((30, 30))
    m[3:7, 3:9] = 1.0
    m[20:24, 15:21] = 1.0
    gts = [np.array([[15, 20, 21, 24]])]
    fast = assert_fast_equals_exact(m, gts)
    assert (fast[0, 1] == 1.0).all()
    assert not fallback_flags(m).any()


def test_equal_areas_with_holes_keep_the_contour_order():
    # Two identical rings tie; holes come after their ring, top-level contours
    # in reverse raster order: no need for findContours.
    ring = np.ones((7, 7))
    ring[2:5, 2:5] = 0.0
    m = np.zeros((30, 30))
    m[2:9, 2:9] = ring
    m[18:25, 20:27] = ring
    assert not fallback_flags(m).any()
    fast = assert_fast_equals_exact(m, [np.array([[20, 18, 27, 25]])])
    assert (fast[0, 1] == 1.0).all()


def test_hole_as_large_as_its_ring():
    # A diamond of four pixels around one background pixel: the outer and the
    # hole contour have the same polygon area; the outer one comes first.
    m = np.zeros((9, 9))
    for r, c in ((3, 4), (4, 3), (4, 5), (5, 4)):
        m[r, c] = 1.0
    assert not fallback_flags(m).any()
    assert_fast_equals_exact(m, [np.array([[3, 3, 5, 5]])])


def test_tie_next_to_a_hole_falls_back_to_findcontours():
    # Two 12 x 12 blocks tie for the largest contour; one lies within the box
    # of an L-shaped hole (though outside its thin ring), so the fast engine
    # cannot rule out that it is an island and asks findContours.
    m = np.zeros((40, 60))
    hole = np.zeros((40, 60), dtype=bool)
    hole[5, 5:31] = True
    hole[5:31, 5] = True
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~hole
    m[ring] = 1.0
    m[10:22, 10:22] = 1.0
    m[25:37, 45:57] = 1.0
    contours = cv2.findContours((m > 0).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    assert sorted(cv2.contourArea(c) for c in contours)[-2:] == [121.0, 121.0]
    assert fallback_flags(m).all()
    assert_fast_equals_exact(m, [np.array([[10, 10, 22, 22]])])
    assert_fast_equals_exact(m, [np.array([[45, 25, 57, 37]])])


@pytest.mark.parametrize("corner", ["tl", "tr", "bl", "br"])
def test_blobs_touching_the_border(corner):
    m = np.zeros((17, 23))
    rows = slice(0, 6) if corner[0] == "t" else slice(11, 17)
    cols = slice(0, 8) if corner[1] == "l" else slice(15, 23)
    m[rows, cols] = 1.0
    m[rows, cols][2:4, 3:5] = 0.3  # a notch, then a hole, as the cut rises
    m[8, :] = 0.5  # a full-width line
    assert_fast_equals_exact(m)


def test_empty_and_flat_maps():
    assert_fast_equals_exact(np.zeros((12, 15)))
    assert_fast_equals_exact(np.full((12, 15), 0.3))
    assert_fast_equals_exact(np.ones((12, 15)))
    assert_fast_equals_exact(np.full((1, 1), 0.7))
    assert_fast_equals_exact(np.linspace(0, 1, 40).reshape(1, 40))
    assert_fast_equals_exact(np.linspace(0, 1, 40).reshape(40, 1))


def test_checkerboard_and_speckle():
    checker = (np.indices((20, 26)).sum(axis=0) % 2).astype(np.float64)
    assert_fast_equals_exact(checker)
    assert_fast_equals_exact(1.0 - checker)
    rng = np.random.default_rng(0)
    assert_fast_equals_exact(rng.random((48, 40)))
    assert_fast_equals_exact((rng.random((48, 40)) < 0.5) * rng.random((48, 40)))


def test_typical_size_map():
    rng = np.random.default_rng(1)
    maps = np.stack([smooth_map(rng, (224, 224), (7, 7)) for _ in range(2)])
    gts = [random_gts(rng, (224, 224)) for _ in range(2)]
    assert_fast_equals_exact(maps, gts)


def test_odd_thresholds():
    rng = np.random.default_rng(2)
    maps = np.stack([smooth_map(rng, (20, 24)), rng.random((20, 24))])
    gts = [random_gts(rng, (20, 24)) for _ in range(2)]
    for thresholds in (cam_thresholds(0.001), np.array([0.5]), np.array([0.0, 0.999]), np.array([0.2, 0.21, 0.9])):
        assert_fast_equals_exact(maps, gts, thresholds)


def test_float32_maps_and_threads():
    rng = np.random.default_rng(3)
    maps = np.stack([smooth_map(rng, (24, 31)) for _ in range(3)] + [rng.random((24, 31))]).astype(np.float32)
    gts = [random_gts(rng, (24, 31)) for _ in range(4)]
    serial = fast_best_ious(maps, gts, THRESHOLDS)
    np.testing.assert_array_equal(serial, exact_ious(maps.astype(np.float64), gts))
    np.testing.assert_array_equal(fast_best_ious(maps, gts, THRESHOLDS, workers=2), serial)


def test_cuts_repeat_the_protocol():
    rng = np.random.default_rng(4)
    m = rng.random((9, 9)) * 0.6
    n = len(THRESHOLDS)
    cuts = np.empty(n, np.int64)
    fast_boxes._map_cut_ious(
        m, THRESHOLDS, np.array([[0, 0, 1, 1]]), fast_boxes._LUT, fast_boxes._workspace(9, 9),
        np.empty(n), np.empty(n), np.empty(n, bool), cuts,
    )
    np.testing.assert_array_equal(cuts, threshold_cuts(THRESHOLDS, quantize_scoremap(m).max()))


# ---------------------------------------------------------------- boxes: random maps


@st.composite
def map_and_boxes(draw):
    h = draw(st.integers(1, 24))
    w = draw(st.integers(1, 31))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["smooth", "noise", "levels", "sparse", "blocks"]))
    rng = np.random.default_rng(seed)
    if kind == "smooth":
        m = smooth_map(rng, (h, w), tuple(rng.integers(2, 7, size=2)))
    elif kind == "noise":
        m = rng.random((h, w))
    elif kind == "levels":
        m = rng.integers(0, 4, size=(h, w)) / 3.0
    elif kind == "sparse":
        m = rng.random((h, w)) * (rng.random((h, w)) < rng.random())
    else:
        small = rng.random((max(1, h // 4), max(1, w // 4)))
        m = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return m, random_gts(rng, (h, w))


@settings(max_examples=80, deadline=None)
@given(st.lists(map_and_boxes(), min_size=1, max_size=3))
def test_fast_equals_exact_on_random_maps(cases):
    for m, gt in cases:
        np.testing.assert_array_equal(fast_best_ious(m[None], [gt], THRESHOLDS), exact_ious([m], [gt]))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_accumulators_agree_on_every_curve(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 31)
    n = 6
    maps = np.stack([smooth_map(rng, shape) for _ in range(n // 2)] + [rng.random(shape) for _ in range(n - n // 2)])
    gts = [random_gts(rng, shape) for _ in range(n)]
    ids = [f"img{i}" for i in range(n)]
    cls_correct = rng.random(n) < 0.5
    results = []
    for engine in ("fast", "exact"):
        acc = BoxAccumulator(THRESHOLDS, (10, 30, 50, 70, 90), engine=engine)
        acc.update(maps, gts, ids, cls_correct)
        results.append(acc)
    fast, exact = results
    np.testing.assert_array_equal(fast.correct, exact.correct)
    np.testing.assert_array_equal(fast.correct_top1, exact.correct_top1)
    assert fast.compute().to_dict() == exact.compute().to_dict()


def test_box_accumulator_options_and_errors():
    with pytest.raises(ValueError, match="engine"):
        BoxAccumulator(THRESHOLDS, engine="quick")
    with pytest.raises(ValueError, match="workers"):
        BoxAccumulator(THRESHOLDS, workers=0)
    maps = np.zeros((3, 8, 8))
    maps[1, 2, 2] = np.nan
    with pytest.raises(MetricInputError, match="'b'.*NaN"):
        BoxAccumulator(THRESHOLDS).update(maps, [np.array([[0, 0, 1, 1]])] * 3, ["a", "b", "c"])
    maps[1, 2, 2] = 1.5
    with pytest.raises(MetricInputError, match="'b'.*outside"):
        BoxAccumulator(THRESHOLDS).update(maps, [np.array([[0, 0, 1, 1]])] * 3, ["a", "b", "c"])
    np.testing.assert_array_equal(maps_in_unit_interval(maps), [True, False, True])


# ---------------------------------------------------------------- PxAP


def pixel_case(seed, n=3, shape=(24, 31)):
    rng = np.random.default_rng(seed)
    maps = np.stack([smooth_map(rng, shape) for _ in range(n)])
    masks = (maps + 0.3 * rng.standard_normal(maps.shape) > 0.5).astype(np.uint8)
    masks[rng.random(maps.shape) < 0.1] = 255
    # scores exactly on the edges, and the extremes
    flat = maps.reshape(-1)
    flat[: len(THRESHOLDS)] = THRESHOLDS
    flat[len(THRESHOLDS) : len(THRESHOLDS) + 4] = (0.0, 1.0, np.nextafter(0.5, 0), np.nextafter(0.5, 1))
    return maps, masks


def assert_same_histograms(got, expected):
    for a, b in zip(got, expected):
        assert a.dtype == np.int64
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "thresholds",
    [THRESHOLDS, cam_thresholds(0.001), np.array([0.5]), np.array([0.25, 0.3, 0.31, 0.9]), np.array([0.0, 0.999])],
    ids=["0.01", "0.001", "one", "uneven", "ends"],
)
def test_fast_histograms_equal_np_histogram(thresholds):
    maps, masks = pixel_case(0)
    expected = score_histograms(maps, masks, thresholds)
    assert_same_histograms(fast_score_histograms(maps, masks, thresholds), expected)
    assert_same_histograms(fast_score_histograms(maps, masks, thresholds, workers=2), expected)
    assert_same_histograms(score_histograms_torch(torch.from_numpy(maps), torch.from_numpy(masks), thresholds), expected)


def test_histograms_of_float32_maps():
    maps, masks = pixel_case(1)
    maps = maps.astype(np.float32)
    expected = score_histograms(maps, masks, THRESHOLDS)
    assert_same_histograms(fast_score_histograms(maps, masks, THRESHOLDS), expected)
    assert_same_histograms(score_histograms_torch(torch.from_numpy(maps), torch.from_numpy(masks), THRESHOLDS), expected)


def test_histograms_outside_the_unit_interval_follow_np_histogram():
    # The pure functions do what np.histogram does with any finite score (the
    # accumulators reject such maps before).
    maps = np.array([[[-0.5, 1.5, 2.0, 3.0, 3.5, np.nan, 0.5, 1.0]]])
    masks = np.ones(maps.shape, dtype=np.uint8)
    expected = score_histograms(maps, masks, THRESHOLDS)
    assert_same_histograms(fast_score_histograms(maps, masks, THRESHOLDS), expected)
    assert_same_histograms(score_histograms_torch(torch.from_numpy(maps), torch.from_numpy(masks), THRESHOLDS), expected)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=40, unique=True),
    st.integers(0, 2**31 - 1),
)
def test_histograms_at_and_around_any_edges(thresholds, seed):
    thresholds = np.sort(np.array(thresholds))
    rng = np.random.default_rng(seed)
    edges = np.append(thresholds, 1.0)
    near = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1), rng.random(200), [0.0, 1.0]])
    maps = np.clip(rng.choice(near, size=(2, 9, 20)), 0, 1)
    masks = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=maps.shape)
    expected = score_histograms(maps, masks, thresholds)
    assert_same_histograms(fast_score_histograms(maps, masks, thresholds), expected)
    assert_same_histograms(score_histograms_torch(torch.from_numpy(maps), torch.from_numpy(masks), thresholds), expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.01, 0.05, 0.001]))
def test_mask_accumulators_agree(seed, step):
    thresholds = cam_thresholds(step)
    maps, masks = pixel_case(seed, n=2)
    ids = ["a", "b"]
    results = []
    for engine in ("fast", "exact"):
        acc = MaskAccumulator(thresholds, engine=engine)
        acc.update(maps, masks, ids)
        results.append(acc)
    on_torch = MaskAccumulator(thresholds)
    on_torch.update(torch.from_numpy(maps), torch.from_numpy(masks), ids)
    results.append(on_torch)
    for acc in results[1:]:
        np.testing.assert_array_equal(acc.fg_hist, results[0].fg_hist)
        np.testing.assert_array_equal(acc.bg_hist, results[0].bg_hist)
        assert acc.compute().to_dict() == results[0].compute().to_dict()


def test_mask_accumulator_errors_name_the_image():
    maps, masks = pixel_case(2, n=3, shape=(6, 7))
    ids = ["a", "b", "c"]
    bad = maps.copy()
    bad[2, 1, 1] = np.nan
    with pytest.raises(MetricInputError, match="'c'.*NaN"):
        MaskAccumulator(THRESHOLDS).update(bad, masks, ids)
    with pytest.raises(MetricInputError, match="'c'.*NaN"):
        MaskAccumulator(THRESHOLDS).update(torch.from_numpy(bad), torch.from_numpy(masks), ids)
    bad_masks = masks.copy()
    bad_masks[1, 0, 0] = 7
    with pytest.raises(MetricInputError, match="'b' has value 7"):
        MaskAccumulator(THRESHOLDS).update(maps, bad_masks, ids)
    with pytest.raises(MetricInputError, match="'b' has value 7"):
        MaskAccumulator(THRESHOLDS).update(torch.from_numpy(maps), torch.from_numpy(bad_masks), ids)
    with pytest.raises(MetricInputError, match="outside"):
        MaskAccumulator(THRESHOLDS).update(torch.from_numpy(maps) * 2, torch.from_numpy(masks), ids)
    with pytest.raises(ValueError, match="engine"):
        MaskAccumulator(THRESHOLDS, engine="quick")


@pytest.mark.cuda
@needs_cuda
def test_torch_histograms_on_cuda_equal_numpy():
    maps, masks = pixel_case(3, n=4, shape=(64, 64))
    expected = score_histograms(maps, masks, THRESHOLDS)
    device = torch.device("cuda")
    for dtype in (torch.float64, torch.float32):
        tensor = torch.from_numpy(maps).to(device=device, dtype=dtype)
        reference = expected if dtype == torch.float64 else score_histograms(maps.astype(np.float32), masks, THRESHOLDS)
        got = score_histograms_torch(tensor, torch.from_numpy(masks).to(device), THRESHOLDS)
        assert_same_histograms(got, reference)
    acc = MaskAccumulator(THRESHOLDS)
    acc.update(torch.from_numpy(maps).to(device), torch.from_numpy(masks).to(device), ["a", "b", "c", "d"])
    np.testing.assert_array_equal(acc.fg_hist, expected[0])
