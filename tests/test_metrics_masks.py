"""PxAP / PIoU: hand cases, a brute-force pixel count, and properties."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolbench.errors import MetricInputError
from wsolbench.metrics import MaskAccumulator, cam_thresholds

pytestmark = pytest.mark.filterwarnings("error")

THRESHOLDS = cam_thresholds(0.01)


def random_case(seed: int, n: int, size: int = 32):
    """Smooth maps, masks from a noisy version of the maps, with ignore pixels."""
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for _ in range(n):
        up = cv2.resize(rng.random((7, 7)), (size, size), interpolation=cv2.INTER_CUBIC)
        up = (up - up.min()) / (up.max() - up.min())
        mask = (up + 0.3 * rng.standard_normal(up.shape) > 0.6).astype(np.uint8)
        mask[rng.random(up.shape) < 0.1] = 255
        maps.append(up)
        masks.append(mask)
    return np.stack(maps), np.stack(masks)


def brute_force(maps, masks, thresholds):
    """Counts straight from pixels: for each edge, from the top, pixels scoring >= edge."""
    fg = maps[masks == 1]
    bg = maps[masks == 0]
    edges = list(thresholds) + [1.0, 2.0]
    precision, recall, ious = [], [], []
    for e in reversed(edges):
        tp = int((fg >= e).sum())
        fp = int((bg >= e).sum())
        fn = fg.size - tp
        precision.append(tp / (tp + fp) if tp + fp else float("nan"))
        recall.append(tp / fg.size)
        ious.append(tp / (tp + fp + fn))
    ap = 0.0
    for i in range(1, len(edges)):
        if not np.isnan(precision[i]):
            ap += precision[i] * (recall[i] - recall[i - 1])
    # drop the 2.0 and 1.0 edges and go back to ascending order
    return 100 * ap, precision[2:][::-1], recall[2:][::-1], ious[2:][::-1]


def compute(maps, masks, thresholds=THRESHOLDS):
    acc = MaskAccumulator(thresholds)
    acc.update(maps, masks, [f"img{i}" for i in range(len(maps))])
    return acc.compute()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pxap_matches_brute_force(seed):
    maps, masks = random_case(seed, 6)
    r = compute(maps, masks)
    ap, precision, recall, ious = brute_force(maps, masks, THRESHOLDS)
    assert r.pxap == pytest.approx(ap, rel=1e-12)
    np.testing.assert_allclose(r.precision, precision, rtol=1e-12)
    np.testing.assert_allclose(r.recall, recall, rtol=1e-12)
    np.testing.assert_allclose(r.iou, ious, rtol=1e-12)
    best = int(np.argmax(ious))
    assert r.piou == pytest.approx(100 * ious[best])
    assert r.piou_threshold == THRESHOLDS[best]
    assert r.foreground_pixels == int((masks == 1).sum())
    assert r.background_pixels == int((masks == 0).sum())


def test_pxap_fine_thresholds_match_brute_force():
    thresholds = cam_thresholds(0.001)
    maps, masks = random_case(5, 3)
    ap, *_ = brute_force(maps, masks, thresholds)
    assert compute(maps, masks, thresholds).pxap == pytest.approx(ap, rel=1e-12)


def test_perfect_map_scores_100():
    masks = np.zeros((1, 16, 16), dtype=np.uint8)
    masks[0, 4:10, 3:12] = 1
    maps = masks.astype(np.float64)
    r = compute(maps, masks)
    assert r.pxap == 100.0
    # IoU 1 at every threshold > 0; at t = 0 every pixel is predicted, IoU = 54/256.
    assert r.piou == 100.0
    assert r.piou_threshold == THRESHOLDS[1]
    assert r.iou[0] == pytest.approx(54 / 256)


def test_inverted_map_scores_the_foreground_fraction():
    # Foreground scores 0, background 1: only the t = 0 edge recovers the foreground,
    # with precision 54/256 and recall going from 0 to 1.
    masks = np.zeros((1, 16, 16), dtype=np.uint8)
    masks[0, 4:10, 3:12] = 1
    maps = 1.0 - masks.astype(np.float64)
    assert compute(maps, masks).pxap == pytest.approx(100 * 54 / 256)


def test_ignore_pixels_are_excluded():
    maps, masks = random_case(3, 2)
    base = compute(maps, masks).pxap
    changed = maps.copy()
    rng = np.random.default_rng(0)
    changed[masks == 255] = rng.random(int((masks == 255).sum()))
    assert compute(changed, masks).pxap == base
    # Turning ignore pixels into background changes the answer (they were excluded).
    as_background = np.where(masks == 255, 0, masks).astype(np.uint8)
    assert compute(maps, as_background).pxap != base


def test_no_foreground_raises():
    masks = np.zeros((2, 8, 8), dtype=np.uint8)
    masks[1] = 255
    with pytest.raises(MetricInputError, match="no foreground pixel"):
        compute(np.zeros((2, 8, 8)), masks)


def test_empty_accumulator_compute_raises():
    with pytest.raises(MetricInputError, match="no images were evaluated"):
        MaskAccumulator(THRESHOLDS).compute()


def test_to_dict_is_json_ready():
    maps, masks = random_case(4, 2)
    d = json.loads(json.dumps(compute(maps, masks).to_dict(), allow_nan=False))
    assert len(d["precision"]) == len(THRESHOLDS)
    assert 0 <= d["pxap"] <= 100


def test_merge_requires_same_thresholds_and_reset_clears():
    with pytest.raises(ValueError):
        MaskAccumulator(THRESHOLDS).merge(MaskAccumulator(cam_thresholds(0.05)))
    maps, masks = random_case(4, 2)
    acc = MaskAccumulator(THRESHOLDS)
    acc.update(maps, masks, ["a", "b"])
    acc.reset()
    assert acc.count == 0 and not acc.fg_hist.any() and not acc.bg_hist.any()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_pxap_in_range(seed, n):
    maps, masks = random_case(seed, n, 16)
    masks[:, 0, 0] = 1  # at least one foreground pixel
    r = compute(maps, masks)
    assert 0 <= r.pxap <= 100
    assert 0 <= r.piou <= 100


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.data())
def test_merge_of_halves_equals_whole(seed, n, data):
    split = data.draw(st.integers(1, n - 1))
    maps, masks = random_case(seed, n, 16)
    masks[:, 0, 0] = 1
    ids = [str(i) for i in range(n)]
    whole = MaskAccumulator(THRESHOLDS)
    whole.update(maps, masks, ids)
    first, second = MaskAccumulator(THRESHOLDS), MaskAccumulator(THRESHOLDS)
    first.update(maps[:split], masks[:split], ids[:split])
    second.update(maps[split:], masks[split:], ids[split:])
    merged = first.merge(second)
    assert merged.count == whole.count
    np.testing.assert_array_equal(merged.fg_hist, whole.fg_hist)
    np.testing.assert_array_equal(merged.bg_hist, whole.bg_hist)
    assert merged.compute().pxap == whole.compute().pxap


def test_mask_value_error_names_the_image():
    masks = np.zeros((2, 8, 8), dtype=np.uint8)
    masks[1, 3, 3] = 2
    with pytest.raises(MetricInputError, match=r"mask for image 'b' has value 2"):
        MaskAccumulator(THRESHOLDS).update(np.zeros((2, 8, 8)), masks, ["a", "b"])


def test_mask_shape_error_names_the_image():
    with pytest.raises(MetricInputError, match=r"mask for image 'a' has shape \(8, 9\)"):
        MaskAccumulator(THRESHOLDS).update(np.zeros((1, 8, 8)), np.zeros((1, 8, 9), np.uint8), ["a"])


def test_map_error_names_the_image():
    maps = np.zeros((2, 8, 8))
    maps[0, 0, 0] = np.inf
    with pytest.raises(MetricInputError, match=r"score map for image 'a' has NaN or inf"):
        MaskAccumulator(THRESHOLDS).update(maps, np.zeros((2, 8, 8), np.uint8), ["a", "b"])
