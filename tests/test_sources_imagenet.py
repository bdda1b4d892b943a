"""The ImageNet (ILSVRC 2012) converter: official and Kaggle layouts, ImageNetV2 val or a test hold-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from miniature import WNIDS, make_imagenet, make_imagenetv2, truncate

from wsolbench.data.sources import DataProblems, prepare
from wsolbench.errors import ConfigError


def _check_test(m, expected: dict) -> None:
    for s in m.split("test"):
        e = expected[s.image_id]
        assert s.label == e["label"] and (s.width, s.height) == e["size"]
        assert list(s.boxes) == e["boxes"]


@pytest.mark.parametrize("kaggle", [False, True], ids=["official", "kaggle"])
def test_labels_are_sorted_wnid_indices_and_boxes_kept(tmp_path: Path, kaggle: bool) -> None:
    raw = make_imagenet(tmp_path / "raw", kaggle=kaggle)
    m = prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    assert m.classes == WNIDS
    train = m.split("train")
    assert len(train) == 6 and all(not s.boxes for s in train)
    for s in train:
        assert s.image_id.startswith(f"train/{WNIDS[s.label]}/")  # label = index in the sorted WNID list
    assert m.name == "imagenet/val=test-holdout-1pc-seed0"
    assert len(m.split("val")) == 3 and len(m.split("test")) == 6
    assert {s.label for s in m.split("val")} == {0, 1, 2}
    assert not {s.image_id for s in m.split("val")} & {s.image_id for s in m.split("test")}
    _check_test(m, raw["val"])
    for s in m.split("val"):
        assert list(s.boxes) == raw["val"][s.image_id]["boxes"]
    assert m.info["clipped_boxes"] == 0  # xmax == width (on the border) is inside
    assert m.split("test")[0].image_id.startswith("val/ILSVRC2012_val_")


def test_imagenetv2_val(tmp_path: Path) -> None:
    raw = make_imagenet(tmp_path / "raw")
    meta = make_imagenetv2(raw["image_root"], tmp_path)
    m = prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"imagenetv2_metadata": meta})
    assert m.name == "imagenet/val=imagenetv2"
    assert len(m.split("test")) == 9  # the whole ILSVRC val
    val = m.split("val")
    assert [s.label for s in val] == [0, 1, 2]
    assert val[0].image_id == "val2/0/" + "0" * 40 + ".jpeg" and m.image_path(val[0]).is_file()
    assert val[0].boxes == ((1.0, 1.0, 20.0, 20.0), (5.0, 5.0, 29.0, 29.0))


def test_missing_boxes_and_bad_options(tmp_path: Path) -> None:
    raw = make_imagenet(tmp_path / "raw")
    xml = raw["image_root"] / "val" / "ILSVRC2012_val_00000002.xml"
    xml.unlink()
    with pytest.raises(DataProblems) as info:
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    assert [str(p) for p in info.value.problems] == [
        f"{xml}: image val/ILSVRC2012_val_00000002.JPEG: the box file does not exist"]
    with pytest.raises(ConfigError, match="needs --imagenetv2-metadata"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_source": "imagenetv2"})
    with pytest.raises(ConfigError, match="must be one of auto, imagenetv2, test-holdout"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_source": "v3"})


def test_every_fault_of_the_val_annotations_at_once(tmp_path: Path) -> None:
    """A broken XML, an unknown WNID, a box outside its image, one with negative width, a missing image and a
    corrupt one: one run names all six, each with its file and image id."""
    raw = make_imagenet(tmp_path / "raw")
    val = raw["image_root"] / "val"
    stem = "ILSVRC2012_val_{:08d}".format
    (val / f"{stem(4)}.xml").write_text("<annotation><object><name>n01440764</name></object></annotation>")
    _rewrite(val / f"{stem(1)}.xml", "<name>n01440764</name>", "<name>n99999999</name>")
    _rewrite(val / f"{stem(2)}.xml", "<xmax>33</xmax>", "<xmax>45</xmax>")  # width 33
    _rewrite(val / f"{stem(7)}.xml", "<xmin>1</xmin>", "<xmin>30</xmin>")  # xmax 20: negative width
    (val / f"{stem(8)}.JPEG").unlink()
    truncate(val / f"{stem(9)}.JPEG")
    with pytest.raises(DataProblems) as info:
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    found = {(p.file, p.image): p.message for p in info.value.problems}
    image = "val/{}.JPEG".format
    assert len(info.value.problems) == 6, info.value.problems
    assert found[(str(val / f"{stem(4)}.xml"), image(stem(4)))] == "object 1 lacks <name> or <bndbox>"
    assert found[(str(val / f"{stem(1)}.xml"), image(stem(1)))] == "class 'n99999999' is not a train folder"
    assert found[(str(val / f"{stem(2)}.xml"), image(stem(2)))].startswith(
        "n01440764 box (10, 10, 45, 27) lies outside the image (33x28)")
    assert found[(str(val / f"{stem(7)}.xml"), image(stem(7)))] == (
        "n02102040 box (30, 2, 20, 25) has a negative width (-10)")
    assert found[(str(val / f"{stem(8)}.xml"), image(stem(8)))] == (
        f"image file {val / stem(8)}.JPEG does not exist (its boxes are here)")
    assert found[(str(val / f"{stem(9)}.JPEG"), image(stem(9)))].startswith("image file cannot be decoded")
    assert not (tmp_path / "m").exists()


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
