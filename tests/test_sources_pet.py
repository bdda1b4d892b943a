"""The Oxford-IIIT Pet converter: trimaps (boundary ignored), boxes from the foreground, odd image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from miniature import PET_BREEDS, make_pet

from wsolbench.data.sources import prepare
from wsolbench.manifest import IGNORE_VALUE, load_eval_mask, read_image


@pytest.fixture()
def pet(tmp_path: Path):
    raw = make_pet(tmp_path / "raw")
    return raw, prepare("pet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1, "seed": 0})


def test_splits_labels_and_trimap_boxes(pet) -> None:
    raw, m = pet
    assert m.classes == PET_BREEDS  # CLASS-ID 1..37 -> 0-based, names from the file names
    assert m.name == "pet/val=trainval-holdout-1pc-seed0"
    train, val, test = m.split("train"), m.split("val"), m.split("test")
    assert len(val) == 3 and {s.label for s in val} == {0, 1, 2}
    assert {s.image_id for s in train} | {s.image_id for s in val} == set(raw["trainval"])
    assert {s.image_id for s in test} == set(raw["test"]) - {raw["corrupt"]}
    for s in val + test:
        e = raw["images"][s.image_id]
        assert s.label == e["label"] and (s.width, s.height) == e["size"]
        assert s.boxes == (e["box"],)  # the foreground (1) only: neither boundary (3) nor the head xmls
        assert s.mask_kind == "trimap"
    assert all(not s.boxes and s.mask is None for s in train)


def test_boundary_is_ignored(pet) -> None:
    raw, m = pet
    s = m.split("test")[0]
    gt = load_eval_mask(m, s, None)
    trimap = raw["images"][s.image_id]["trimap"]
    np.testing.assert_array_equal(gt == 1, trimap == 1)
    np.testing.assert_array_equal(gt == IGNORE_VALUE, trimap == 3)
    np.testing.assert_array_equal(gt == 0, trimap == 2)


def test_corrupt_left_out_and_odd_files_read_as_rgb(pet) -> None:
    raw, m = pet
    assert [b["image"] for b in m.info["bad_images"]] == [raw["corrupt"]]
    assert "cannot be decoded" in m.info["bad_images"][0]["reason"]
    converted = {c["image"]: (c["format"], c["mode"]) for c in m.info["converted_images"]}
    assert converted == {raw["cmyk"]: ("JPEG", "CMYK"), raw["png"]: ("PNG", "RGB")}
    samples = {s.image_id: s for split in m.splits.values() for s in split}
    for name in (raw["cmyk"], raw["png"]):
        s = samples[name]
        image = read_image(m.image_path(s))
        assert image.shape == (s.height, s.width, 3) and image.dtype == np.uint8


def test_trimap_of_another_size_is_reported(tmp_path: Path) -> None:
    raw = make_pet(tmp_path / "raw")
    name = raw["test"][0]
    from miniature import png

    png(raw["root"] / "annotations" / "trimaps" / f"{name}.png", np.full((5, 5), 1, np.uint8))
    m = prepare("pet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    reasons = {b["image"]: b["reason"] for b in m.info["bad_images"]}
    assert "is 5x5, the image" in reasons[name]
    assert name not in {s.image_id for s in m.split("test")}


def test_annotation_list_problems_are_reported_together(tmp_path: Path) -> None:
    from miniature import write

    from wsolbench.data.sources import DataProblems

    raw = make_pet(tmp_path / "raw")
    listing = raw["root"] / "annotations" / "test.txt"
    lines = listing.read_text().splitlines()
    lines[0] = lines[0].split()[0] + " x 1 1"  # a CLASS-ID that is not a number
    lines.append(lines[1])  # an image listed twice
    write(listing, lines)
    with pytest.raises(DataProblems) as info:
        prepare("pet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    first, second = lines[0].split()[0], lines[1].split()[0]
    assert [str(p) for p in info.value.problems] == [
        f"{listing} line 1: image {first}: CLASS-ID 'x' is not an integer",
        f"{listing} line {len(lines)}: image {second}: image {second!r} is listed twice (first at line 2)",
    ]
