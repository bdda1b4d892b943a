"""mPxAP: a hand-computed two-class case, a brute-force pixel count, merging, and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsolbench.errors import MetricInputError
from wsolbench.metrics import MaskAccumulator, cam_thresholds
from wsolbench.metrics.multiclass import MultiClassMaskAccumulator, class_pair_masks

pytestmark = pytest.mark.filterwarnings("error")

V = 255  # void

# Image 1 is labelled {0, 1}; image 2 is labelled {0, 2} and holds one class-1 pixel
# (value 2) it is not labelled with, which is therefore a negative for class 0.
MASK_1 = np.array([[1, 1, 0, 0],
                   [1, 1, 0, 0],
                   [0, 0, 2, 2],
                   [0, 0, 2, V]], dtype=np.uint8)
MASK_2 = np.array([[1, 0, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 2]], dtype=np.uint8)
MAP_1_CLASS_0 = np.array([[1.0, 0.7, 0.2, 0.2],
                          [0.2, 1.0, 0.2, 0.7],
                          [0.2, 0.2, 0.2, 0.2],
                          [0.2, 0.2, 0.2, 0.2]])
MAP_1_CLASS_1 = np.array([[0.2, 0.2, 0.2, 0.2],
                          [0.2, 0.2, 0.2, 0.2],
                          [0.2, 0.2, 1.0, 0.7],
                          [0.2, 0.2, 0.2, 1.0]])  # the 1.0 at (3, 3) is void: ignored
MAP_2_CLASS_0 = np.full((4, 4), 0.2)
MAP_2_CLASS_0[0, 0] = 0.7
MAP_2_CLASS_0[3, 3] = 1.0
MAP_2_CLASS_2 = np.full((4, 4), 0.5)

# Thresholds 0 and 0.5: PxAP edges, from the top, are 2.0, 1.0, 0.5, 0.
# Class 0 pools 5 positives {1, 1, .7, .7, .2} and 26 negatives {1, .7, 24 x .2}:
#   >= 1.0: tp 2, fp 1 -> P 2/3, R 2/5;  >= 0.5: tp 4, fp 2 -> P 2/3, R 4/5;  >= 0: tp 5, fp 26 -> P 5/31, R 1.
PXAP_0 = 2 / 3 * 2 / 5 + 2 / 3 * 2 / 5 + 5 / 31 * 1 / 5
# Class 1 (image 1 only): positives {1, .7, .2}, 12 negatives at .2:
#   >= 1.0: P 1, R 1/3;  >= 0.5: P 1, R 2/3;  >= 0: P 3/15, R 1.
PXAP_1 = 1 / 3 + 1 / 3 + 1 / 5 * 1 / 3
THRESHOLDS = cam_thresholds(0.5)


def hand_case():
    maps = np.stack([MAP_1_CLASS_0, MAP_1_CLASS_1, MAP_2_CLASS_0, MAP_2_CLASS_2])
    masks = np.stack([MASK_1, MASK_1, MASK_2, MASK_2])
    classes = np.array([0, 1, 0, 2])
    ids = ["1", "1", "2", "2"]
    return maps, masks, classes, ids


def test_hand_computed_two_classes():
    acc = MultiClassMaskAccumulator(THRESHOLDS, num_classes=3)
    acc.update(*hand_case())
    r = acc.compute()
    assert PXAP_0 == pytest.approx(263 / 465) and PXAP_1 == pytest.approx(11 / 15)
    assert r.pxap[0] == pytest.approx(100 * PXAP_0, rel=1e-12)
    assert r.pxap[1] == pytest.approx(100 * PXAP_1, rel=1e-12)
    # Class 2 was evaluated (image 2 is labelled with it) but has no pixel: not present.
    assert np.isnan(r.pxap[2]) and list(r.present) == [True, True, False]
    assert r.mpxap == pytest.approx(100 * (PXAP_0 + PXAP_1) / 2, rel=1e-12)
    assert r.per_class() == pytest.approx({0: 100 * PXAP_0, 1: 100 * PXAP_1})
    assert list(r.images) == [2, 1, 1] and r.pairs == 4
    assert list(r.foreground_pixels) == [5, 3, 0] and list(r.background_pixels) == [26, 12, 16]
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["pxap"]["2"] is None and d["present_classes"] == [0, 1]


def test_each_class_equals_a_binary_pxap():
    """Class c's PxAP is the binary PxAP of its pairs with masks (mask == c + 1) / void / rest."""
    maps, masks, classes, ids = hand_case()
    acc = MultiClassMaskAccumulator(THRESHOLDS, num_classes=3)
    acc.update(maps, masks, classes, ids)
    r = acc.compute()
    for c in (0, 1):
        sel = classes == c
        binary = MaskAccumulator(THRESHOLDS)
        binary.update(maps[sel], class_pair_masks(masks[sel], classes[sel]), [ids[i] for i in np.flatnonzero(sel)])
        assert r.pxap[c] == binary.compute().pxap
        np.testing.assert_array_equal(r.precision[c], binary.compute().precision)


def brute_force_pxap(pairs, c, thresholds):
    """Straight from pixels: for each edge from the top, positives and negatives scoring >= edge."""
    pos = np.concatenate([m[k == c + 1] for m, k, cls in pairs if cls == c])
    neg = np.concatenate([m[(k != c + 1) & (k != V)] for m, k, cls in pairs if cls == c])
    edges = [2.0, 1.0, *reversed(thresholds)]
    ap, prev_recall = 0.0, 0.0
    for j, e in enumerate(edges):
        tp, fp = int((pos >= e).sum()), int((neg >= e).sum())
        recall = tp / pos.size
        if j >= 1 and tp + fp:
            ap += tp / (tp + fp) * (recall - prev_recall)
        prev_recall = recall
    return 100 * ap


@pytest.mark.parametrize("seed", [0, 1])
def test_random_case_matches_brute_force_and_merges(seed):
    rng = np.random.default_rng(seed)
    k, n = 4, 12
    thresholds = cam_thresholds(0.05)
    masks = rng.integers(0, k + 1, size=(n, 8, 8)).astype(np.uint8)
    masks[rng.random(masks.shape) < 0.1] = V
    classes = rng.integers(0, k, size=n)
    maps = rng.random((n, 8, 8))
    ids = [f"im{i}" for i in range(n)]
    whole = MultiClassMaskAccumulator(thresholds, k)
    whole.update(maps, masks, classes, ids)
    r = whole.compute()
    pairs = list(zip(maps, masks, classes, strict=True))
    for c in np.flatnonzero(r.present):
        assert r.pxap[c] == pytest.approx(brute_force_pxap(pairs, c, thresholds), rel=1e-12)
    half = MultiClassMaskAccumulator(thresholds, k)
    half.update(maps[:5], masks[:5], classes[:5], ids[:5])
    rest = MultiClassMaskAccumulator(thresholds, k)
    rest.update(maps[5:], masks[5:], classes[5:], ids[5:])
    merged = half.merge(rest).compute()
    np.testing.assert_array_equal(merged.pxap, r.pxap)
    assert merged.mpxap == r.mpxap and merged.pairs == n


def test_input_checks_name_the_image():
    maps, masks, classes, ids = hand_case()
    acc = MultiClassMaskAccumulator(THRESHOLDS, num_classes=2)
    with pytest.raises(MetricInputError, match=r"class 2 of image '2' is outside \[0, 2\)"):
        acc.update(maps, masks, classes, ids)
    acc = MultiClassMaskAccumulator(THRESHOLDS, num_classes=3)
    bad = maps.copy()
    bad[2, 0, 0] = 1.5
    with pytest.raises(MetricInputError, match="'2' has values outside"):
        acc.update(bad, masks, classes, ids)
    with pytest.raises(MetricInputError, match="integer"):
        acc.update(maps, masks.astype(np.float32), classes, ids)
    with pytest.raises(MetricInputError, match="shape"):
        acc.update(maps, masks[:, :2], classes, ids)
    with pytest.raises(MetricInputError, match="no .* pairs"):
        acc.compute()
    acc.update(maps[3:], masks[3:], classes[3:], ids[3:])  # class 2 only: no positive pixel
    with pytest.raises(MetricInputError, match="undefined"):
        acc.compute()
    with pytest.raises(ValueError):
        MultiClassMaskAccumulator(THRESHOLDS, num_classes=0)
