"""`wsolbench data prepare` finds every problem of a raw dataset in one run, names each, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from miniature import make_cub, make_openimages, make_voc, png, truncate, write

from wsolbench.cli import cli
from wsolbench.data.sources import DataProblems, prepare
from wsolbench.data.sources.problems import BoxCheck, Problems
from wsolbench.manifest import MANIFEST_FILE, load_manifest


def invoke(*args: str):
    return CliRunner().invoke(cli, ["data", "prepare", *args, "--no-progress"], catch_exceptions=False)


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    write(path, lines)


def _cub_ids(raw: dict) -> dict[int, str]:
    """CUB's 1-based image_id -> the manifest's image id (the path under images/)."""
    return {e["id"]: rel for rel, e in raw["images"].items()}


@pytest.fixture()
def five_faults(tmp_path: Path) -> dict:
    """A miniature CUB with five different faults, and what each problem line must say (file, line, image id)."""
    raw = make_cub(tmp_path / "raw")
    root, ids = raw["root"], _cub_ids(raw)
    (root / "images" / ids[3]).unlink()  # 1. a missing image
    truncate(root / "images" / ids[5])  # 2. a corrupt JPEG: its header reads, its data does not decode
    # image 8 is 42 x 32: 3. a box whose bottom edge (3 + 40 = 43) lies below the image
    _replace_line(root / "bounding_boxes.txt", 8, "8 3.0 3.0 20.5 40.0")
    _replace_line(root / "bounding_boxes.txt", 10, "10 5.0 3.0 -4.0 15.0")  # 4. a negative width
    _replace_line(root / "image_class_labels.txt", 13, "13 7")  # 5. a class id beyond classes.txt's 3
    images, boxes, labels = (str(root / f) for f in ("images.txt", "bounding_boxes.txt", "image_class_labels.txt"))
    expected = [
        # (file, line, image id, what the message says), in the order they are found
        (labels, 13, ids[13], "class_id 7 is not in 1..3 (classes.txt)"),
        (images, 3, ids[3], f"image file {root / 'images' / ids[3]} does not exist"),
        (images, 5, ids[5], f"image file {root / 'images' / ids[5]} cannot be decoded"),
        (boxes, 8, ids[8], "box (x, y, w, h) = (3, 3, 20.5, 40) lies outside the image (42x32)"),
        (boxes, 10, ids[10], "box (x, y, w, h) = (5, 3, -4, 15) has a negative width (-4)"),
    ]
    return {"raw": raw, "root": root, "ids": ids, "expected": expected}


def test_the_clean_miniature_prepares_and_a_box_on_the_border_is_no_problem(tmp_path: Path) -> None:
    raw = make_cub(tmp_path / "raw")
    m = prepare("cub", root=raw["root"], out=tmp_path / "m", options={"val_per_class": 1})
    two = next(s for s in m.split("test") if s.image_id == _cub_ids(raw)[2])
    assert two.boxes[0][2] == two.width == 42  # x + w == width: kept as written, not clipped
    assert m.info["clipped_boxes"] == 0


def test_five_faults_are_named_in_one_run(five_faults: dict, tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = invoke("cub", "--root", str(five_faults["root"]), "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5, result.stdout
    for line, (file, lineno, image, message) in zip(lines, five_faults["expected"]):
        assert line.startswith(f"{file} line {lineno}: image {image}: {message}"), (line, message)
    assert result.stderr.strip().splitlines() == [
        f"error: 5 problems in the cub dataset under {five_faults['root']}; no manifest written"]
    assert not out.exists()  # nothing written, not even the folder


def test_the_library_error_carries_every_problem(five_faults: dict, tmp_path: Path) -> None:
    with pytest.raises(DataProblems) as info:
        prepare("cub", root=five_faults["root"], out=tmp_path / "m")
    assert info.value.exit_code == 2
    got = [(p.file, p.line, p.image) for p in info.value.problems]
    assert got == [(f, n, i) for f, n, i, _ in five_faults["expected"]]
    # one line for a caller that prints one (a run that prepares its data): the first three, then a count
    text = str(info.value)
    assert "\n" not in text and text.endswith("; and 2 more (wsolbench data prepare lists them all)")
    assert text.count(five_faults["root"].as_posix()) >= 4


def test_max_problems_caps_what_is_printed(five_faults: dict, tmp_path: Path) -> None:
    result = invoke("cub", "--root", str(five_faults["root"]), "--out", str(tmp_path / "m"), "--max-problems", "2")
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split(": image ")[0] for line in lines[:2]] == [f"{f} line {n}" for f, n, _, _ in
                                                                 five_faults["expected"][:2]]
    assert lines[2].startswith("... and 3 more problems")
    everything = invoke("cub", "--root", str(five_faults["root"]), "--out", str(tmp_path / "m"), "--max-problems", "0")
    assert len(everything.stdout.splitlines()) == 5


def test_clip_boxes_clips_the_outside_box_and_counts_it(tmp_path: Path) -> None:
    raw = make_cub(tmp_path / "raw")
    root, ids = raw["root"], _cub_ids(raw)
    _replace_line(root / "bounding_boxes.txt", 8, "8 3.0 3.0 20.5 40.0")  # 42 x 32: the bottom edge at 43
    without = invoke("cub", "--root", str(root), "--out", str(tmp_path / "a"), "--val-per-class", "1")
    assert without.exit_code == 2 and "lies outside the image (42x32)" in without.stdout

    out = tmp_path / "m"
    result = invoke("cub", "--root", str(root), "--out", str(out), "--val-per-class", "1", "--clip-boxes")
    assert result.exit_code == 0, result.output
    assert "clipped 1 box(es)" in result.stderr
    m = load_manifest(out)
    assert m.info["clipped_boxes"] == 1 and m.info["source"]["options"]["clip_boxes"] is True
    eight = next(s for split in m.splits.values() for s in split if s.image_id == ids[8])
    assert eight.boxes == ((3.0, 3.0, 23.5, 32.0),)  # clipped to the height


def test_negative_width_stays_a_problem_with_clip_boxes(tmp_path: Path) -> None:
    raw = make_cub(tmp_path / "raw")
    root, ids = raw["root"], _cub_ids(raw)
    _replace_line(root / "bounding_boxes.txt", 8, "8 3.0 3.0 20.5 40.0")
    _replace_line(root / "bounding_boxes.txt", 10, "10 5.0 3.0 -4.0 15.0")
    _replace_line(root / "bounding_boxes.txt", 12, "12 50.0 3.0 4.0 15.0")  # 50 x 32: right of the image
    result = invoke("cub", "--root", str(root), "--out", str(tmp_path / "m"), "--val-per-class", "1",
                    "--clip-boxes")
    assert result.exit_code == 2
    boxes = root / "bounding_boxes.txt"
    assert result.stdout.splitlines() == [
        f"{boxes} line 10: image {ids[10]}: box (x, y, w, h) = (5, 3, -4, 15) has a negative width (-4)",
        f"{boxes} line 12: image {ids[12]}: box (x, y, w, h) = (50, 3, 4, 15) lies entirely outside the image "
        "(50x32): clipping leaves nothing",
    ]


def test_box_check_by_hand() -> None:
    """The box rules against hand-made cases: limits [0, W] x [0, H], edges on the border inside."""
    problems = Problems()
    check = BoxCheck(problems, clip=False)
    assert check((0, 0, 40, 30), 40, 30) == (0.0, 0.0, 40.0, 30.0)  # the whole image: both edges on the border
    assert check((0, 0, 40.5, 30), 40, 30) is None  # half a pixel out is out
    assert check((-0.5, 0, 10, 10), 40, 30) is None
    assert check((5, 5, 5, 9), 40, 30) is None  # zero width
    assert check((5, 9, 8, 5), 40, 30) is None  # negative height
    assert check((5, 5, float("nan"), 9), 40, 30) is None
    assert [p.message.split(") ", 1)[1] for p in problems] == [
        "lies outside the image (40x30); fix it, or clip it with --clip-boxes",
        "lies outside the image (40x30); fix it, or clip it with --clip-boxes",
        "has zero width", "has a negative height (-4)", "has a coordinate that is not a finite number"]
    clip = BoxCheck(Problems(), clip=True)
    assert clip((-3, 2, 50, 31), 40, 30) == (0.0, 2.0, 40.0, 30.0) and clip.clipped == 1
    assert clip((41, 2, 50, 20), 40, 30) is None and clip.clipped == 1  # entirely outside: nothing to keep


def test_voc_reports_several_faults_at_once(tmp_path: Path) -> None:
    raw = make_voc(tmp_path / "raw")
    voc = raw["root"] / "VOC2012"
    val = raw["seg_val"]  # the test split: masks and boxes are read
    png(voc / "SegmentationClass" / f"{val[0]}.png", np.zeros((5, 5), np.uint8))  # a mask of another size
    (voc / "JPEGImages" / "2007_000009.jpg").unlink()  # a train image (Main/trainval only)
    xml = voc / "Annotations" / f"{val[1]}.xml"
    xml.write_text(xml.read_text().replace("<xmax>38</xmax>", "<xmax>45</xmax>"))  # the person box, width 40
    bad_class = voc / "Annotations" / "2007_000008.xml"
    bad_class.write_text(bad_class.read_text().replace("<name>dog</name>", "<name>wolf</name>"))
    result = invoke("voc", "--root", str(raw["root"]), "--out", str(tmp_path / "m"), "--val-size", "2")
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout
    assert any(line.startswith(f"{bad_class}: image 2007_000008: unknown class(es) wolf") for line in lines)
    assert any(line.startswith(f"{voc / 'JPEGImages' / '2007_000009.jpg'}: image 2007_000009: image file does "
                               "not exist") for line in lines)
    assert any(line == f"{voc / 'SegmentationClass' / val[0]}.png: image {val[0]}: mask is 5x5, the image 40x30"
               for line in lines)
    assert any(line.startswith(f"{xml}: image {val[1]}: person box (12, 2, 45, 29) (1-based) lies outside the "
                               "image (40x30)") for line in lines)
    assert not (tmp_path / "m").exists()


def test_a_failed_conversion_keeps_the_earlier_manifest_and_its_masks(tmp_path: Path) -> None:
    raw = make_openimages(tmp_path / "raw")
    options = {"metadata_root": raw["metadata"]}
    m = prepare("openimages", root=raw["root"], out=tmp_path / "m", options=options)
    before = {p: p.read_bytes() for p in (m.directory / "masks").rglob("*.png")}
    header = (m.directory / MANIFEST_FILE).read_bytes()
    test_ids = [s.image_id for s in m.split("test")]
    (raw["root"] / test_ids[0]).unlink()  # a missing image
    instance = next((raw["root"] / test_ids[1]).parent.glob(Path(test_ids[1]).stem + "_m*_aaaa0001.png"))
    instance.write_bytes(b"not a png")  # an unreadable mask
    with pytest.raises(DataProblems) as info:
        prepare("openimages", root=raw["root"], out=m.directory, options=options)
    assert {p.image for p in info.value.problems} == {test_ids[0], test_ids[1]}
    assert (m.directory / MANIFEST_FILE).read_bytes() == header
    assert {p: p.read_bytes() for p in (m.directory / "masks").rglob("*.png")} == before
    kept = load_manifest(m.directory)  # the earlier manifest, whole: every derived mask it names is there
    assert all(kept.mask_path(s).is_file() for split in ("val", "test") for s in kept.split(split))
    assert json.loads(header)["info"]["counts"]["test"] == 4


def test_a_failed_first_conversion_leaves_no_folder(tmp_path: Path) -> None:
    raw = make_openimages(tmp_path / "raw")
    first_test = (raw["metadata"] / "test" / "image_ids.txt").read_text().splitlines()[0]
    (raw["root"] / first_test).unlink()  # the val masks are merged (written) before the test split is read
    out = tmp_path / "m"
    with pytest.raises(DataProblems):
        prepare("openimages", root=raw["root"], out=out, options={"metadata_root": raw["metadata"]})
    assert not out.exists()
