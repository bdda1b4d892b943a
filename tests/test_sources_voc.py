"""The PASCAL VOC 2012 converter: palette masks read as indices, multi-label images, 1-based boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from miniature import make_voc

from wsolbench.data.sources import prepare
from wsolbench.data.sources.voc import VOC_CLASSES
from wsolbench.manifest import IGNORE_VALUE, load_eval_mask, read_index_mask
from wsolbench.scoremaps import ManifestGroundTruth


@pytest.fixture()
def voc(tmp_path: Path) -> tuple[dict, object]:
    raw = make_voc(tmp_path / "raw")
    return raw, prepare("voc", root=raw["root"], out=tmp_path / "m", options={"val_size": 2, "seed": 1})


def test_splits_and_label_sets(voc) -> None:
    raw, m = voc
    assert m.classes == VOC_CLASSES and m.name == "voc/val=seg-train-holdout-2-seed1"
    val, test, train = m.split("val"), m.split("test"), m.split("train")
    assert [s.image_id for s in test] == raw["seg_val"]
    assert len(val) == 2 and {s.image_id for s in val} <= set(raw["seg_train"])
    # Main/trainval minus val and test: 6 images, labels only
    assert len(train) == 6 and all(not s.boxes and s.mask is None for s in train)
    assert not {s.image_id for s in train} & {s.image_id for s in val + test}
    for s in train + val + test:
        e = raw["images"][s.image_id]
        assert s.label == e["label"]  # the largest object's class
        localized = s in val or s in test
        # the mask adds the bottle (class 4) for segmented images
        expected = e["labels"] if localized or len(e["labels"]) == 1 else [11, 14]
        assert list(s.label_set) == expected


def test_boxes_are_zero_based_and_of_the_label_class(voc) -> None:
    raw, m = voc
    s = next(s for s in m.split("test") if s.label == 14)
    assert s.boxes == ((11.0, 1.0, 37.0, 28.0),)  # person (12, 2, 38, 29) minus 1; the dog's box is not here
    cat = [s for s in m.split("val") + m.split("test") if s.label == 7]
    for s in cat:
        assert s.boxes == ((0.0, 0.0, 39.0, 29.0),)  # difficult objects count too


def test_palette_masks_read_as_indices(voc) -> None:
    raw, m = voc
    s = next(s for s in m.split("test") if s.label == 14)
    path = m.mask_path(s)
    assert s.mask_kind == "class_index" and path.name == f"{s.image_id}.png"
    np.testing.assert_array_equal(read_index_mask(path), raw["images"][s.image_id]["mask"])
    gt = load_eval_mask(m, s, None)
    assert gt[5, 20] == 1  # person: the label's class
    assert gt[5, 5] == 0  # the dog: another class is background for the label's map
    assert gt[5, 10] == IGNORE_VALUE  # void border
    # the multi-class view (mPxAP) sees every class of the image, void kept as 255
    gt_all = ManifestGroundTruth(m, "test")
    assert gt_all.class_labels(s.image_id) == (4, 11, 14)
    full = gt_all.class_mask(s.image_id, 30)
    assert set(np.unique(full).tolist()) == {0, 5, 12, 15, 255}


def test_segmentation_train_list(tmp_path: Path) -> None:
    raw = make_voc(tmp_path / "raw")
    m = prepare("voc", root=raw["root"] / "VOC2012", out=tmp_path / "m",
                options={"val_size": 2, "train_list": "segmentation"})
    assert len(m.split("train")) == 4 and m.info["train_list"] == "segmentation"
