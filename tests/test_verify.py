"""``data verify``: every problem of a deliberately broken manifest reported at once, with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wsolbench.cli import cli
from wsolbench.data.verify import verify_manifest
from wsolbench.manifest import Sample, write_manifest


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    train = [Sample(f"t{i}", f"img/t{i}.png", i % 2, 8, 6) for i in range(3)]
    val = [Sample(f"v{i}", f"img/v{i}.png", i % 2, 8, 6, ((1.0, 1.0, 5.0, 4.0),), f"mask/v{i}.png",
                  f"mask/v{i}_ignore.png") for i in range(3)]
    test = [Sample("p0", "img/p0.png", 0, 8, 6, ((0.0, 0.0, 7.0, 5.0),), "mask/p0.png", mask_kind="trimap")]
    for s in train + val + test:
        _png(root / s.path, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    for s in val:
        mask = np.zeros((6, 8), np.uint8)
        mask[1:4, 1:5] = 255
        _png(root / s.mask, mask)
        _png(root / s.ignore, np.zeros((6, 8), np.uint8))
    trimap = np.full((6, 8), 2, np.uint8)
    trimap[2:4, 2:5] = 1
    _png(root / "mask/p0.png", trimap)
    write_manifest(tmp_path / "m", name="tiny", root=root, classes=["a", "b"],
                   splits={"train": train, "val": val, "test": test})
    return tmp_path / "m"


def test_a_good_manifest_passes(good: Path) -> None:
    report = verify_manifest(good)
    assert report.ok and report.problems == () and report.warnings == ()
    assert report.counts == {"train": 3, "val": 3, "test": 1} and report.files == 14
    result = CliRunner().invoke(cli, ["data", "verify", str(good), "--no-progress"], obj={})
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [report.summary()]
    assert report.summary().startswith("OK: manifest ")


def _edit(directory: Path, split: str, lineno: int, **changes) -> None:
    path = directory / f"{split}.jsonl"
    lines = path.read_text().splitlines()
    obj = json.loads(lines[lineno - 1])
    obj.update(changes)
    lines[lineno - 1] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")


def test_every_problem_is_reported(good: Path) -> None:
    root = good.parent / "data"
    (root / "img/t0.png").unlink()  # train line 1: missing image
    (root / "img/t1.png").write_bytes(b"not a png")  # train line 2: corrupt image
    _edit(good, "train", 3, size=[9, 6])  # train line 3: size mismatch
    _edit(good, "val", 1, label=5)  # val line 1: structural (label out of range)
    _edit(good, "val", 2, boxes=[[2, 1, 2, 4]])  # val line 2: degenerate box
    _png(root / "mask/v2.png", np.zeros((3, 3), np.uint8))  # val line 3: mask of another size...
    (root / "mask/v2_ignore.png").unlink()  # ...and a missing ignore map
    _png(root / "mask/p0.png", np.full((6, 8), 7, np.uint8))  # test line 1: trimap values beyond 1..3
    with (good / "test.jsonl").open("a") as handle:  # test line 2: the same image as train line 3 (overlap)
        handle.write(json.dumps({"id": "p1", "path": "img/t2.png", "label": 0, "size": [8, 6]}) + "\n")
        handle.write(json.dumps({"id": "v1", "path": "img/v1.png", "label": 0, "size": [8, 6]}) + "\n")

    report = verify_manifest(good)
    assert not report.ok
    found = "\n".join(report.problems)
    expected = [
        r"train\.jsonl line 1: image .*img/t0\.png does not exist",
        r"train\.jsonl line 2: image .*img/t1\.png cannot be decoded",
        r"train\.jsonl line 3: image .*img/t2\.png is 8x6, the manifest says 9x6",
        r"val\.jsonl line 1: label 5 is out of range \[0, 1\]",
        r"val\.jsonl line 2: box \[2, 1, 2, 4\] is degenerate",
        r"val\.jsonl line 3: mask .*mask/v2\.png is 3x3, the image 8x6",
        r"val\.jsonl line 3: mask .*mask/v2_ignore\.png does not exist",
        r"test\.jsonl line 1: trimap mask .*p0\.png has values \[7\]",
        r"test\.jsonl line 2: image img/t2\.png is also listed at train\.jsonl line 3 \(the splits overlap\)",
        r"test\.jsonl line 3: duplicate id 'v1' \(first at val\.jsonl line 2\)",
    ]
    import re

    for pattern in expected:
        assert re.search(pattern, found), (pattern, found)
    assert len(report.problems) == len(expected)
    assert all("\n" not in p and p.startswith("manifest ") for p in report.problems)
    assert report.warnings and "no foreground pixel" in report.warnings[0]  # the new all-7 trimap has no 1

    result = CliRunner().invoke(cli, ["data", "verify", str(good), "--no-progress"], obj={})
    assert result.exit_code == 1
    for problem in report.problems:
        assert problem in result.output
    assert f"error: {len(expected)} problem(s): manifest" in result.output


def test_unreadable_header_is_one_problem(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text("{")
    report = verify_manifest(tmp_path / "m")
    assert not report.ok and len(report.problems) == 1 and "invalid JSON" in report.problems[0]
