"""The generic converter of the community metadata, and the registry / prepare_source plumbing."""

from __future__ import annotations

from pathlib import Path

import pytest
from miniature import CUB_CLASSES, jpeg, make_cub, make_cubv2, write

from wsolbench.data.sources import SOURCES, DataProblems, prepare, prepare_source, split_summary
from wsolbench.errors import ConfigError
from wsolbench.manifest import load_manifest


def _cub_metadata(tmp: Path) -> tuple[Path, Path]:
    """wsolevaluation-style metadata for a CUB-like image folder: train (labels) and test (boxes)."""
    images = tmp / "CUB"
    meta = tmp / "metadata" / "CUB"
    for split, n in (("train", 2), ("test", 1)):
        ids, labels, sizes, loc = [], [], [], []
        for c, cls in enumerate(CUB_CLASSES):
            for k in range(n):
                image_id = f"{cls}/{split}_{k}.jpg"
                jpeg(images / image_id, 32, 24, seed=c * 7 + k)
                ids.append(image_id)
                labels.append(f"{image_id},{c}")
                sizes.append(f"{image_id},32,24")
                loc.append(f"{image_id},1,2,40,20")  # x1 beyond the width: a problem, or clipped with --clip-boxes
        write(meta / split / "image_ids.txt", ids, newline_at_end=False)
        write(meta / split / "class_labels.txt", labels)
        write(meta / split / "image_sizes.txt", sizes)
        write(meta / split / "localization.txt", loc)
    return images, meta


def test_registry_names() -> None:
    assert SOURCES.names() == ["cub", "imagenet", "openimages", "pet", "voc", "wsolevaluation"]


def test_metadata_with_a_split_root(tmp_path: Path) -> None:
    images, meta = _cub_metadata(tmp_path)
    v2_images, v2_meta = make_cubv2(tmp_path / "v2")
    (meta / "val").mkdir()
    for f in v2_meta.iterdir():
        (meta / "val" / f.name).write_bytes(f.read_bytes())
    options = {"metadata_root": meta, "split_root": [f"val={v2_images}"]}
    with pytest.raises(DataProblems) as info:
        prepare("wsolevaluation", root=images, out=tmp_path / "m", options=options)
    loc = meta / "test" / "localization.txt"
    assert [(p.file, p.line, p.image) for p in info.value.problems] == [
        (str(loc), k + 1, f"{cls}/test_0.jpg") for k, cls in enumerate(CUB_CLASSES)]
    assert all("lies outside the image (32x24)" in p.message for p in info.value.problems)
    assert not (tmp_path / "m").exists()
    m = prepare("wsolevaluation", root=images, out=tmp_path / "m", options={**options, "clip_boxes": True})
    assert m.classes == CUB_CLASSES  # from the folder names
    assert {k: len(v) for k, v in m.splits.items()} == {"train": 6, "val": 6, "test": 3}
    assert all(not s.boxes for s in m.split("train"))  # train carries labels only
    assert m.split("test")[0].boxes == ((1.0, 2.0, 32.0, 20.0),) and m.info["clipped_boxes"] == 3
    load_manifest(m.directory, check_files=True)
    rows = {r["split"]: r for r in split_summary(m)}
    assert rows["test"]["boxes"] == 3 and rows["train"]["per_class_median"] == 2


def test_metadata_root_is_required_and_split_root_checked(tmp_path: Path) -> None:
    images, meta = _cub_metadata(tmp_path)
    with pytest.raises(ConfigError, match="--metadata-root is required"):
        prepare("wsolevaluation", root=images, out=tmp_path / "m")
    with pytest.raises(ConfigError, match="--split-root expects SPLIT=DIR"):
        prepare("wsolevaluation", root=images, out=tmp_path / "m", options={"metadata_root": meta,
                                                                            "split_root": ["val"]})


def test_prepare_source_converts_once_then_reuses(tmp_path: Path) -> None:
    raw = make_cub(tmp_path / "raw", per_class=4, segmentations=False)
    first = prepare_source("cub", root=raw["root"], data_dir=tmp_path / "data", options={"val_per_class": 1})
    assert first.parent == tmp_path / "data" and first.name.startswith("cub-")
    stamp = (first / "manifest.json").stat().st_mtime_ns
    again = prepare_source("cub", root=raw["root"], data_dir=tmp_path / "data", options={"val_per_class": 1})
    assert again == first and (first / "manifest.json").stat().st_mtime_ns == stamp
    other = prepare_source("cub", root=raw["root"], data_dir=tmp_path / "data", options={"seed": 1,
                                                                                         "val_per_class": 1})
    assert other != first
    assert load_manifest(other).info["source"]["options"]["seed"] == 1
