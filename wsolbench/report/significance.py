"""Paired bootstrap over test images: how sure a difference between two settings is.

Two settings evaluated on the same test images differ by ``diff`` (percent points: the mean over seeds of
the setting's metric minus the mean over seeds of the baseline's, on the whole split). Which images the
test split happens to hold moves that number; the paired bootstrap measures by how much. Each resample
draws N images with replacement, **once**, and uses that draw for every run of both settings (so the
comparison stays paired, and a hard image weighs on both sides); in each resample the metric of each
seed's run is computed on the drawn images, averaged over seeds on each side, and the baseline's average
subtracted. The ``level`` interval is the percentile interval of those differences
(``np.nanpercentile``, linear interpolation).

The draws are ``np.random.default_rng(seed).integers(0, N, size=(n_resamples, N))`` (image positions in
the image-id order), turned into count matrices ``(n_resamples, N)``; every metric is then a matrix
product of counts with a per-image matrix, so 1000 resamples of a 400-image split take milliseconds:

============== ====================================================================================
metric         per image (from ``outcomes-<split>.npz``, :mod:`wsolbench.metrics.outcomes`)
============== ====================================================================================
MaxBoxAccV2    ``boxes.ious`` (all contours) >= each IoU threshold, at every CAM threshold: counts,
               then the best over thresholds per IoU, averaged over the IoUs (as ``box_counts``)
GT-known Loc   ``loc.gt_known`` at IoU 50 (the CAM threshold chosen on val)
Top-1 Loc      ``loc.top1`` at IoU 50
PxAP           ``masks.fg_hist`` / ``bg_hist`` pooled over the drawn images
mPxAP          ``multiclass.*`` histograms pooled per class over the drawn images' (image, class) pairs
============== ====================================================================================

On the whole split the numbers are those of the run record (exactly: integer counts, the metrics' own
``pxap``). A metric some run cannot give (no boxes on a mask-only dataset, no masks on a box-only one) is
left out of the result; runs without an outcomes file (made before schema 2) give NaN intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsolbench.errors import ConfigError, DataError
from wsolbench.metrics.boxes import iou_hits
from wsolbench.metrics.protocol import CONTOUR_MODES, pxap
from wsolbench.records import RECORD_FILE, load_outcomes, load_record, outcomes_path
from wsolbench.report.aggregate import SETTING, setting_key
from wsolbench.structs import LOC_IOU

#: The metrics a leaderboard gives intervals for.
INTERVAL_METRICS = ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP")
#: Every metric :func:`paired_bootstrap` can resample.
SUPPORTED = (*INTERVAL_METRICS, "mPxAP")
#: The axes a baseline may differ on (the test images must be the same, so never the dataset).
BASELINE_AXES = ("objective", "method", "cam", "backbone")


@dataclass(frozen=True)
class Interval:
    """A difference and its bootstrap interval, percent points.

    Attributes:
        diff: setting minus baseline on the whole split (means over seeds).
        low, high: the percentile interval of the resampled differences.
        n_images: images per resample (0 when no interval could be computed).
    """

    diff: float
    low: float
    high: float
    n_images: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below zero (False when NaN)."""
        return bool(self.low > 0 or self.high < 0)


NO_INTERVAL = Interval(math.nan, math.nan, math.nan, 0)


# ---------------------------------------------------------------- one run's per-image numbers


@dataclass(frozen=True, eq=False)
class RunScores:
    """One run's per-image numbers by metric, rows in sorted image-id order (``ids``).

    ``parts[metric]``: MaxBoxAccV2 ``(hits (N, n_iou * T) float64, n_iou)``; GT-known / Top-1 Loc ``hits (N,)``;
    PxAP ``(fg, bg)`` float64 ``(N, T + 2)``; mPxAP ``(image (P,), classes (P,), fg, bg (P, T + 2), K)``.
    """

    ids: np.ndarray
    parts: Mapping[str, tuple[Any, ...]]


def _sorted_rows(ids: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(order, sorted ids)`` of a kind's image ids; DataError on a repeated id."""
    ids = np.asarray(ids).astype(str)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
        raise DataError(f"{where}: image id {ordered[1:][ordered[1:] == ordered[:-1]][0]!r} appears twice")
    return order, ordered


def run_scores(arrays: Mapping[str, np.ndarray], metrics: Sequence[str] = SUPPORTED, *,
               where: str = "outcomes") -> RunScores:
    """The per-image matrices of ``metrics`` (those the arrays can give) from one run's outcome arrays.

    Raises:
        DataError: the kinds of one run disagree on their images, or an id repeats.
    """
    ids = None
    parts: dict[str, tuple[Any, ...]] = {}

    def aligned(kind: str) -> np.ndarray:
        nonlocal ids
        order, ordered = _sorted_rows(arrays[f"{kind}.image_ids"], where)
        if ids is None:
            ids = ordered
        elif not np.array_equal(ids, ordered):
            raise DataError(f"{where}: the {kind} rows are not the images of the other outcomes")
        return order

    for kind in ("classification", "boxes", "masks"):
        if f"{kind}.image_ids" in arrays:
            aligned(kind)
    if "boxes.ious" in arrays:
        order = aligned("boxes")
        ious = np.asarray(arrays["boxes.ious"])[order][:, CONTOUR_MODES.index("all")]  # (N, T)
        iou_thresholds = [int(v) for v in np.asarray(arrays["boxes.iou_thresholds"]).reshape(-1)]
        if "MaxBoxAccV2" in metrics:
            hits = np.stack([iou_hits(ious, iou) for iou in iou_thresholds], axis=1)  # (N, n_iou, T)
            parts["MaxBoxAccV2"] = (hits.reshape(len(hits), -1).astype(np.float64), len(iou_thresholds))
        loc_ious = [int(v) for v in np.asarray(arrays.get("loc.iou_thresholds", [])).reshape(-1)]
        for key, name in (("loc.gt_known", "GT-known Loc"), ("loc.top1", "Top-1 Loc")):
            if name in metrics and key in arrays and LOC_IOU in loc_ious:
                parts[name] = (np.asarray(arrays[key])[order][:, loc_ious.index(LOC_IOU)].astype(np.float64),)
    if "PxAP" in metrics and "masks.fg_hist" in arrays:
        order = aligned("masks")
        parts["PxAP"] = tuple(np.asarray(arrays[f"masks.{h}"])[order].astype(np.float64)
                              for h in ("fg_hist", "bg_hist"))
    if "mPxAP" in metrics and "multiclass.fg_hist" in arrays and ids is not None:
        pair_ids = np.asarray(arrays["multiclass.image_ids"]).astype(str)
        image = np.searchsorted(ids, pair_ids)
        if len(pair_ids) and (image.max() >= len(ids) or not np.array_equal(ids[np.minimum(image, len(ids) - 1)],
                                                                            pair_ids)):
            raise DataError(f"{where}: a multiclass pair names an image the other outcomes do not have")
        parts["mPxAP"] = (image, np.asarray(arrays["multiclass.classes"]).astype(np.int64),
                          np.asarray(arrays["multiclass.fg_hist"]).astype(np.float64),
                          np.asarray(arrays["multiclass.bg_hist"]).astype(np.float64),
                          int(arrays["multiclass.num_classes"]))
    return RunScores(ids=ids if ids is not None else np.asarray([], dtype=str), parts=parts)


# ---------------------------------------------------------------- metrics of count matrices


def pxap_rows(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """:func:`~wsolbench.metrics.protocol.pxap` of each row of pooled histograms ``(R, T + 2)``; NaN where a
    row has no foreground pixel."""
    tp = np.cumsum(fg[:, ::-1], axis=1)
    fp = np.cumsum(bg[:, ::-1], axis=1)
    total = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / total
    terms = precision[:, 1:] * np.diff(recall, axis=1)
    out = np.where(np.isnan(terms), 0.0, terms).sum(axis=1) * 100
    out[total[:, 0] <= 0] = math.nan
    return out


def metric_values(scores: RunScores, name: str, counts: np.ndarray) -> np.ndarray:
    """The metric of one run on each resample, ``(R,)`` percent; ``counts`` ``(R, N)`` float64 (how often each
    image is drawn). A row of ones gives the whole split."""
    n = counts.shape[1]
    part = scores.parts[name]
    if name == "MaxBoxAccV2":
        hits, n_iou = part
        correct = counts @ hits  # (R, n_iou * T), integer-valued
        curves = (correct * 100.0 / n).reshape(len(counts), n_iou, -1)
        return curves.max(axis=2).mean(axis=1)
    if name in ("GT-known Loc", "Top-1 Loc"):
        return counts @ part[0] * 100.0 / n
    if name == "PxAP":
        fg, bg = part
        return pxap_rows(counts @ fg, counts @ bg)
    image, classes, fg, bg, k = part
    weights = counts[:, image]  # (R, P): each pair drawn as often as its image
    per_class = np.full((len(counts), k), math.nan)
    for c in np.unique(classes):
        mine = classes == c
        per_class[:, c] = pxap_rows(weights[:, mine] @ fg[mine], weights[:, mine] @ bg[mine])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any labelled pixel: NaN
        return np.nanmean(per_class, axis=1)


def whole_split_value(scores: RunScores, name: str) -> float:
    """The metric on the whole split, computed as the run record computes it (integer counts, ``pxap``)."""
    if name in ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc"):
        return float(metric_values(scores, name, np.ones((1, len(scores.ids))))[0])
    if name == "PxAP":
        fg, bg = scores.parts[name]
        return pxap(fg.sum(axis=0).astype(np.int64), bg.sum(axis=0).astype(np.int64))
    image, classes, fg, bg, k = scores.parts[name]
    values = [pxap(fg[classes == c].sum(axis=0).astype(np.int64), bg[classes == c].sum(axis=0).astype(np.int64))
              for c in range(k) if fg[classes == c].sum() > 0]
    return float(np.mean(values)) if values else math.nan


def resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n)`` float64: how often each image is drawn in each resample, from
    ``default_rng(seed).integers(0, n, size=(n_resamples, n))``."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    offsets = draws + (np.arange(n_resamples)[:, None] * n)
    return np.bincount(offsets.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(np.float64)


# ---------------------------------------------------------------- the paired bootstrap


def _seeded(paths: Sequence[Path], side: str) -> list[tuple[int, Path]]:
    out = []
    for path in paths:
        record = load_record(Path(path) / RECORD_FILE)
        seed = record["summary"].get("seed", record["config"].get("seed"))
        out.append((int(seed), Path(path)))
    seeds = [s for s, _ in out]
    if len(set(seeds)) < len(seeds):
        raise DataError(f"{side} runs repeat a seed ({', '.join(map(str, sorted(seeds)))}): one run per seed")
    return sorted(out)


def _check_same_images(scores: Sequence[RunScores], paths: Sequence[Path], split: str) -> None:
    ref = scores[0].ids
    for other, path in zip(scores[1:], paths[1:]):
        if not np.array_equal(ref, other.ids):
            shared = len(np.intersect1d(ref, other.ids))
            raise DataError(f"runs {paths[0]} and {path} were evaluated on different {split} images "
                            f"({len(ref)} and {len(other.ids)} images, {shared} shared): no paired comparison")


def paired_bootstrap(runs: Sequence[Path], baseline: Sequence[Path], *,
                     metrics: Sequence[str] = INTERVAL_METRICS, split: str = "test", n_resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> dict[str, Interval]:
    """The difference of a setting's runs to its baseline's runs, with a paired bootstrap interval per metric.

    Args:
        runs, baseline: run folders (``record.json`` and ``outcomes-<split>.npz``), one per seed; both sides
            must have the same seeds (the caller chooses which: see :func:`compare_to_baseline`).
        metrics: among :data:`SUPPORTED`; those the runs cannot give are left out of the result.
        n_resamples: resamples (>= 1); ``seed`` seeds the image draws.
        level: the interval's coverage, e.g. 0.95.

    Returns:
        metric -> :class:`Interval`; every requested metric NaN (``n_images`` 0) when a run has no outcomes file.

    Raises:
        ConfigError: an unknown metric, ``n_resamples < 1``, ``level`` outside (0, 1).
        DataError: no runs, different seeds on the two sides, different test images, unreadable files.
    """
    unknown = [m for m in metrics if m not in SUPPORTED]
    if unknown:
        raise ConfigError(f"no bootstrap for metric {unknown[0]!r}; supported: {', '.join(SUPPORTED)}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if not runs or not baseline:
        raise DataError("a paired bootstrap needs at least one run on each side")
    mine, theirs = _seeded(runs, "setting"), _seeded(baseline, "baseline")
    if [s for s, _ in mine] != [s for s, _ in theirs]:
        raise DataError(f"the setting's seeds ({','.join(str(s) for s, _ in mine)}) are not the baseline's "
                        f"({','.join(str(s) for s, _ in theirs)}): pass runs of the same seeds")
    paths = [p for _, p in mine] + [p for _, p in theirs]
    if not all(outcomes_path(p, split).is_file() for p in paths):
        return {m: NO_INTERVAL for m in metrics}
    scores = [run_scores(load_outcomes(p, split), metrics, where=str(outcomes_path(p, split))) for p in paths]
    _check_same_images(scores, paths, split)
    n = len(scores[0].ids)
    available = [m for m in metrics if all(m in s.parts for s in scores)]
    if n == 0 or not available:
        return {}
    counts = resample_counts(n, n_resamples, seed)
    half = len(mine)
    tail = 100 * (1 - level) / 2
    out = {}
    for name in available:
        full = [whole_split_value(s, name) for s in scores]
        diff = float(np.mean(full[:half]) - np.mean(full[half:]))
        boot = np.stack([metric_values(s, name, counts) for s in scores])  # (runs, R)
        deltas = boot[:half].mean(axis=0) - boot[half:].mean(axis=0)
        if np.isnan(deltas).all():
            out[name] = Interval(diff, math.nan, math.nan, n)
            continue
        low, high = np.nanpercentile(deltas, [tail, 100 - tail])
        out[name] = Interval(diff, float(low), float(high), n)
    return out


# ---------------------------------------------------------------- against a baseline, frame by frame


def parse_baseline(text: str) -> tuple[str, str]:
    """``"ce"`` -> ``("objective", "ce")``; ``"method=cam"`` -> ``("method", "cam")``.

    Raises:
        ConfigError: an axis outside :data:`BASELINE_AXES`, or an empty value.
    """
    axis, eq, value = str(text).partition("=")
    axis, value = (axis.strip(), value.strip()) if eq else ("objective", axis.strip())
    if axis not in BASELINE_AXES:
        raise ConfigError(f"baseline {text!r}: the axis must be one of {', '.join(BASELINE_AXES)} (e.g. ce, "
                          "method=cam)")
    if not value:
        raise ConfigError(f"baseline {text!r} names no {axis}")
    return axis, value


def _baseline_index(agg: pd.DataFrame, index: Any, axis: str, value: str) -> Any:
    """The index of the row that is ``index``'s baseline (same SETTING but ``axis`` = ``value``), or None."""
    row = agg.loc[index]
    key = setting_key(row)
    same = pd.Series(True, index=agg.index)
    for column, wanted in zip(SETTING, key):
        if column != axis:
            same &= agg[column].astype(str).where(agg[column].notna(), "") == wanted
    rows = agg[same & (agg[axis].astype(str) == value)]
    if rows.empty and f"{axis}_name" in agg.columns:
        rows = agg[same & (agg[f"{axis}_name"].astype(str) == value)]
        if len(rows) > 1:
            labels = ", ".join(map(str, rows[axis]))
            raise ConfigError(f"baseline {value!r} matches {len(rows)} settings ({labels}): name one label")
    return rows.index[0] if len(rows) else None


def _runs_of(runs: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    key = setting_key(row)
    mask = pd.Series(True, index=runs.index)
    for column, wanted in zip(SETTING, key):
        values = runs[column] if column in runs.columns else pd.Series(None, index=runs.index)
        mask &= values.astype(str).where(values.notna(), "") == wanted
    return runs[mask]


def compare_to_baseline(agg: pd.DataFrame, runs: pd.DataFrame, *, baseline: str = "ce",
                        metrics: Sequence[str] = (*INTERVAL_METRICS, "mPxAP"), n_resamples: int = 1000,
                        seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """``agg`` with each setting compared to its baseline: the row of the same SETTING except ``axis`` =
    ``value`` (:func:`parse_baseline`), over the seeds both have.

    Adds ``baseline`` (the baseline row's label on that axis, None where there is none), ``is_baseline``,
    ``interval_seeds`` (the seeds compared, ``"0,1"``), ``interval_images``, and per metric ``M`` of
    ``metrics`` that ``agg`` has: ``M_diff`` (mean over the common seeds, setting minus baseline), ``M_low``,
    ``M_high`` (the :func:`paired_bootstrap` interval; NaN without per-image outcomes or with
    ``n_resamples=0``).
    """
    axis, value = parse_baseline(baseline)
    out = agg.copy()
    shown = [m for m in metrics if m in agg.columns]
    new: dict[str, list[Any]] = {c: [] for c in ("baseline", "is_baseline", "interval_seeds", "interval_images")}
    for m in shown:
        for part in ("diff", "low", "high"):
            new[f"{m}_{part}"] = []
    for index, row in agg.iterrows():
        base_index = _baseline_index(agg, index, axis, value)
        results: dict[str, Any] = {c: math.nan for c in new}
        results.update(baseline=None, is_baseline=base_index == index, interval_seeds=None, interval_images=0)
        if base_index is not None and base_index != index:
            results["baseline"] = agg.loc[base_index, axis]
            results.update(_compare(_runs_of(runs, row), _runs_of(runs, agg.loc[base_index]), shown,
                                    n_resamples=n_resamples, seed=seed, level=level))
        for column in new:
            new[column].append(results[column])
    for column, values in new.items():
        out[column] = values
    return out


def _compare(mine: pd.DataFrame, theirs: pd.DataFrame, metrics: Sequence[str], *, n_resamples: int, seed: int,
             level: float) -> dict[str, Any]:
    if "seed" not in mine.columns or "seed" not in theirs.columns:
        return {}
    seeds = sorted(set(mine["seed"].dropna().astype(int)) & set(theirs["seed"].dropna().astype(int)))
    if not seeds:
        return {}
    mine = mine[mine["seed"].isin(seeds)].sort_values("seed")
    theirs = theirs[theirs["seed"].isin(seeds)].sort_values("seed")
    out: dict[str, Any] = {"interval_seeds": ",".join(map(str, seeds))}
    for m in metrics:
        out[f"{m}_diff"] = float(pd.to_numeric(mine[m], errors="coerce").mean()
                                 - pd.to_numeric(theirs[m], errors="coerce").mean())
    dirs = list(mine["run_dir"]) + list(theirs["run_dir"]) if "run_dir" in mine.columns else [None]
    if n_resamples > 0 and all(isinstance(d, str) and d for d in dirs):
        wanted = [m for m in metrics if m in SUPPORTED]
        intervals = paired_bootstrap([Path(d) for d in mine["run_dir"]], [Path(d) for d in theirs["run_dir"]],
                                     metrics=wanted, n_resamples=n_resamples, seed=seed, level=level)
        for m, interval in intervals.items():
            if interval.n_images:
                out.update({f"{m}_diff": interval.diff, f"{m}_low": interval.low, f"{m}_high": interval.high,
                            "interval_images": interval.n_images})
    return out
