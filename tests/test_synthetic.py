"""The built-in part-on-body dataset: determinism, ground truth, balance, caching, manifest."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wsolbench.config import SyntheticConfig, stable_hash, to_dict
from wsolbench.data import synthetic as syn
from wsolbench.data.synthetic import build_synthetic, class_names, generate_sample, tight_box
from wsolbench.manifest import load_eval_mask, load_manifest, read_image, read_mask

TINY = SyntheticConfig(num_classes=3, image_size=40, n_train=12, n_val=12, n_test=12, seed=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic(TINY, tmp_path_factory.mktemp("syn"))


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_layout_and_manifest(built: Path) -> None:
    assert built.name == f"synthetic-{stable_hash(to_dict(TINY))}"
    m = load_manifest(built, check_files=True)
    assert m.root == built.resolve()
    assert m.classes == class_names(3) == ("red", "green", "blue")
    assert {s: len(v) for s, v in m.splits.items()} == {"train": 12, "val": 12, "test": 12}
    for sample in m.split("train"):
        assert sample.boxes == () and sample.mask is None and sample.ignore is None
        assert (sample.width, sample.height) == (40, 40)
        assert sample.image_id == sample.path.removeprefix("images/")
    for split in ("val", "test"):
        for sample in m.split(split):
            assert len(sample.boxes) == 1 and sample.mask == f"masks/{sample.image_id}"
    assert not (built / "masks" / "train").exists()
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no temp dirs left behind


def test_images_and_masks_on_disk(built: Path) -> None:
    m = load_manifest(built)
    image = read_image(m.image_path(m.split("train")[0]))
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    raw = read_mask(m.mask_path(m.split("val")[0]))
    assert raw.shape == (40, 40) and set(np.unique(raw)) == {0, 1}


def test_boxes_are_tight_boxes_of_masks(built: Path) -> None:
    m = load_manifest(built)
    for split in ("val", "test"):
        for sample in m.split(split):
            mask = load_eval_mask(m, sample, 40)
            assert set(np.unique(mask)) == {0, 1}
            ys, xs = np.nonzero(mask)
            assert sample.boxes[0] == (xs.min(), ys.min(), xs.max(), ys.max())
            x0, y0, x1, y1 = sample.boxes[0]
            assert 0 < x0 <= x1 < 39 and 0 < y0 <= y1 < 39  # fully inside, not touching the border
            assert mask.sum() > 0.05 * 40 * 40


def test_tight_box_is_inclusive() -> None:
    mask = np.zeros((5, 6), np.uint8)
    mask[1:3, 2:5] = 1
    assert tight_box(mask) == (2, 1, 4, 2)
    with pytest.raises(ValueError):
        tight_box(np.zeros((3, 3), np.uint8))


def test_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = build_synthetic(TINY, tmp_path)
    assert again.name == built.name
    assert _files(again) == _files(built)


def test_image_i_does_not_depend_on_split_sizes(built: Path, tmp_path: Path) -> None:
    smaller = dataclasses.replace(TINY, n_train=5, n_val=7, n_test=30)
    other = build_synthetic(smaller, tmp_path)
    a, b = load_manifest(built), load_manifest(other)
    for split, n in (("train", 5), ("val", 7), ("test", 12)):
        assert a.split(split)[:n] == b.split(split)[:n]
        for sample in a.split(split)[:n]:
            assert (other / sample.path).read_bytes() == (built / sample.path).read_bytes()


def test_labels_balanced_and_in_range(built: Path) -> None:
    m = load_manifest(built)
    for split in m.splits:
        counts = Counter(s.label for s in m.split(split))
        assert counts == {0: 4, 1: 4, 2: 4}
    labels = syn.split_labels(dataclasses.replace(TINY, num_classes=5), "train", 23)
    counts = np.bincount(labels, minlength=5)
    assert labels.min() >= 0 and labels.max() < 5 and counts.max() - counts.min() <= 1
    assert np.array_equal(syn.split_labels(TINY, "val", 7), syn.split_labels(TINY, "val", 12)[:7])
    assert not np.array_equal(syn.split_labels(TINY, "val", 12), syn.split_labels(TINY, "test", 12))


def test_splits_and_seeds_differ(built: Path) -> None:
    m = load_manifest(built)
    assert read_image(m.image_path(m.split("val")[0])).tobytes() != read_image(m.image_path(m.split("test")[0])).tobytes()
    a, _ = generate_sample(syn.image_rng(TINY, "val", 0), 0, TINY)
    b, _ = generate_sample(syn.image_rng(dataclasses.replace(TINY, seed=4), "val", 0), 0, TINY)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("cfg", [
    SyntheticConfig(num_classes=12, image_size=32),
    SyntheticConfig(num_classes=4, image_size=64),
    SyntheticConfig(num_classes=3, image_size=48, part_frac=0.9, body_radius=(0.05, 0.1)),  # part barely fits
    SyntheticConfig(num_classes=3, image_size=32, body_radius=(0.49, 0.49), max_distractors=10),
], ids=["K12-S32", "K4-S64", "thin-part", "huge-body"])
def test_part_lies_inside_the_body(cfg: SyntheticConfig) -> None:
    for i in range(40):
        label = i % cfg.num_classes
        image, mask, part = syn._render(syn.image_rng(cfg, "val", i), label, cfg)
        assert mask.any() and part.any()
        assert not (part & ~mask).any(), f"part leaves the body in image {i}"
        colour = np.asarray(syn.PART_COLORS[label][1])
        # part pixels carry the class colour (scaled by U(0.85, 1), plus N(0, 0.02) noise)
        mean = image[part].mean(axis=0)
        assert np.all(mean >= 0.85 * colour - 0.06) and np.all(mean <= colour + 0.06), (i, mean, colour)
        pixels, mask_u8 = generate_sample(syn.image_rng(cfg, "val", i), label, cfg)
        assert pixels.shape == (cfg.image_size, cfg.image_size, 3) and pixels.dtype == np.uint8
        assert mask_u8.dtype == np.uint8 and np.array_equal(mask_u8, mask.astype(np.uint8))


def test_part_is_small_relative_to_body() -> None:
    cfg = SyntheticConfig(num_classes=4)
    ratios = []
    for i in range(40):
        _, mask, part = syn._render(syn.image_rng(cfg, "val", i), i % 4, cfg)
        ratios.append(part.sum() / mask.sum())
    assert 0.03 < np.median(ratios) < 0.2  # (0.28 R)^2 / R^2 ~ 0.08, bodies are not all disks


def test_knobs_change_only_their_layer() -> None:
    """Each layer draws from its own stream: rho moves the stripes, not the object."""
    base = SyntheticConfig(num_classes=4, rho=0.0)
    for i in range(8):
        img0, mask0, part0 = syn._render(syn.image_rng(base, "train", i), 1, base)
        alt = dataclasses.replace(base, rho=1.0)
        img1, mask1, part1 = syn._render(syn.image_rng(alt, "train", i), 1, alt)
        assert np.array_equal(mask0, mask1) and np.array_equal(part0, part1)
        np.testing.assert_array_equal(img0[part0], img1[part1])


def test_cache_is_reused(built: Path) -> None:
    calls = []
    manifest_file = built / "manifest.json"
    before = manifest_file.stat().st_mtime_ns
    assert build_synthetic(TINY, built.parent, progress=lambda d, t: calls.append((d, t))) == built
    assert calls == [] and manifest_file.stat().st_mtime_ns == before


def test_incomplete_cache_is_rebuilt(tmp_path: Path) -> None:
    calls = []
    first = build_synthetic(TINY, tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (36, 36) and len(calls) == 36
    reference = _files(first)
    victim = first / "images" / "val" / "000004.png"
    victim.unlink()
    assert build_synthetic(TINY, tmp_path) == first
    assert _files(first) == reference
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_interrupted_build_leaves_nothing_loadable(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_synthetic(TINY, tmp_path, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_generate_sample_rejects_bad_label() -> None:
    with pytest.raises(ValueError, match="label 3 is out of range"):
        generate_sample(np.random.default_rng(0), 3, TINY)
