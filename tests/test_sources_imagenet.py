"""The ImageNet (ILSVRC 2012) converter: official and Kaggle layouts, ImageNetV2 val or a test hold-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from miniature import WNIDS, make_imagenet, make_imagenetv2

from wsolbench.data.sources import prepare
from wsolbench.errors import ConfigError, ManifestError


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
    assert m.info["clipped_boxes"] >= 1
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
    (raw["image_root"] / "val" / "ILSVRC2012_val_00000002.xml").unlink()
    with pytest.raises(ManifestError, match=r"no boxes for 1 of 9 val images: ILSVRC2012_val_00000002\.xml"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m")
    with pytest.raises(ConfigError, match="needs --imagenetv2-metadata"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_source": "imagenetv2"})
    with pytest.raises(ConfigError, match="must be one of auto, imagenetv2, test-holdout"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m", options={"val_source": "v3"})


def test_broken_xml_names_the_file(tmp_path: Path) -> None:
    raw = make_imagenet(tmp_path / "raw")
    xml = raw["image_root"] / "val" / "ILSVRC2012_val_00000004.xml"
    xml.write_text("<annotation><object><name>n01440764</name></object></annotation>")
    with pytest.raises(ManifestError, match=r"ILSVRC2012_val_00000004\.xml: object 1 lacks <name> or <bndbox>"):
        prepare("imagenet", root=raw["root"], out=tmp_path / "m")
