"""The on-disk manifest: round trip, validation messages, atomic writes, eval masks, hashing."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import wsolbench._io

from wsolbench import manifest as mf
from wsolbench.errors import DataError, ManifestError, OutputError
from wsolbench.manifest import (
    Sample,
    atomic_write_bytes,
    atomic_write_text,
    load_eval_mask,
    load_manifest,
    read_image,
    read_mask,
    write_manifest,
)

CLASSES = ("cat", "dog", "bird")


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _samples() -> dict[str, list[Sample]]:
    train = [Sample(f"train/{i}.png", f"images/train/{i}.png", i % 3, 8, 6) for i in range(3)]
    val = [
        Sample("val/0.png", "images/val/0.png", 0, 8, 6, ((1.0, 1.0, 4.0, 3.0),), "masks/val/0.png"),
        Sample("val/1.png", "images/val/1.png", 2, 8, 6, ((0.0, 0.0, 7.0, 5.0), (2.5, 1.0, 3.5, 2.0)),
               "masks/val/1.png", "ignore/val/1.png"),
        Sample("val/2.png", "images/val/2.png", 1, 8, 6, ((2.0, 2.0, 2.0, 2.0),), "masks/val/2.png"),
    ]
    return {"train": train, "val": val, "test": []}


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A tiny dataset root with images and masks, and its manifest in ``<root>/manifest``."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split in _samples().values():
        for s in split:
            _png(root / s.path, rng.integers(0, 256, (s.height, s.width, 3), dtype=np.uint8))
            if s.mask:
                _png(root / s.mask, (rng.random((s.height, s.width)) > 0.5).astype(np.uint8) * 255)
            if s.ignore:
                _png(root / s.ignore, np.full((s.height, s.width), 255, np.uint8))
    write_manifest(root / "manifest", name="tiny", root="..", classes=CLASSES, splits=_samples())
    return root / "manifest"


def test_round_trip(dataset: Path) -> None:
    m = load_manifest(dataset, check_files=True)
    assert m.name == "tiny"
    assert m.classes == CLASSES and m.num_classes == 3
    assert m.root == (dataset / "..").resolve() and m.root.is_absolute()
    assert list(m.splits) == ["train", "val", "test"]
    for split, samples in _samples().items():
        assert m.split(split) == tuple(samples)
    val1 = m.split("val")[1]
    assert m.image_path(val1) == m.root / "images/val/1.png"
    assert m.mask_path(val1) == m.root / "masks/val/1.png"
    assert m.ignore_path(val1) == m.root / "ignore/val/1.png"
    assert m.mask_path(m.split("train")[0]) is None and m.ignore_path(m.split("val")[0]) is None
    image = read_image(m.image_path(val1))
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    # write_manifest output is what the format spec shows: integral coordinates as integers
    line = json.loads((dataset / "val.jsonl").read_text().splitlines()[0])
    assert line == {"id": "val/0.png", "path": "images/val/0.png", "label": 0, "size": [8, 6],
                    "boxes": [[1, 1, 4, 3]], "mask": "masks/val/0.png", "ignore": None}


def test_absolute_root(dataset: Path, tmp_path: Path) -> None:
    root = (dataset / "..").resolve()
    write_manifest(tmp_path / "elsewhere", name="tiny", root=root, classes=CLASSES, splits=_samples())
    m = load_manifest(tmp_path / "elsewhere", check_files=True)
    assert m.root == root


def test_unknown_split_names_known(dataset: Path) -> None:
    m = load_manifest(dataset)
    with pytest.raises(ManifestError, match=r"no split 'holdout' \(known: train, val, test\)"):
        m.split("holdout")


def _break_line(directory: Path, split: str, lineno: int, edit) -> Path:
    path = directory / f"{split}.jsonl"
    lines = path.read_text().splitlines()
    obj = json.loads(lines[lineno - 1])
    new = edit(obj)
    lines[lineno - 1] = new if isinstance(new, str) else json.dumps(new)
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(key, value):
    def edit(obj):
        obj[key] = value
        return obj
    return edit


def _drop(key):
    def edit(obj):
        del obj[key]
        return obj
    return edit


BROKEN_LINES = {
    "bad json": (lambda obj: '{"id": "val/1.png", ', "invalid JSON"),
    "not an object": (lambda obj: "[1, 2]", "expected a JSON object"),
    "missing key": (_drop("label"), "missing key(s) label"),
    "unknown key": (_set("bbox", [1, 2, 3, 4]), "unknown key(s) bbox"),
    "label out of range": (_set("label", 3), "label 3 is out of range [0, 2]"),
    "negative label": (_set("label", -1), "label -1 is out of range"),
    "label not int": (_set("label", "dog"), "label must be an integer"),
    "zero size": (_set("size", [0, 6]), "size [0, 6] must be positive"),
    "bad size": (_set("size", [8]), "size must be [width, height]"),
    "box arity": (_set("boxes", [[1, 2, 3]]), "box [1, 2, 3] must have 4 numbers"),
    "box not numbers": (_set("boxes", [[1, 2, "3", 4]]), "must hold finite numbers"),
    "box x1 < x0": (lambda o: {**o, "size": [500, 375], "boxes": [[310, 40, 290, 120]]},
                    "box [310, 40, 290, 120] has x1 < x0"),
    "box y1 < y0": (_set("boxes", [[1, 4, 2, 3]]), "box [1, 4, 2, 3] has y1 < y0"),
    "box outside": (_set("boxes", [[1, 1, 9, 3]]), "lies outside the image size [8, 6]"),
    "absolute path": (_set("path", "/etc/passwd"), "path '/etc/passwd' is absolute"),
    "escaping path": (_set("path", "images/../../secret.png"), "escapes the root"),
    "escaping mask": (_set("mask", "../m.png"), "mask '../m.png' escapes the root"),
    "absolute ignore": (_set("ignore", "/tmp/i.png"), "ignore '/tmp/i.png' is absolute"),
    "backslash": (_set("path", "images\\val\\1.png"), "backslash"),
    "ignore without mask": (lambda o: {**o, "mask": None}, "ignore is given without a mask"),
    "duplicate id": (_set("id", "train/1.png"), "duplicate id 'train/1.png' (first at train.jsonl line 2)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_LINES))
def test_broken_line_names_file_and_line(dataset: Path, case: str) -> None:
    edit, expected = BROKEN_LINES[case]
    path = _break_line(dataset, "val", 2, edit)
    with pytest.raises(ManifestError) as info:
        load_manifest(dataset)
    message = str(info.value)
    assert message.startswith(f"manifest {path} line 2: "), message
    assert expected in message, message
    assert "\n" not in message


def test_error_example_from_the_style_guide(dataset: Path) -> None:
    path = _break_line(dataset, "val", 1, lambda o: {**o, "size": [500, 375], "boxes": [[310, 40, 290, 120]]})
    with pytest.raises(ManifestError, match=r"^manifest .*val\.jsonl line 1: box \[310, 40, 290, 120\] has x1 < x0$"):
        load_manifest(dataset)
    assert path.name == "val.jsonl"


def test_blank_lines_are_skipped_but_counted(dataset: Path) -> None:
    path = dataset / "val.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(1, "")
    path.write_text("\n".join(lines) + "\n")
    assert len(load_manifest(dataset).split("val")) == 3
    _break_line(dataset, "val", 3, _set("label", 9))  # the second sample, now on line 3
    with pytest.raises(ManifestError, match=r"val\.jsonl line 3: label 9"):
        load_manifest(dataset)


def _edit_header(directory: Path, edit) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(edit(data)))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: {**d, "format": "coco"}, "unknown format 'coco'"),
    (lambda d: {**d, "version": 2}, "unsupported version 2"),
    (lambda d: {k: v for k, v in d.items() if k != "classes"}, "missing key(s) classes"),
    (lambda d: {**d, "classes": ["a", "a", "b"]}, "class 'a' is listed twice"),
    (lambda d: {**d, "splits": ["train", "../x"]}, "invalid split name '../x'"),
    (lambda d: {**d, "splits": ["train", "val", "test", "extra"]}, "extra.jsonl does not exist"),
    (lambda d: {**d, "classes": ["a", "b"]}, "train.jsonl line 3: label 2 is out of range [0, 1]"),
], ids=["format", "version", "missing key", "duplicate class", "split name", "missing split file", "fewer classes"])
def test_broken_header(dataset: Path, edit, expected: str) -> None:
    _edit_header(dataset, edit)
    with pytest.raises(ManifestError) as info:
        load_manifest(dataset)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_missing_and_invalid_files(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(ManifestError, match="manifest directory .*nowhere does not exist"):
        load_manifest(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"empty/manifest\.json does not exist"):
        load_manifest(tmp_path / "empty")
    (dataset / "manifest.json").write_text('{"format": "wsolbench-manifest",\n "version": }')
    with pytest.raises(ManifestError, match=r"manifest\.json line 2: invalid JSON"):
        load_manifest(dataset)


def test_check_files_reports_missing_image(dataset: Path) -> None:
    m = load_manifest(dataset)
    os.remove(m.image_path(m.split("val")[2]))
    load_manifest(dataset)  # not checked by default
    with pytest.raises(ManifestError, match=r"val\.jsonl line 3: path file .*images/val/2\.png does not exist"):
        load_manifest(dataset, check_files=True)


def test_write_rejects_invalid_samples(tmp_path: Path) -> None:
    bad = {"val": [Sample("a", "../a.png", 0, 4, 4)]}
    with pytest.raises(ManifestError, match=r"split 'val' sample 0: path '\.\./a\.png' escapes the root"):
        write_manifest(tmp_path / "m", name="x", root=".", classes=CLASSES, splits=bad)
    dup = {"train": [Sample("a", "a.png", 0, 4, 4)], "val": [Sample("a", "b.png", 0, 4, 4)]}
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        write_manifest(tmp_path / "m", name="x", root=".", classes=CLASSES, splits=dup)
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_write_to_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError) as info:
        write_manifest(blocker / "m", name="x", root=".", classes=CLASSES, splits=_samples())
    assert str(info.value).startswith("cannot write manifest") and "\n" not in str(info.value)
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(blocker / "a.txt", "x")


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_atomic_writes_leave_no_temp_files(dataset: Path, tmp_path: Path) -> None:
    assert _temp_files(dataset) == []
    target = tmp_path / "out" / "record.json"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_atomic_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    atomic_write_text(target, "old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wsolbench._io.os, "replace", fail)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_interrupted_rewrite_is_not_loadable(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewriting a manifest drops manifest.json first, so a crash never mixes old and new splits."""
    real = mf.atomic_write_bytes
    calls = []

    def flaky(path, data):
        calls.append(Path(path).name)
        if len(calls) == 2:
            raise OutputError(f"cannot write {path}: disk full")
        return real(path, data)

    monkeypatch.setattr(mf, "atomic_write_bytes", flaky)
    samples = _samples()
    samples["val"] = samples["val"][:1]
    with pytest.raises(OutputError):
        write_manifest(dataset, name="tiny", root="..", classes=CLASSES, splits=samples)
    with pytest.raises(ManifestError, match="manifest.json does not exist"):
        load_manifest(dataset)
    monkeypatch.setattr(mf, "atomic_write_bytes", real)
    write_manifest(dataset, name="tiny", root="..", classes=CLASSES, splits=samples)
    assert len(load_manifest(dataset).split("val")) == 1
    assert _temp_files(dataset) == []


def test_content_hash(dataset: Path) -> None:
    first = load_manifest(dataset).content_hash()
    assert len(first) == 16 and int(first, 16) >= 0
    assert load_manifest(dataset).content_hash() == first
    # a manifest built by hand (no digest from loading) hashes the files on disk
    m = load_manifest(dataset)
    by_hand = mf.Manifest(directory=m.directory, name=m.name, root=m.root, classes=m.classes, splits=m.splits)
    assert by_hand.content_hash() == first
    _break_line(dataset, "val", 2, _set("label", 1))
    assert load_manifest(dataset).content_hash() != first
    _break_line(dataset, "val", 2, _set("label", 2))
    assert load_manifest(dataset).content_hash() == first


def test_load_eval_mask_with_ignore(tmp_path: Path) -> None:
    root = tmp_path / "d"
    mask = np.array([[0, 0, 0, 0],
                     [0, 255, 255, 0],
                     [0, 255, 7, 0],
                     [0, 0, 0, 0]], np.uint8)  # any non-zero value is foreground
    ignore = np.array([[1, 1, 0, 0],
                       [1, 1, 0, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 9]], np.uint8)
    _png(root / "img.png", np.zeros((4, 4, 3), np.uint8))
    _png(root / "m.png", mask)
    _png(root / "i.png", ignore)
    sample = Sample("img", "img.png", 0, 4, 4, ((1.0, 1.0, 2.0, 2.0),), "m.png", "i.png")
    write_manifest(root, name="t", root=".", classes=["x"], splits={"val": [sample]})
    m = load_manifest(root)
    expected = np.array([[255, 255, 0, 0],
                         [255, 1, 1, 0],
                         [0, 1, 1, 0],
                         [0, 0, 0, 255]], np.uint8)
    out = load_eval_mask(m, m.split("val")[0], 4)
    assert out.dtype == np.uint8 and out.shape == (4, 4)
    np.testing.assert_array_equal(out, expected)
    # nearest-neighbour upsampling by 2 repeats every pixel
    np.testing.assert_array_equal(load_eval_mask(m, m.split("val")[0], 8), np.kron(expected, np.ones((2, 2), np.uint8)))
    no_mask = Sample("img2", "img.png", 0, 4, 4)
    with pytest.raises(DataError, match="image img2 has no mask"):
        load_eval_mask(m, no_mask, 4)


def test_load_eval_class_mask_keeps_classes_and_merges_ignore_like_the_binary_mask(tmp_path: Path) -> None:
    from PIL import Image

    from wsolbench import imageio
    from wsolbench.structs import MASK_IGNORE

    root = tmp_path / "d"
    classes = np.array([[0, 0, 0, 0],
                        [0, 1, 1, 0],
                        [0, 2, 255, 0],
                        [0, 0, 0, 0]], np.uint8)  # c + 1 = class c, 255 void
    ignore = np.array([[1, 1, 0, 0],
                       [1, 1, 0, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 9]], np.uint8)
    root.mkdir()
    palette = Image.fromarray(classes, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, i * 7 % 256)])
    palette.save(root / "m.png")  # palette indices are kept, not expanded to colour
    _png(root / "i.png", ignore)
    _png(root / "img.png", np.zeros((4, 4, 3), np.uint8))
    sample = Sample("img", "img.png", 0, 4, 4, (), "m.png", "i.png", labels=(0, 1), mask_kind="class_index")
    write_manifest(root, name="t", root=".", classes=["x", "y"], splits={"val": [sample]})
    m = load_manifest(root)
    s = m.split("val")[0]
    expected = np.array([[255, 255, 0, 0],
                         [255, 1, 1, 0],
                         [0, 2, 255, 0],
                         [0, 0, 0, 255]], np.uint8)  # ignore marks background only; classes win
    out = mf.load_eval_class_mask(m, s, 4)
    assert out.dtype == np.uint8 and out.shape == (4, 4)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(mf.load_eval_class_mask(m, s, None), expected)
    np.testing.assert_array_equal(mf.load_eval_class_mask(m, s, 8), np.kron(expected, np.ones((2, 2), np.uint8)))
    # The binary mask of the same sample (class 0 = value 1 is the foreground) merges ignore the same way.
    np.testing.assert_array_equal(load_eval_mask(m, s, 4), np.array([[255, 255, 0, 0],
                                                                      [255, 1, 1, 0],
                                                                      [0, 0, 255, 0],
                                                                      [0, 0, 0, 255]], np.uint8))
    with pytest.raises(DataError, match="image img2 has no mask"):
        mf.load_eval_class_mask(m, Sample("img2", "img.png", 0, 4, 4), 4)
    # One implementation, re-exported from the manifest module; the ignore value is the shared constant.
    assert mf.load_eval_class_mask is imageio.load_eval_class_mask and mf.load_eval_mask is imageio.load_eval_mask
    assert mf.IGNORE_VALUE == MASK_IGNORE == 255


def test_read_mask_channels(tmp_path: Path) -> None:
    colour = np.zeros((3, 3, 3), np.uint8)
    colour[0, 0, 2] = 200  # only one channel set still counts
    _png(tmp_path / "c.png", colour)
    np.testing.assert_array_equal(read_mask(tmp_path / "c.png"), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 3] = 255  # opaque alpha everywhere is not foreground
    rgba[1, 1, 0] = 1
    _png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_mask(tmp_path / "a.png"), [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    deep = np.zeros((2, 2), np.uint16)
    deep[1, 0] = 256  # 16-bit: a low byte of zero is still non-zero
    _png(tmp_path / "d.png", deep)
    np.testing.assert_array_equal(read_mask(tmp_path / "d.png"), [[0, 0], [1, 0]])


def test_read_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image .*missing\.png does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"image .*junk\.png cannot be decoded"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(DataError, match=r"mask .*junk\.png cannot be decoded"):
        read_mask(tmp_path / "junk.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="cannot be decoded"):
        read_mask(tmp_path / "empty.png")


# --------------------------------------------------------------------------- optional keys (multi-label, mask kinds)


def test_labels_mask_kind_mask_root_and_info_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    _png(root / "a.png", np.zeros((4, 6, 3), np.uint8))
    _png(tmp_path / "m" / "masks" / "a.png", np.zeros((4, 6), np.uint8))
    sample = Sample("a", "a.png", 1, 6, 4, ((0.0, 0.0, 5.0, 3.0),), "masks/a.png", labels=(0, 1),
                    mask_kind="class_index")
    write_manifest(tmp_path / "m", name="x", root=root, classes=CLASSES, splits={"val": [sample]},
                   mask_root=".", info={"val": {"source": "holdout", "seed": 3}})
    m = load_manifest(tmp_path / "m", check_files=True)
    assert m.split("val")[0] == sample and sample.label_set == (0, 1)
    assert m.mask_root == (tmp_path / "m").resolve() and m.mask_path(sample) == m.mask_root / "masks/a.png"
    assert m.info["val"] == {"source": "holdout", "seed": 3}
    line = json.loads((tmp_path / "m" / "val.jsonl").read_text())
    assert line["labels"] == [0, 1] and line["mask_kind"] == "class_index"
    assert Sample("b", "b.png", 2, 1, 1).label_set == (2,)
    # the dataset moved: a root given at load time replaces the header's; mask_root stays with the manifest
    moved = load_manifest(tmp_path / "m", root=tmp_path / "elsewhere")
    assert moved.root == (tmp_path / "elsewhere").resolve() and moved.mask_root == m.mask_root


@pytest.mark.parametrize(("edit", "expected"), [
    (_set("labels", [0, 5]), "labels value 5 is out of range [0, 2]"),
    (_set("labels", [0, 0]), "lists a class twice"),
    (_set("labels", [0, 1]), "label 2 is not in labels [0, 1]"),
    (_set("labels", "0,1"), "labels must be a list of integers"),
    (_set("mask_kind", "rle"), 'mask_kind "rle" is unknown'),
], ids=["out of range", "twice", "label not in labels", "not a list", "unknown kind"])
def test_optional_keys_are_validated(dataset: Path, edit, expected: str) -> None:
    _break_line(dataset, "val", 2, edit)
    with pytest.raises(ManifestError, match=re.escape(expected)):
        load_manifest(dataset)


def test_scan_collects_every_problem(dataset: Path) -> None:
    _break_line(dataset, "val", 1, _set("label", 9))
    _break_line(dataset, "val", 3, lambda o: "{not json")
    _break_line(dataset, "train", 2, _set("id", "train/0.png"))
    scan = mf.scan_manifest(dataset)
    assert len(scan.problems) == 3
    assert "train.jsonl line 2: duplicate id 'train/0.png'" in scan.problems[0]
    assert "val.jsonl line 1: label 9" in scan.problems[1] and "val.jsonl line 3: invalid JSON" in scan.problems[2]
    assert [s.image_id for s in scan.manifest.split("val")] == ["val/1.png"] and scan.lines["val"] == (2,)
    assert scan.lines["train"] == (1, 3)


def test_decode_mask_kinds(tmp_path: Path) -> None:
    soft = np.array([[0, 127, 128, 255]], np.uint8)
    _png(tmp_path / "soft.png", soft)
    np.testing.assert_array_equal(mf.decode_mask(tmp_path / "soft.png", "soft", 0), [[0, 0, 1, 1]])
    tri = np.array([[1, 2, 3, 2]], np.uint8)
    _png(tmp_path / "tri.png", tri)
    np.testing.assert_array_equal(mf.decode_mask(tmp_path / "tri.png", "trimap", 0), [[1, 0, 255, 0]])
    from PIL import Image

    index = Image.frombytes("P", (4, 1), bytes([0, 3, 5, 255]))
    index.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    index.save(tmp_path / "voc.png")
    np.testing.assert_array_equal(mf.decode_mask(tmp_path / "voc.png", "class_index", 2), [[0, 1, 0, 255]])
    with pytest.raises(DataError, match="has mode RGB"):
        _png(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
        mf.decode_mask(tmp_path / "rgb.png", "class_index", 0)


def test_read_image_falls_back_to_pillow_and_ignores_exif_rotation(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(tmp_path / "x.jpg", format="GIF")  # GIF named .jpg
    image = read_image(tmp_path / "x.jpg")
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": the reference loaders (PIL) do not apply it, nor do we
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (5, 7, 3)


def test_content_hash_ignores_where_the_dataset_lives(tmp_path: Path) -> None:
    import json as _json
    import shutil as _shutil

    from wsolbench.manifest import load_manifest as _load

    from wsolbench.data.synthetic import build_synthetic
    from wsolbench.config import SyntheticConfig

    src = build_synthetic(SyntheticConfig(num_classes=2, n_train=4, n_val=2, n_test=2), tmp_path / "a")
    moved = tmp_path / "b" / src.name
    _shutil.copytree(src, moved)
    header = _json.loads((moved / "manifest.json").read_text())
    header["root"] = str(moved.resolve())
    (moved / "manifest.json").write_text(_json.dumps(header))
    assert _load(moved).root != _load(src).root
    assert _load(moved).content_hash() == _load(src).content_hash()
