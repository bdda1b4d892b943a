"""The OpenImages30k converter: instance masks merged into the manifest folder, ignore regions kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from miniature import make_openimages

from wsolbench.data.sources import prepare
from wsolbench.data.sources.wsolevaluation import load_eval_mask as metadata_eval_mask
from wsolbench.data.sources.wsolevaluation import read_metadata_split
from wsolbench.errors import ManifestError
from wsolbench.manifest import load_eval_mask, load_manifest


@pytest.fixture()
def openimages(tmp_path: Path):
    raw = make_openimages(tmp_path / "raw")
    m = prepare("openimages", root=raw["root"], out=tmp_path / "m", options={"metadata_root": raw["metadata"]})
    return raw, m


def test_splits_classes_and_sizes(openimages) -> None:
    raw, m = openimages
    assert m.name == "openimages" and m.classes == raw["classes"]  # the MID folder names
    assert {k: len(v) for k, v in m.splits.items()} == {"train": 4, "val": 4, "test": 4}
    assert all(s.mask is None and not s.boxes for s in m.split("train"))
    assert all((s.width, s.height) == (20, 16) for split in m.splits.values() for s in split)  # from the files


def test_merged_masks_live_in_the_manifest_folder(openimages, tmp_path: Path) -> None:
    raw, m = openimages
    assert m.mask_root == (tmp_path / "m").resolve() and m.root == raw["root"].resolve()
    for s in m.split("val") + m.split("test"):
        assert s.mask == "masks/" + s.image_id[:-4] + ".png"
        assert s.ignore == "masks/" + s.image_id[:-4] + "_ignore.png"
        assert m.mask_path(s).is_file() and str(m.mask_path(s)).startswith(str(m.directory.resolve()))
        np.testing.assert_array_equal(load_eval_mask(m, s, None), raw["masks"][s.image_id])


def test_same_ground_truth_as_the_metadata_reader(openimages) -> None:
    """Merging at full size then resizing equals the reference's resize-then-OR (nearest neighbour)."""
    raw, m = openimages
    split = read_metadata_split(raw["metadata"] / "test", mask_root=raw["root"])
    samples = {s.image_id: s for s in m.split("test")}
    for ref in split:
        for resolution in (7, 16, 40):
            np.testing.assert_array_equal(load_eval_mask(m, samples[ref.image_id], resolution),
                                          metadata_eval_mask(split, ref, resolution))


def test_reconverting_replaces_derived_masks(openimages, tmp_path: Path) -> None:
    raw, m = openimages
    stale = m.directory / "masks" / "stale.png"
    stale.write_bytes(b"x")
    prepare("openimages", root=raw["root"], out=m.directory, options={"metadata_root": raw["metadata"]})
    assert not stale.exists()
    load_manifest(m.directory, check_files=True)


def test_missing_split_is_named(tmp_path: Path) -> None:
    raw = make_openimages(tmp_path / "raw")
    for f in (raw["metadata"] / "val").iterdir():
        f.unlink()
    with pytest.raises(ManifestError, match="no val split folder"):
        prepare("openimages", root=raw["root"], out=tmp_path / "m", options={"metadata_root": raw["metadata"]})
