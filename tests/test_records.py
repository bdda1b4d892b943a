import json

import pandas as pd
import pytest

from wsolbench.errors import DataError, OutputError
from wsolbench.records import load_record, new_record, write_record
from wsolbench.report import leaderboard_frame, write_leaderboard


def _record(name, v2, pxap, top1=90.0, entropy=0.1):
    return new_record(name=name, config={"seed": 0}, config_hash=name * 3,
                      objective={"effective_smoothing": 0.0, "applied_loss_scale": 1.0},
                      summary={"name": name, "objective": name, "top1": top1, "entropy_norm": entropy,
                               "MaxBoxAccV2": v2, "PxAP": pxap, "config_hash": name * 3})


def test_write_is_atomic_and_never_silently_overwrites(tmp_path):
    path = tmp_path / "r" / "record.json"
    write_record(path, _record("a", 50.0, 60.0))
    with pytest.raises(OutputError, match="already exists"):
        write_record(path, _record("b", 1.0, 1.0))
    assert load_record(path)["name"] == "a"
    write_record(path, _record("b", 1.0, 1.0), overwrite=True)
    assert load_record(path)["name"] == "b"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temporary files left


def test_load_rejects_foreign_and_broken_files(tmp_path):
    bad = tmp_path / "record.json"
    bad.write_text("{\n  'x': 1")
    with pytest.raises(DataError, match="line 2"):
        load_record(bad)
    bad.write_text(json.dumps({"kind": "other"}))
    with pytest.raises(DataError, match="not a wsolbench run record"):
        load_record(bad)
    record = _record("a", 1.0, 1.0)
    record["schema_version"] = 99
    bad.write_text(json.dumps(record))
    with pytest.raises(DataError, match="schema version 99"):
        load_record(bad)


def test_leaderboard_sorted_by_maxboxaccv2_and_written_both_ways(tmp_path):
    frame = leaderboard_frame([_record("a", 50.0, 60.0), _record("b", 70.0, 10.0), _record("c", 70.0, 20.0)])
    assert list(frame["name"]) == ["c", "b", "a"]
    csv_path, md_path = write_leaderboard(frame, tmp_path, command="wsolbench bench")
    assert pd.read_csv(csv_path)["MaxBoxAccV2"].tolist() == [70.0, 70.0, 50.0]
    text = md_path.read_text()
    assert "`wsolbench bench`" in text and "| c " in text
