"""The community metadata reader: miniature split folders, masks, errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsolbench.data.sources.wsolevaluation import (
    MetadataSample,
    load_eval_mask,
    read_grayscale_nonzero,
    read_metadata_split,
)
from wsolbench.errors import ConfigError, DataError, ManifestError
from wsolbench.manifest import load_manifest, write_manifest


def write(folder: Path, name: str, lines: list[str], *, newline_at_end: bool = True, eol: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = eol.join(lines) + (eol if newline_at_end and lines else "")
    path = folder / name
    path.write_bytes(text.encode())
    return path


def box_split(folder: Path) -> Path:
    """Three images in sub-folders; image b has two boxes; localization.txt has no final newline."""
    write(folder, "image_ids.txt", ["test/001/a.jpg", "test/002/b.jpg", "test/002/c.jpg"])
    write(folder, "class_labels.txt", ["test/001/a.jpg,0", "test/002/b.jpg,3", "test/002/c.jpg,3"])
    write(folder, "image_sizes.txt", ["test/001/a.jpg,448,448", "test/002/b.jpg,300,200", "test/002/c.jpg,224,224"],
          newline_at_end=False)
    write(folder, "localization.txt", [
        "test/001/a.jpg,40,60,240,260",
        "test/002/b.jpg,10,20,30,40",
        "test/002/b.jpg,100.5,50,150,199",
        "test/002/c.jpg,0,0,223,223",
    ], newline_at_end=False)
    return folder


def png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path.name


def mask_split(folder: Path, mask_root: Path) -> Path:
    """Two images; x has two instances (the second line leaves ignore empty); OpenImages-like empty sizes."""
    write(folder, "image_ids.txt", ["val/17/x.jpg", "val/17/y.jpg"], newline_at_end=False)
    write(folder, "class_labels.txt", ["val/17/x.jpg,17", "val/17/y.jpg,17"])
    write(folder, "image_sizes.txt", [])
    write(folder, "localization.txt", [
        "val/17/x.jpg,val/17/x_m1.png,val/17/x_ignore.png",
        "val/17/x.jpg,val/17/x_m2.png,",
        "val/17/y.jpg,val/17/y_m1.png,",
    ], newline_at_end=False)
    first = np.zeros((16, 16), np.uint8)
    first[0:4, 0:4] = 255
    second = np.zeros((16, 16, 3), np.uint8)  # a colour instance: read as greyscale
    second[8:12, 8:12] = (0, 200, 0)
    ignore = np.zeros((16, 16), np.uint8)
    ignore[0:8, 0:8] = 1  # overlaps the first instance: those pixels stay foreground
    png(mask_root / "val/17/x_m1.png", first)
    png(mask_root / "val/17/x_m2.png", second)
    png(mask_root / "val/17/x_ignore.png", ignore)
    y = np.zeros((16, 16), np.uint8)
    y[4:12, 2:6] = 1
    png(mask_root / "val/17/y_m1.png", y)
    return folder


def test_box_split_is_read_in_file_order(tmp_path):
    split = read_metadata_split(box_split(tmp_path / "metadata/test"))
    assert split.kind == "boxes"
    assert split.image_ids == ("test/001/a.jpg", "test/002/b.jpg", "test/002/c.jpg")
    a, b, c = split.samples
    assert a == MetadataSample("test/001/a.jpg", (0,), (448, 448), ((40.0, 60.0, 240.0, 260.0),))
    assert b.boxes == ((10.0, 20.0, 30.0, 40.0), (100.5, 50.0, 150.0, 199.0))
    assert b.size == (300, 200) and b.label == 3
    assert c.boxes == ((0.0, 0.0, 223.0, 223.0),)
    assert split.num_classes == 4 and split.has_labels


def test_crlf_and_blank_lines_are_tolerated(tmp_path):
    folder = box_split(tmp_path / "s")
    text = (folder / "localization.txt").read_text()
    (folder / "localization.txt").write_bytes(("\r\n".join(text.splitlines()) + "\r\n\r\n").encode())
    write(folder, "image_ids.txt", ["test/001/a.jpg", "", "test/002/b.jpg", "test/002/c.jpg"], eol="\r\n")
    assert read_metadata_split(folder).samples == read_metadata_split(box_split(tmp_path / "t")).samples


def test_mask_split_instances_and_ignore(tmp_path):
    root = tmp_path / "masks"
    split = read_metadata_split(mask_split(tmp_path / "meta", root), mask_root=root)
    assert split.kind == "masks"
    x, y = split.samples
    assert x.masks == ("val/17/x_m1.png", "val/17/x_m2.png") and x.ignore == "val/17/x_ignore.png"
    assert y.masks == ("val/17/y_m1.png",) and y.ignore is None
    assert x.size is None and x.boxes == ()


def test_eval_mask_unions_instances_and_subtracts_foreground_from_ignore(tmp_path):
    root = tmp_path / "masks"
    split = read_metadata_split(mask_split(tmp_path / "meta", root), mask_root=root)
    x, y = split.samples
    got = load_eval_mask(split, x, 8)  # 16 -> 8, nearest: pixel (i, j) comes from (2i, 2j)
    expected = np.zeros((8, 8), np.uint8)
    expected[0:4, 0:4] = 255  # ignore map
    expected[0:2, 0:2] = 1  # first instance wins over ignore
    expected[4:6, 4:6] = 1  # second (colour) instance
    np.testing.assert_array_equal(got, expected)
    full = load_eval_mask(split, y, 16)
    assert full.sum() == 32 and set(np.unique(full)) == {0, 1}


def test_masks_are_read_as_opencv_greyscale(tmp_path):
    # Pure blue at level 1 has luma 0.114 -> 0 in greyscale: background, as in the reference code.
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = (1, 0, 0)  # BGR
    image[1, 1] = (0, 0, 9)
    png(tmp_path / "m.png", image)
    got = read_grayscale_nonzero(tmp_path / "m.png")
    assert not got[0, 0] and got[1, 1] and got.sum() == 1


def test_masks_need_a_mask_root(tmp_path):
    split = read_metadata_split(mask_split(tmp_path / "meta", tmp_path / "masks"))
    with pytest.raises(ConfigError, match="--mask-root"):
        load_eval_mask(split, split.samples[0], 8)


def test_missing_mask_file_is_a_data_error(tmp_path):
    split = read_metadata_split(mask_split(tmp_path / "meta", tmp_path / "masks"), mask_root=tmp_path / "nowhere")
    with pytest.raises(DataError, match="x_m1.png does not exist"):
        load_eval_mask(split, split.samples[0], 8)


def test_multi_label_class_file(tmp_path):
    folder = tmp_path / "voc"
    write(folder, "image_ids.txt", ["a.jpg", "b.jpg"])
    write(folder, "class_labels.txt", ["a.jpg,14", "a.jpg,2", "b.jpg,0"], newline_at_end=False)
    split = read_metadata_split(folder)
    assert split.kind is None
    assert [s.labels for s in split.samples] == [(14, 2), (0,)]
    with pytest.raises(ManifestError, match="2 labels"):
        _ = split.samples[0].label


@pytest.mark.parametrize(
    ("name", "lines", "message"),
    [
        ("localization.txt", ["test/001/a.jpg,1,2,3,4", "test/002/b.jpg,1,2,3"],
         r"localization.txt line 2: expected id,x0,y0,x1,y1$"),
        ("localization.txt", ["test/001/a.jpg,1,2,3,4", "test/002/b.jpg,1,2,x,4"],
         r"localization.txt line 2: expected id,x0,y0,x1,y1 with numbers"),
        ("localization.txt", ["test/001/a.jpg,30,2,10,4"], r"line 1: box \(30, 2, 10, 4\) has x1 < x0"),
        ("localization.txt", ["test/001/a.jpg,3,20,10,4"], r"line 1: box \(3, 20, 10, 4\) has y1 < y0"),
        ("localization.txt", ["test/001/a.jpg,m.png", "x"],
         r"localization.txt line 1: expected id,x0,y0,x1,y1 \(boxes\) or id,mask_path,ignore_path"),
        ("localization.txt", ["test/001/a.jpg,m.png,i.png", "test/002/b.jpg,1,2,3,4,5"],
         r"line 2: expected id,mask_path,ignore_path"),
        ("localization.txt", ["test/001/a.jpg,m.png,i.png", "test/001/a.jpg,n.png,j.png"],
         r"line 2: image 'test/001/a.jpg' already has ignore file 'i.png' \(line 1\)"),
        ("localization.txt", ["test/009/z.jpg,1,2,3,4"], r"line 1: image 'test/009/z.jpg' is not listed in image_ids"),
        ("class_labels.txt", ["test/001/a.jpg,0", "test/002/b.jpg,-1"],
         r"class_labels.txt line 2: label '-1' is not a non-negative integer"),
        ("class_labels.txt", ["test/001/a.jpg,0", "test/001/a.jpg,0"], r"line 2: label 0 of image .* listed twice"),
        ("class_labels.txt", ["test/001/a.jpg"], r"class_labels.txt line 1: expected id,label"),
        ("class_labels.txt", ["test/001/a.jpg,0"],
         r"class_labels.txt: no label for 2 of 3 images: 'test/002/b.jpg', 'test/002/c.jpg'"),
        ("image_sizes.txt", ["test/001/a.jpg,448,0"], r"image_sizes.txt line 1: size 448,0 must be positive"),
        ("image_sizes.txt", ["test/001/a.jpg,448,448", "test/002/b.jpg,3,4", "test/002/b.jpg,3,4"],
         r"line 3: duplicate size of image 'test/002/b.jpg' \(first at line 2\)"),
        ("image_sizes.txt", ["test/001/a.jpg,448,448"], r"image_sizes.txt: no size for 2 of 3 images"),
        ("image_ids.txt", ["test/001/a.jpg", "test/002/b.jpg", "test/002/c.jpg", "test/001/a.jpg"],
         r"image_ids.txt line 4: duplicate image 'test/001/a.jpg' \(first at line 1\)"),
    ],
)
def test_errors_name_file_and_line(tmp_path, name, lines, message):
    folder = box_split(tmp_path / "metadata/test")
    write(folder, name, lines, newline_at_end=False)
    with pytest.raises(ManifestError, match=message) as info:
        read_metadata_split(folder)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(folder / name))


def test_images_without_localization_are_listed(tmp_path):
    folder = box_split(tmp_path / "s")
    write(folder, "localization.txt", ["test/001/a.jpg,1,2,3,4"])
    with pytest.raises(ManifestError, match=r"no boxes for 2 of 3 images: 'test/002/b.jpg', 'test/002/c.jpg'"):
        read_metadata_split(folder)


def test_missing_folder_and_image_ids(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_metadata_split(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="image_ids.txt does not exist"):
        read_metadata_split(tmp_path / "empty")


def test_to_samples_round_trips_through_a_manifest(tmp_path):
    split = read_metadata_split(box_split(tmp_path / "metadata/test"))
    samples = split.to_samples(image_prefix="images/")
    assert samples[1].path == "images/test/002/b.jpg" and samples[1].label == 3
    assert samples[1].boxes == ((10.0, 20.0, 30.0, 40.0), (100.5, 50.0, 150.0, 199.0))
    assert (samples[1].width, samples[1].height) == (300, 200)
    write_manifest(tmp_path / "manifest", name="mini", root=".", classes=["a", "b", "c", "d"],
                   splits={"test": samples})
    loaded = load_manifest(tmp_path / "manifest").split("test")
    assert list(loaded) == samples


def test_to_samples_refuses_what_a_manifest_cannot_hold(tmp_path):
    root = tmp_path / "masks"
    split = read_metadata_split(mask_split(tmp_path / "meta", root), mask_root=root)
    with pytest.raises(ManifestError, match="no size"):
        split.to_samples()
    folder = tmp_path / "meta"
    write(folder, "image_sizes.txt", ["val/17/x.jpg,16,16", "val/17/y.jpg,16,16"])
    split = read_metadata_split(folder, mask_root=root)
    with pytest.raises(ManifestError, match="2 mask instances"):
        split.to_samples()
