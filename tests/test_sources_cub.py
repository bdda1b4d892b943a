"""The CUB-200-2011 converter on a miniature copy of the tarball's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from miniature import CUB_CLASSES, make_cub, make_cubv2, write

from wsolbench.data.sources import SOURCES, DataProblems, prepare
from wsolbench.errors import ConfigError, ManifestError
from wsolbench.manifest import load_eval_mask, load_manifest


@pytest.fixture()
def cub(tmp_path: Path) -> dict:
    return make_cub(tmp_path / "raw")


def test_registered_with_its_options() -> None:
    source = SOURCES.get("cub")
    assert [o.flag for o in source.options] == ["--cubv2", "--cubv2-metadata", "--segmentations", "--val-per-class",
                                                "--seed", "--clip-boxes", "--headers-only"]


def test_conventions_ids_labels_boxes_and_holdout(cub: dict, tmp_path: Path) -> None:
    m = prepare("cub", root=cub["root"], out=tmp_path / "m", options={"val_per_class": 1, "seed": 3})
    assert m.classes == CUB_CLASSES  # classes.txt order, label = class_id - 1
    assert m.name == "cub/val=train-holdout-1pc-seed3" and m.info["val"]["source"] == "train-holdout"
    assert m.root == cub["root"].resolve()
    train, val, test = m.split("train"), m.split("val"), m.split("test")
    assert len(train) == 6 and len(val) == 3 and len(test) == 9
    assert sorted(s.label for s in val) == [0, 1, 2]  # one per class
    expected = cub["images"]
    for s in train:
        assert expected[s.image_id]["train"] and s.boxes == () and s.mask is None  # train: labels only
    for s in val + test:
        e = expected[s.image_id]
        assert s.label == e["label"] and (s.width, s.height) == e["size"]
        assert e["train"] == (s in val)
        assert s.boxes == (e["box"],)  # (x, y, w, h) -> (x, y, x + w, y + h)
        assert s.mask_kind == "soft" and m.mask_path(s).is_file()
        assert s.path == "images/" + s.image_id
    assert m.info["clipped_boxes"] == 0
    # 1-based ids: image 2 (x + w == width, its right edge on the border) is a test image, kept as written
    two = next(s for s in test if s.image_id.endswith("_2.jpg"))
    assert two.boxes[0][2] == two.width
    # the hold-out is seeded: same seed, same val; another seed, another val
    again = prepare("cub", root=cub["root"], out=tmp_path / "m2", options={"val_per_class": 1, "seed": 3})
    assert [s.image_id for s in again.split("val")] == [s.image_id for s in val]
    other = prepare("cub", root=cub["root"], out=tmp_path / "m3", options={"val_per_class": 1, "seed": 4})
    assert [s.image_id for s in other.split("val")] != [s.image_id for s in val]


def test_soft_segmentation_threshold(cub: dict, tmp_path: Path) -> None:
    m = prepare("cub", root=cub["root"], out=tmp_path / "m", options={"val_per_class": 1})
    s = m.split("test")[0]
    gt = load_eval_mask(m, s, None)
    assert gt.shape == (s.height, s.width)
    assert gt[10, 10] == 1  # 200: foreground
    assert gt[21, 10] == 0  # 100: below the 128 cut-off
    assert gt[0, 0] == 1  # exactly 128: foreground
    assert set(np.unique(gt).tolist()) == {0, 1}


def test_without_segmentations(tmp_path: Path) -> None:
    raw = make_cub(tmp_path / "raw", segmentations=False)
    m = prepare("cub", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    assert all(s.mask is None and s.boxes for s in m.split("test"))


def test_cubv2_val(cub: dict, tmp_path: Path) -> None:
    images, meta = make_cubv2(tmp_path / "v2")
    m = prepare("cub", root=cub["root"].parent, out=tmp_path / "m",  # the tarball's parent folder works too
                options={"cubv2": images, "cubv2_metadata": meta})
    assert m.name == "cub/val=cubv2"
    assert len(m.split("train")) == 9 and len(m.split("val")) == 6
    # one root holds both folders: paths stay relative to it
    assert m.root == tmp_path.resolve()
    s = m.split("val")[0]
    assert s.path.startswith("v2/CUBV2/") and m.image_path(s).is_file()
    assert s.boxes == ((5.0, 6.0, 30.0, 35.0),) and s.mask is None
    load_manifest(m.directory, check_files=True)


def test_cubv2_label_must_match_folder(cub: dict, tmp_path: Path) -> None:
    images, meta = make_cubv2(tmp_path / "v2")
    labels = (meta / "class_labels.txt").read_text().replace(",0", ",2", 1)
    (meta / "class_labels.txt").write_text(labels)
    with pytest.raises(DataProblems, match="disagrees with the image's folder") as info:
        prepare("cub", root=cub["root"], out=tmp_path / "m", options={"cubv2": images, "cubv2_metadata": meta})
    [problem] = info.value.problems
    assert problem.file == str(meta / "class_labels.txt") and problem.image == "001.Black_footed_Albatross/1000.jpg"


def test_errors_name_file_and_line(cub: dict, tmp_path: Path) -> None:
    boxes = cub["root"] / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    lines[3] = "4 1.0 2.0 abc 4.0"
    lines[5] = "99 1.0 2.0 3.0 4.0"  # image 6 has no line then, and 99 is nobody
    lines[7] = lines[2]  # image 3 twice, image 8 not at all
    write(boxes, lines)
    with pytest.raises(DataProblems) as info:
        prepare("cub", root=cub["root"], out=tmp_path / "m", options={"val_per_class": 1})
    name = {e["id"]: rel for rel, e in cub["images"].items()}
    assert [str(p) for p in info.value.problems] == [
        f"{boxes} line 4: image {name[4]}: w 'abc' is not a finite number",
        f"{boxes} line 6: image_id 99 is not in images.txt",
        f"{boxes} line 8: image {name[3]}: image_id 3 is listed twice (first at line 3)",
        f"{boxes}: image {name[6]}: no line for image_id 6",
        f"{boxes}: image {name[8]}: no line for image_id 8",
    ]
    assert not (tmp_path / "m").exists()


def test_unreadable_images_txt_is_the_one_problem(cub: dict, tmp_path: Path) -> None:
    (cub["root"] / "images.txt").write_bytes(b"1 \xff\xfe.jpg\n")
    with pytest.raises(DataProblems) as info:
        prepare("cub", root=cub["root"], out=tmp_path / "m")
    assert [str(p) for p in info.value.problems] == [f"{cub['root'] / 'images.txt'}: not UTF-8 text"]


def test_missing_images_txt_stops_at_once(cub: dict, tmp_path: Path) -> None:
    (cub["root"] / "images.txt").unlink()
    with pytest.raises(ManifestError, match="no images.txt; --root must be the CUB_200_2011 folder"):
        prepare("cub", root=cub["root"], out=tmp_path / "m")


def test_holdout_too_large_and_bad_out(cub: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="would take every train image of 3 class"):
        prepare("cub", root=cub["root"], out=tmp_path / "m", options={"val_per_class": 3})
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no manifest.json"):
        prepare("cub", root=cub["root"], out=busy)
    with pytest.raises(ConfigError, match="unknown option"):
        prepare("cub", root=cub["root"], out=tmp_path / "m", options={"cubv3": "x"})
