"""The torch Dataset over a manifest: transforms from DataConfig, bad images (fail / skip), masks by kind."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wsolbench.config import DataConfig
from wsolbench.data.dataset import BadImageError, ManifestDataset, eval_transform, make_loader, train_transform
from wsolbench.errors import DataError, ManifestError
from wsolbench.manifest import IGNORE_VALUE, Sample, load_manifest, write_manifest


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture()
def manifest(tmp_path: Path):
    """6 train images of 40x30 (two of them bad: one missing, one corrupt) and 2 val images with trimaps."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    train = [Sample(f"t{i}", f"img/t{i}.png", i % 2, 40, 30) for i in range(6)]
    val = [Sample(f"v{i}", f"img/v{i}.png", 0, 40, 30, ((2.0, 2.0, 20.0, 20.0),), f"tri/v{i}.png",
                  mask_kind="trimap") for i in range(2)]
    for s in train + val:
        _png(root / s.path, rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    trimap = np.full((30, 40), 2, np.uint8)
    trimap[5:20, 5:20] = 3
    trimap[8:16, 8:16] = 1
    for s in val:
        _png(root / s.mask, trimap)
    (root / "img/t1.png").unlink()
    (root / "img/t4.png").write_bytes(b"\x89PNG broken")
    write_manifest(tmp_path / "m", name="tiny", root=root, classes=["a", "b"], splits={"train": train, "val": val})
    return load_manifest(tmp_path / "m")


def _image(h: int = 30, w: int = 40) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("crop", ["none", "random", "random_resized"])
def test_train_transforms_give_the_input_size(crop: str) -> None:
    cfg = DataConfig(input_size=16, resize_size=24 if crop != "none" else None, crop=crop)
    out = train_transform(cfg)(_image())
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32


def test_random_crop_is_a_crop_of_the_resized_image() -> None:
    image = _image()
    torch.manual_seed(0)
    a = train_transform(16, False, resize_size=24, crop="random")(image)
    torch.manual_seed(1)
    b = train_transform(16, False, resize_size=24, crop="random")(image)
    full = train_transform(24, False, crop="none")(image)  # the same resize, no crop
    windows = [full[:, y:y + 16, x:x + 16] for y in range(9) for x in range(9)]
    assert any(torch.allclose(a, w) for w in windows) and any(torch.allclose(b, w) for w in windows)
    assert not torch.equal(a, b)


def test_eval_transform_resizes_without_crop() -> None:
    image = _image(30, 60)
    out = eval_transform(DataConfig(input_size=20))(image)
    assert out.shape == (3, 20, 20)
    assert torch.equal(out, eval_transform(20)(image))  # the old signature still works
    # no crop: the left and right thirds of a half-black, half-white image stay black and white
    split = np.zeros((30, 60, 3), np.uint8)
    split[:, 30:] = 255
    half = eval_transform(20)(split)
    assert half[:, :, :8].max() < 0 < half[:, :, 12:].min()


def test_skip_drops_and_counts_bad_images(manifest) -> None:
    ds = ManifestDataset(manifest, "train", eval_transform(16), on_bad_image="skip")
    marker = ds[1]
    assert marker["index"] == 1 and marker["bad"].endswith("img/t1.png") and "does not exist" in marker["error"]
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=ds.collate)
        batches = list(loader)
        assert [b["skipped"] for b in batches] == [1, 1]
        assert [len(b["label"]) for b in batches] == [2, 2]
        assert sorted(i for b in batches for i in b["index"].tolist()) == [0, 2, 3, 5]
        assert any("t4.png cannot be decoded" in m for m in batches[1]["bad"])
    everything_bad = ds.collate([ds[1], ds[4]])
    assert everything_bad == {"skipped": 2, "bad": everything_bad["bad"]} and "image" not in everything_bad


@pytest.mark.parametrize("workers", [0, 2])
def test_fail_names_the_path_in_one_line(manifest, workers: int) -> None:
    ds = ManifestDataset(manifest, "train", eval_transform(16), on_bad_image="fail")
    batches = iter(make_loader(ds, batch_size=2, shuffle=False, seed=0, num_workers=workers))
    with pytest.raises(BadImageError) as info:
        list(batches)
    if workers:  # stop the workers now (left to garbage collection, torch waits 5 s per worker)
        batches._shutdown_workers()
    message = str(info.value)
    assert isinstance(info.value, DataError)
    assert "\n" not in message and "img/t1.png does not exist" in message, message
    assert "image id 't1'" in message and "on_bad_image=skip" in message
    if workers:
        assert message.endswith("(in DataLoader worker process 0)")


def test_eval_masks_by_kind(manifest) -> None:
    ds = ManifestDataset(manifest, "val", eval_transform(16), mask_resolution=40)
    item = ds[0]
    assert ds.has_masks and item["mask"].shape == (40, 40) and item["mask"].dtype == torch.uint8
    mask = item["mask"].numpy()
    assert set(np.unique(mask).tolist()) == {0, 1, IGNORE_VALUE}  # trimap: 1 fg, 3 boundary -> ignore, 2 bg
    batch = ds.collate([ds[0], ds[1]])
    assert batch["skipped"] == 0 and batch["mask"].shape == (2, 40, 40)


def test_paths_that_escape_the_root_are_rejected(manifest) -> None:
    path = manifest.directory / "train.jsonl"
    lines = path.read_text().splitlines()
    for bad, expected in (("../outside.png", "escapes the root"), ("/etc/passwd", "is absolute")):
        obj = json.loads(lines[0])
        obj["path"] = bad
        path.write_text("\n".join([json.dumps(obj)] + lines[1:]) + "\n")
        with pytest.raises(ManifestError, match=expected):
            load_manifest(manifest.directory)
