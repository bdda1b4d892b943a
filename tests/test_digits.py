"""The built-in digits dataset: determinism, ground truth, the fixed split of source digits, caching, a bench."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsolbench.config import RunConfig, preset, stable_hash, to_dict
from wsolbench.config.sections import DataConfig, DigitsConfig, SyntheticConfig
from wsolbench.data import digits as dg
from wsolbench.data.digits import build_digits, source_indices
from wsolbench.errors import ConfigError
from wsolbench.manifest import load_eval_mask, load_manifest, read_image, read_mask

TINY = DigitsConfig(num_classes=3, n_train=15, n_val=12, n_test=12, seed=3)
SIZE = TINY.image_size


@pytest.fixture(scope="module")
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The source digits straight from scikit-learn (not through the module under test): 0..16, labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_digits(TINY, tmp_path_factory.mktemp("digits"))


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_layout_and_manifest(built: Path) -> None:
    assert built.name == f"digits-{stable_hash(to_dict(TINY))}"
    m = load_manifest(built, check_files=True)
    assert m.name == "digits" and m.classes == ("0", "1", "2")
    assert {s: len(v) for s, v in m.splits.items()} == {"train": 15, "val": 12, "test": 12}
    for sample in m.split("train"):
        assert sample.boxes == () and sample.mask is None and (sample.width, sample.height) == (SIZE, SIZE)
    for split in ("val", "test"):
        for sample in m.split(split):
            assert len(sample.boxes) == 1 and sample.mask == f"masks/{sample.image_id}"
    assert json.loads((built / "digits.json").read_text())["config"] == to_dict(TINY)
    sources = source_indices(built)
    assert {s: len(v) for s, v in sources.items()} == {"train": 15, "val": 12, "test": 12}
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no temp dirs left behind
    image = read_image(m.image_path(m.split("train")[0]))
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert set(np.unique(read_mask(m.mask_path(m.split("val")[0])))) == {0, 1}


def test_build_is_byte_identical(built: Path, tmp_path: Path) -> None:
    again = build_digits(TINY, tmp_path)
    assert again.name == built.name and _files(again) == _files(built)
    reseeded = build_digits(dataclasses.replace(TINY, seed=4), tmp_path)
    assert (reseeded / "images/val/000000.png").read_bytes() != (built / "images/val/000000.png").read_bytes()


def test_image_i_does_not_depend_on_split_sizes(built: Path, tmp_path: Path) -> None:
    other = build_digits(dataclasses.replace(TINY, n_train=4, n_val=20, n_test=5), tmp_path)
    a, b = load_manifest(built), load_manifest(other)
    sa, sb = source_indices(built), source_indices(other)
    for split, n in (("train", 4), ("val", 12), ("test", 5)):
        assert a.split(split)[:n] == b.split(split)[:n]
        assert sa[split][:n] == sb[split][:n]
        for sample in a.split(split)[:n]:
            assert (other / sample.path).read_bytes() == (built / sample.path).read_bytes()
            if sample.mask:
                assert (other / sample.mask).read_bytes() == (built / sample.mask).read_bytes()


def test_boxes_are_tight_boxes_of_nonempty_masks_inside_the_image(built: Path) -> None:
    m = load_manifest(built)
    for split in ("val", "test"):
        for sample in m.split(split):
            mask = load_eval_mask(m, sample, SIZE)
            ys, xs = np.nonzero(mask)
            assert xs.size > 0.02 * SIZE * SIZE
            assert sample.boxes[0] == (xs.min(), ys.min(), xs.max(), ys.max())
            x0, y0, x1, y1 = sample.boxes[0]
            assert 0 < x0 <= x1 < SIZE - 1 and 0 < y0 <= y1 < SIZE - 1  # the zero padding keeps it off the border
            # the digit is drawn in a bright colour over a darker background
            lum = read_image(m.image_path(sample)).astype(np.float64).mean(axis=2)
            assert lum[mask > 0].mean() > lum[mask == 0].mean() + 20


def _ink_correlation(mask: np.ndarray, digit: np.ndarray) -> float:
    """Correlation of ``mask`` (cropped to its box, area-resampled onto the digit's ink box) with the 8 x 8 ink."""
    ys, xs = np.nonzero(mask)
    rows = np.flatnonzero((digit > 0.3 * 16).any(axis=1))
    cols = np.flatnonzero((digit > 0.3 * 16).any(axis=0))
    ink = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    small = cv2.resize(crop, (ink.shape[1], ink.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = small.ravel() - small.mean(), ink.ravel() - ink.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def test_masks_trace_the_recorded_source_digit(sklearn_digits) -> None:
    """The mask has the shape of the sklearn digit recorded as its source, and the label is that digit's."""
    images, targets = sklearn_digits
    cfg = dataclasses.replace(TINY, num_classes=5)
    own, beaten = [], []
    for i in range(60):
        label = i % 5
        _, mask, source = dg.generate_sample(dg.image_rng(cfg, "test", i), "test", label, cfg)
        assert targets[source] == label
        own.append(_ink_correlation(mask, images[source]))
        rivals = [_ink_correlation(mask, images[j]) for j in np.flatnonzero(targets == label)[:40] if j != source]
        beaten.append(np.mean(np.array(rivals) >= own[-1]))
    assert np.median(own) > 0.8  # measured: about 0.92
    assert np.mean(beaten) < 0.1  # measured: about 0.03 (a random digit of the class would give about 0.5)


def test_no_train_digit_in_val_or_test(built: Path, sklearn_digits) -> None:
    _, targets = sklearn_digits
    sources = source_indices(built)
    m = load_manifest(built)
    for split, indices in sources.items():
        assert [targets[j] for j in indices] == [s.label for s in m.split(split)]
    train, val, test = (set(sources[s]) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    # the pools themselves: disjoint, covering all 1797 digits, 15 / 15 / 70 % of each class, whatever the data seed
    pools = dg.source_pools()
    for digit in range(10):
        members = {s: set(pools[s][digit].tolist()) for s in ("train", "val", "test")}
        assert not members["train"] & members["val"] and not members["train"] & members["test"]
        assert not members["val"] & members["test"]
        everything = members["train"] | members["val"] | members["test"]
        assert everything == set(np.flatnonzero(targets == digit).tolist())
        assert abs(len(members["val"]) - 0.15 * len(everything)) <= 0.5
        assert abs(len(members["test"]) - 0.15 * len(everything)) <= 0.5
    assert dg.pool_sizes(10) == {"train": 1259, "val": 269, "test": 269}
    assert dg.pool_sizes(5) == {"train": 631, "val": 135, "test": 135}
    reseeded = dataclasses.replace(TINY, seed=11)
    for split in ("train", "val", "test"):
        for i in range(30):
            _, _, source = dg.generate_sample(dg.image_rng(reseeded, split, i), split, i % 3, reseeded)
            assert source in pools[split][i % 3]


def test_labels_balanced_and_in_range(built: Path) -> None:
    m = load_manifest(built)
    for split in m.splits:
        counts = Counter(s.label for s in m.split(split))
        assert set(counts) == {0, 1, 2} and max(counts.values()) - min(counts.values()) <= 1
    labels = dg.split_labels(dataclasses.replace(TINY, num_classes=5), "train", 23)
    counts = np.bincount(labels, minlength=5)
    assert labels.min() >= 0 and labels.max() < 5 and counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="label 3 is out of range"):
        dg.generate_sample(np.random.default_rng(0), "val", 3, TINY)


def test_cache_is_reused_and_an_incomplete_one_rebuilt(built: Path, tmp_path: Path) -> None:
    calls = []
    before = (built / "manifest.json").stat().st_mtime_ns
    assert build_digits(TINY, built.parent, progress=lambda d, t: calls.append(d)) == built
    assert calls == [] and (built / "manifest.json").stat().st_mtime_ns == before
    first = build_digits(TINY, tmp_path)
    reference = _files(first)
    (first / dg.SOURCES_FILE).unlink()
    assert build_digits(TINY, tmp_path, progress=lambda d, t: calls.append(d)) == first
    assert calls[-1] == 39 and _files(first) == reference


@pytest.mark.parametrize("bad", [{"num_classes": 11}, {"num_classes": 1}, {"n_val": 0}, {"seed": -1},
                                 {"digit_size": (0.5, 0.9)}, {"digit_size": (0.6, 0.5)}, {"clutter": (5, 2)},
                                 {"mask_threshold": 0.0}, {"image_size": 16}])
def test_config_is_validated(bad: dict) -> None:
    with pytest.raises(ConfigError, match="digits"):
        DigitsConfig(**bad)


def test_config_hash_covers_only_the_builtin_dataset_in_use() -> None:
    def cfg(dataset: str, **sections) -> RunConfig:
        return RunConfig(data=DataConfig(dataset=dataset, root="/raw" if dataset == "cub" else None, **sections))

    other_digits = {"digits": DigitsConfig(n_train=7)}
    other_shapes = {"synthetic": SyntheticConfig(rho=0.9)}
    assert cfg("synthetic").config_hash() == cfg("synthetic", **other_digits).config_hash()
    assert cfg("synthetic").config_hash() != cfg("synthetic", **other_shapes).config_hash()
    assert cfg("digits").config_hash() == cfg("digits", **other_shapes).config_hash()
    assert cfg("digits").config_hash() != cfg("digits", **other_digits).config_hash()
    assert cfg("cub").config_hash() == cfg("cub", **other_digits, **other_shapes).config_hash()
    assert cfg("digits").config_hash() != cfg("synthetic").config_hash()


def test_presets() -> None:
    for name in ("smoke-digits", "quick-digits"):
        cfg = preset(name)
        assert cfg.data.dataset == "digits" and cfg.data.digits.num_classes == 5 and not cfg.data.hflip
        assert cfg.eval.resolution == cfg.data.digits.image_size == cfg.data.input_size


@pytest.mark.slow
def test_smoke_bench_on_digits_through_the_cli(tmp_path: Path) -> None:
    from wsolbench.cli import cli
    from wsolbench.records import find_records, load_record

    out = tmp_path / "runs"
    args = ["bench", "--dataset", "digits", "--preset", "smoke-digits", "--objective", "ce,kl_uniform",
            "--threads", "1", "--set", "data.digits.n_train=160", "--set", "data.digits.n_val=40",
            "--set", "data.digits.n_test=40", "--set", "optim.epochs=2", "--output-dir", str(out), "--no-progress"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [load_record(p) for p in find_records(out)]
    assert sorted(r["summary"]["objective_name"] for r in records) == ["ce", "kl_uniform"]
    (data,) = (out / "data").glob("digits-*")
    assert load_manifest(data).classes == ("0", "1", "2", "3", "4")
    for record in records:
        assert record["summary"]["dataset"] == "digits" and record["config"]["data"]["dataset"] == "digits"
        assert record["config"]["data"]["digits"]["n_train"] == 160
        for key in ("MaxBoxAccV2", "GT-known Loc", "PxAP", "top1"):
            assert 0 <= record["summary"][key] <= 100, key
    digest = hashlib.sha256((data / "sources.json").read_bytes()).hexdigest()
    again = CliRunner().invoke(cli, args, catch_exceptions=False)  # finished runs and the data are reused
    assert again.exit_code == 0 and hashlib.sha256((data / "sources.json").read_bytes()).hexdigest() == digest
