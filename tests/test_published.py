"""Published numbers: the committed files load, each number is one its source note gives, bad rows are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsolbench.errors import DataError
from wsolbench.report.published import COLUMNS, default_dir, load_published, load_published_file, published_for

NOTES = Path("/work/shared/notes/published-numbers.md")
HEADER = ",".join(COLUMNS)
GOOD = "cub,resnet50_wsol,cutmix,ce,Top-1 Loc,54.81,,a paper,Table 2,Top-1 Loc at a fixed threshold,"


def test_the_committed_files_load_and_count():
    frame = load_published()
    assert default_dir().name == "published"
    counts = frame.groupby("file").size().to_dict()
    assert counts == {"wsolevaluation-main-table.csv": 54, "paper-reported-fixed-threshold.csv": 19,
                      "bridging-gap-aggregator-unverified.csv": 6}
    main = frame[frame["file"] == "wsolevaluation-main-table.csv"]
    assert set(main["metric"]) == {"MaxBoxAccV2", "PxAP"}
    assert set(main[main["dataset"] == "openimages"]["metric"]) == {"PxAP"}
    cam = main[main["method"] == "cam"]
    assert (cam["relative_to"] == "").all() and (main[main["method"] != "cam"]["relative_to"] == "cam").all()
    row = main[(main["method"] == "has") & (main["dataset"] == "cub") & (main["backbone"] == "inception_v3_wsol")]
    assert row["value"].tolist() == [-3.3]
    row = cam[(cam["dataset"] == "imagenet") & (cam["backbone"] == "vgg16_wsol")]
    assert row["value"].tolist() == [60.0]


@pytest.mark.skipif(not NOTES.is_file(), reason="the shared notes are not on this machine")
def test_every_number_is_one_the_notes_give():
    """No computed number: each value (as written) occurs in the notes' text, signs included."""
    text = NOTES.read_text().replace("\u2212", "-")
    printed = set(re.findall(r"[+-]?\d+\.\d+", text))
    for _, row in load_published().iterrows():
        value = row["value"]
        forms = {f"{value:.1f}", f"{value:.2f}", f"{value:+.1f}", f"{value:+.2f}"}
        assert forms & printed, (row["file"], row["line"], value)


@pytest.mark.parametrize("line, message", [
    (GOOD.replace("54.81", "lots"), "value 'lots' is not a number"),
    (GOOD.replace("54.81", "154.8"), "value 154.8 is not a percentage"),
    (GOOD.replace("Top-1 Loc", "Top-5 Loc"), "unknown metric 'Top-5 Loc'"),
    (GOOD.replace("a paper", ""), "source is empty"),
    (GOOD.replace("resnet50_wsol", "ResNet-50"), "backbone 'ResNet-50' is not a lower-case name"),
    (GOOD + ",extra", "12 fields, expected 11"),
])
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "x.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{line}\n")
    with pytest.raises(DataError) as info:
        load_published_file(path)
    text = str(info.value)
    assert f"{path} line 3: " in text and message in text and "\n" not in text


def test_header_and_duplicates_are_checked(tmp_path):
    (tmp_path / "a.csv").write_text("dataset,value\n")
    with pytest.raises(DataError, match="a.csv line 1: the header must be dataset,backbone"):
        load_published(tmp_path)
    (tmp_path / "a.csv").write_text(f"{HEADER}\n{GOOD}\n")
    (tmp_path / "b.csv").write_text(f"{HEADER}\n\n{GOOD}\n")
    with pytest.raises(DataError, match=r"b.csv line 3: the same number as a.csv line 2"):
        load_published(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_published(tmp_path / "missing")


def test_rows_of_one_dataset_and_backbone_and_the_unstated_ones():
    frame = load_published()
    rows = published_for(frame, "cub", "resnet50_wsol")
    assert set(rows["dataset"]) == {"cub"} and set(rows["backbone"]) == {"resnet50_wsol", "unstated"}
    assert 54.81 in rows["value"].tolist() and 80.1 in rows["value"].tolist()
    assert published_for(frame, "synthetic", "small_cnn").empty
