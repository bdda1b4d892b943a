"""The paired bootstrap over test images: known answers, a brute-force twin, and the refusals."""

from __future__ import annotations

import json
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wsolbench.errors import DataError
from wsolbench.metrics.boxes import BoxOutcomes
from wsolbench.metrics.multiclass import MultiClassMaskOutcomes
from wsolbench.metrics.outcomes import box_result_of, gt_known_correct, multiclass_result_of, pxap_of, top1_correct
from wsolbench.records import load_outcomes, new_record, write_outcomes, write_record
from wsolbench.report.significance import (
    Interval,
    paired_bootstrap,
    resample_counts,
    run_scores,
    whole_split_value,
)

THRESHOLDS = np.round(np.arange(0, 1, 0.2), 2)  # five CAM thresholds
IOUS = (30, 50, 70)
LOC_INDEX = 2
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- hand-made runs


def outcome_arrays(ids, ious=None, *, cls_correct=None, fg=None, bg=None) -> dict[str, np.ndarray]:
    """Per-image outcome arrays as a run writes them: ``ious`` ``(N, T)`` best IoU per CAM threshold (both contour
    modes), ``loc.*`` at :data:`LOC_INDEX`, optional ``(N, T + 2)`` pixel histograms."""
    ids = np.asarray(ids)
    arrays: dict[str, np.ndarray] = {}
    if ious is not None:
        both = np.repeat(np.asarray(ious, dtype=np.float32)[:, None, :], 2, axis=1)
        arrays.update({"boxes.thresholds": THRESHOLDS, "boxes.iou_thresholds": np.asarray(IOUS),
                       "boxes.image_ids": ids, "boxes.ious": both,
                       "loc.threshold_index": np.asarray(LOC_INDEX), "loc.iou_thresholds": np.asarray(IOUS),
                       "loc.gt_known": np.stack([gt_known_correct(both, LOC_INDEX, i) for i in IOUS], axis=1)})
        if cls_correct is not None:
            arrays["boxes.cls_correct"] = np.asarray(cls_correct, dtype=bool)
            arrays["loc.top1"] = np.stack([top1_correct(both, cls_correct, LOC_INDEX, i) for i in IOUS], axis=1)
    if fg is not None:
        arrays.update({"masks.thresholds": THRESHOLDS, "masks.image_ids": ids,
                       "masks.fg_hist": np.asarray(fg, dtype=np.int32),
                       "masks.bg_hist": np.asarray(bg, dtype=np.int32)})
    return arrays


def summary_of(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The headline numbers the metrics' own code gives for these outcomes."""
    out: dict[str, float] = {}
    if "boxes.ious" in arrays:
        boxes = BoxOutcomes(thresholds=arrays["boxes.thresholds"], iou_thresholds=IOUS,
                            image_ids=arrays["boxes.image_ids"], ious=arrays["boxes.ious"],
                            cls_correct=arrays.get("boxes.cls_correct"))
        result = box_result_of(boxes)
        out.update({"MaxBoxAccV2": result.max_box_acc_v2, "GT-known Loc": result.gt_known_loc(LOC_INDEX)})
        if boxes.cls_correct is not None:
            out["Top-1 Loc"] = result.top1_loc(LOC_INDEX)
    if "masks.fg_hist" in arrays:
        out["PxAP"] = pxap_of(arrays["masks.fg_hist"], arrays["masks.bg_hist"])
    return out


def write_run(root: Path, name: str, arrays: dict[str, np.ndarray] | None, *, seed: int = 0, objective: str = "ce",
              method: str = "cam", dataset: str = "synthetic", backbone: str = "small_cnn", cam: str = "cam",
              summary: dict[str, float] | None = None, val: dict[str, float] | None = None) -> Path:
    """A run folder with ``record.json`` (summary from the outcomes) and ``outcomes-test.npz`` (None: no outcomes,
    as in records made before schema 2)."""
    run_dir = Path(root) / f"{name}-s{seed}"
    numbers = dict(summary or (summary_of(arrays) if arrays is not None else {}))
    objective_name = objective.split("(", 1)[0]
    params: dict[str, object] = {"name": objective_name}
    if "(" in objective:
        key, value = objective.split("(", 1)[1].rstrip(")").split(",")[0].split("=")
        params[key] = float(value)
    record = new_record(
        name=name, config={"seed": seed}, config_hash=f"{name}{seed}".ljust(12, "0"),
        objective={"name": objective_name, "label": objective, "params": params},
        method={"name": method.split("(")[0], "label": method},
        summary={"name": name, "dataset": dataset, "backbone": backbone, "method": method, "objective": objective,
                 "cam": cam, "seed": seed, "config_hash": f"{name}{seed}", **numbers},
        val={"summary": dict(val or numbers)})
    write_record(run_dir / "record.json", record)
    if arrays is not None:
        write_outcomes(run_dir, "test", arrays)
    return run_dir


def _ids(n: int) -> list[str]:
    return [f"img{i:04d}" for i in range(n)]


def _box_run(n: int, correct: np.ndarray) -> dict[str, np.ndarray]:
    """IoU 1 at every threshold where ``correct``, 0 elsewhere: every box metric is ``100 * mean(correct)``."""
    ious = np.where(np.asarray(correct)[:, None], 1.0, 0.0) * np.ones((n, len(THRESHOLDS)))
    return outcome_arrays(_ids(n), ious, cls_correct=np.ones(n, dtype=bool))


def _random_run(rng: np.random.Generator, n: int, order: np.ndarray | None = None) -> dict[str, np.ndarray]:
    ious = rng.uniform(0, 1, size=(n, len(THRESHOLDS)))
    ious[rng.uniform(size=n) < 0.3] = 0.0
    fg = rng.integers(0, 40, size=(n, len(THRESHOLDS) + 2))
    bg = rng.integers(0, 60, size=(n, len(THRESHOLDS) + 2))
    arrays = outcome_arrays(_ids(n), ious, cls_correct=rng.uniform(size=n) < 0.8, fg=fg, bg=bg)
    if order is not None:  # rows in another order than the image ids: matched by id, not position
        for key in [k for k in arrays if k.startswith(("boxes.", "loc.", "masks.")) and arrays[k].ndim >= 1
                    and len(arrays[k]) == n]:
            arrays[key] = arrays[key][order]
    return arrays


# ---------------------------------------------------------------- known answers


def test_identical_runs_give_exactly_zero(tmp_path):
    arrays = _random_run(np.random.default_rng(1), 120)
    a = write_run(tmp_path / "a", "kl", arrays, objective="kl_uniform(lam=0.3)")
    b = write_run(tmp_path / "b", "ce", arrays)
    result = paired_bootstrap([a], [b], n_resamples=500)
    assert set(result) == {"MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP"}
    for interval in result.values():
        assert (interval.diff, interval.low, interval.high) == (0.0, 0.0, 0.0)
        assert interval.n_images == 120 and not interval.excludes_zero


def _binomial_quantile(n: int, f: Fraction, q: float) -> int:
    """The smallest k with P(Bin(n, f) <= k) >= q, from the exact CDF."""
    cdf = Fraction(0)
    for k in range(n + 1):
        cdf += math.comb(n, k) * f ** k * (1 - f) ** (n - k)
        if cdf >= q:
            return k
    return n


@pytest.mark.parametrize("metric", ["MaxBoxAccV2", "GT-known Loc", "Top-1 Loc"])
def test_interval_matches_binomial_quantiles(tmp_path, metric):
    """Setting right on every image, baseline right on a fixed 70 %: each resample's difference is
    100 (1 - K / N) with K ~ Bin(N, 0.7), so the interval is 100 (1 - q / N) at the binomial quantiles."""
    n, f = 400, Fraction(7, 10)
    good = np.zeros(n, dtype=bool)
    good[np.random.default_rng(3).permutation(n)[: int(n * f)]] = True
    a = write_run(tmp_path / "a", "all", _box_run(n, np.ones(n, dtype=bool)), objective="kl_uniform(lam=1)")
    b = write_run(tmp_path / "b", "part", _box_run(n, good))
    interval = paired_bootstrap([a], [b], metrics=[metric], n_resamples=20000, seed=7)[metric]
    assert interval.diff == pytest.approx(100 * (1 - float(f)), abs=1e-12)
    step = 100 / n  # one image
    expected_low = 100 * (1 - _binomial_quantile(n, f, 0.975) / n)
    expected_high = 100 * (1 - _binomial_quantile(n, f, 0.025) / n)
    assert abs(interval.low - expected_low) <= step, (interval, expected_low)
    assert abs(interval.high - expected_high) <= step, (interval, expected_high)
    assert interval.excludes_zero and interval.n_images == n


def test_seeds_are_averaged_inside_each_resample(tmp_path):
    """Seed 0 right on A, seed 1 right on the other images: their mean is 50 % on *every* resample only if both
    seeds see the same draw; against a baseline right nowhere the interval is exactly [50, 50]."""
    n = 200
    a_half = np.arange(n) < 80
    mine = [write_run(tmp_path / "a", "x", _box_run(n, a_half), seed=0, objective="kl_uniform(lam=1)"),
            write_run(tmp_path / "a", "x", _box_run(n, ~a_half), seed=1, objective="kl_uniform(lam=1)")]
    theirs = [write_run(tmp_path / "b", "ce", _box_run(n, np.zeros(n, dtype=bool)), seed=s) for s in (1, 0)]
    for metric, interval in paired_bootstrap(mine, theirs, metrics=["GT-known Loc", "MaxBoxAccV2"]).items():
        assert (interval.diff, interval.low, interval.high) == pytest.approx((50.0, 50.0, 50.0), abs=1e-9), metric


def _brute_force(arrays_a, arrays_b, n, n_resamples, seed, level):
    """Each resample by explicit repeated-index subsets through the metrics' own functions."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))  # the documented draw

    def metrics_of(arrays, positions):
        # positions index the images in sorted-id order; map them to this run's rows
        rows = {name: np.argsort(arrays[f"{kind}.image_ids"], kind="stable")[positions]
                for name, kind in (("boxes", "boxes"), ("masks", "masks"))}
        boxes = BoxOutcomes(thresholds=arrays["boxes.thresholds"], iou_thresholds=IOUS,
                            image_ids=arrays["boxes.image_ids"], ious=arrays["boxes.ious"],
                            cls_correct=arrays["boxes.cls_correct"])
        result = box_result_of(boxes, rows["boxes"])
        return {"MaxBoxAccV2": result.max_box_acc_v2, "GT-known Loc": result.gt_known_loc(LOC_INDEX),
                "Top-1 Loc": result.top1_loc(LOC_INDEX),
                "PxAP": pxap_of(arrays["masks.fg_hist"], arrays["masks.bg_hist"], rows["masks"])}

    deltas = {m: [] for m in ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP")}
    for positions in draws:
        a = [metrics_of(x, positions) for x in arrays_a]
        b = [metrics_of(x, positions) for x in arrays_b]
        for m in deltas:
            deltas[m].append(np.mean([r[m] for r in a]) - np.mean([r[m] for r in b]))
    tail = 100 * (1 - level) / 2
    return {m: tuple(np.percentile(v, [tail, 100 - tail])) for m, v in deltas.items()}


def test_equals_a_brute_force_bootstrap_with_rows_in_any_order(tmp_path):
    rng = np.random.default_rng(11)
    n, r = 60, 300
    arrays_a = [_random_run(rng, n, order=rng.permutation(n)) for _ in range(2)]
    arrays_b = [_random_run(rng, n) for _ in range(2)]
    mine = [write_run(tmp_path / "a", "x", arr, seed=s, objective="label_smoothing(eps=0.1)")
            for s, arr in enumerate(arrays_a)]
    theirs = [write_run(tmp_path / "b", "ce", arr, seed=s) for s, arr in enumerate(arrays_b)]
    got = paired_bootstrap(mine, theirs, n_resamples=r, seed=5, level=0.9)
    expected = _brute_force(arrays_a, arrays_b, n, r, 5, 0.9)
    for m, (low, high) in expected.items():
        assert got[m].low == pytest.approx(low, abs=1e-9), m
        assert got[m].high == pytest.approx(high, abs=1e-9), m
        full = np.mean([summary_of(x)[m] for x in arrays_a]) - np.mean([summary_of(x)[m] for x in arrays_b])
        assert got[m].diff == pytest.approx(full, abs=1e-12), m


def test_mpxap_equals_a_brute_force_over_image_class_pairs(tmp_path):
    rng = np.random.default_rng(2)
    n, k, r = 30, 4, 200
    ids = _ids(n)

    def pairs():
        rows = [(i, c) for i in range(n) for c in rng.choice(k, size=rng.integers(1, 3), replace=False)]
        return {"classification.image_ids": np.asarray(ids), "classification.label": np.zeros(n, dtype=np.int64),
                "multiclass.thresholds": THRESHOLDS, "multiclass.num_classes": np.asarray(k),
                "multiclass.image_ids": np.asarray([ids[i] for i, _ in rows]),
                "multiclass.classes": np.asarray([c for _, c in rows], dtype=np.int64),
                "multiclass.fg_hist": rng.integers(0, 30, size=(len(rows), len(THRESHOLDS) + 2)).astype(np.int32),
                "multiclass.bg_hist": rng.integers(0, 50, size=(len(rows), len(THRESHOLDS) + 2)).astype(np.int32)}

    a, b = pairs(), pairs()
    run_a = write_run(tmp_path / "a", "x", a, summary={}, objective="kl_uniform(lam=1)")
    run_b = write_run(tmp_path / "b", "ce", b, summary={})
    got = paired_bootstrap([run_a], [run_b], metrics=["mPxAP", "PxAP"], n_resamples=r, seed=3)
    assert set(got) == {"mPxAP"}  # no masks.* arrays: no PxAP

    def mpxap(arrays, positions):
        outcomes = MultiClassMaskOutcomes(
            thresholds=THRESHOLDS, num_classes=k, image_ids=arrays["multiclass.image_ids"],
            classes=arrays["multiclass.classes"], fg_hist=arrays["multiclass.fg_hist"],
            bg_hist=arrays["multiclass.bg_hist"])
        rows = [j for p in positions for j in np.flatnonzero(arrays["multiclass.image_ids"] == ids[p])]
        return multiclass_result_of(outcomes, np.asarray(rows)).mpxap

    draws = np.random.default_rng(3).integers(0, n, size=(r, n))
    deltas = [mpxap(a, d) - mpxap(b, d) for d in draws]
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert got["mPxAP"].low == pytest.approx(low, abs=1e-9) and got["mPxAP"].high == pytest.approx(high, abs=1e-9)
    assert got["mPxAP"].diff == pytest.approx(mpxap(a, np.arange(n)) - mpxap(b, np.arange(n)), abs=1e-12)


def test_whole_split_numbers_equal_real_run_records():
    """The committed quick-preset runs: every recomputed headline number equals the record's, exactly."""
    runs = sorted((REPO / "leaderboards" / "synthetic-quick" / "records").glob("*/record.json"))
    assert len(runs) == 4
    for path in runs:
        record = json.loads(path.read_text())
        for split, summary in (("test", record["summary"]), ("val", record["val"]["summary"])):
            scores = run_scores(load_outcomes(path.parent, split))
            assert set(scores.parts) == {"MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP", "mPxAP"} - {"mPxAP"}
            for metric in scores.parts:
                assert whole_split_value(scores, metric) == summary[metric], (path.parent.name, split, metric)


# ---------------------------------------------------------------- what each dataset can give, and refusals


def test_mask_only_gives_pxap_only_and_box_only_no_pxap(tmp_path):
    rng = np.random.default_rng(4)
    n = 50
    fg, bg = rng.integers(1, 30, size=(2, n, len(THRESHOLDS) + 2))
    masks = outcome_arrays(_ids(n), fg=fg, bg=bg)
    a, b = write_run(tmp_path / "a", "x", masks, objective="kl_uniform(lam=1)"), write_run(tmp_path / "b", "ce", masks)
    assert set(paired_bootstrap([a], [b], n_resamples=50)) == {"PxAP"}
    boxes = _box_run(n, rng.uniform(size=n) < 0.5)
    a, b = write_run(tmp_path / "c", "x", boxes, objective="kl_uniform(lam=1)"), write_run(tmp_path / "d", "ce", boxes)
    assert set(paired_bootstrap([a], [b], n_resamples=50)) == {"MaxBoxAccV2", "GT-known Loc", "Top-1 Loc"}


def test_runs_without_outcomes_give_nan_not_a_crash(tmp_path):
    arrays = _box_run(20, np.ones(20, dtype=bool))
    a = write_run(tmp_path / "a", "x", None, summary=summary_of(arrays), objective="kl_uniform(lam=1)")
    b = write_run(tmp_path / "b", "ce", arrays)
    result = paired_bootstrap([a], [b])
    assert set(result) == {"MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP"}
    assert all(math.isnan(i.low) and math.isnan(i.diff) and i.n_images == 0 for i in result.values())


def test_different_images_or_seeds_are_refused_in_one_line(tmp_path):
    a = write_run(tmp_path / "a", "x", _box_run(30, np.ones(30, dtype=bool)), objective="kl_uniform(lam=1)")
    other = _box_run(30, np.ones(30, dtype=bool))
    other["boxes.image_ids"] = np.asarray([f"other{i}" for i in range(30)])
    b = write_run(tmp_path / "b", "ce", other)
    with pytest.raises(DataError, match=r"different test images \(30 and 30 images, 0 shared\)") as info:
        paired_bootstrap([a], [b])
    assert "\n" not in str(info.value)
    c = write_run(tmp_path / "c", "ce", _box_run(30, np.ones(30, dtype=bool)), seed=1)
    with pytest.raises(DataError, match=r"seeds \(0\) are not the baseline's \(1\)"):
        paired_bootstrap([a], [c])


def test_resample_counts_follow_the_documented_draw():
    counts = resample_counts(7, 5, seed=9)
    draws = np.random.default_rng(9).integers(0, 7, size=(5, 7))
    expected = np.stack([np.bincount(d, minlength=7) for d in draws])
    assert np.array_equal(counts, expected) and (counts.sum(axis=1) == 7).all()


def test_1000_resamples_of_400_images_take_well_under_a_second(tmp_path):
    rng = np.random.default_rng(0)
    mine = [write_run(tmp_path / "a", "x", _random_run(rng, 400), seed=s, objective="kl_uniform(lam=1)")
            for s in range(3)]
    theirs = [write_run(tmp_path / "b", "ce", _random_run(rng, 400), seed=s) for s in range(3)]
    start = time.perf_counter()
    result = paired_bootstrap(mine, theirs, n_resamples=1000)
    elapsed = time.perf_counter() - start
    assert len(result) == 4 and all(isinstance(i, Interval) for i in result.values())
    assert elapsed < 2.0, elapsed  # 6 runs x 4 metrics x 1000 resamples, files read included
