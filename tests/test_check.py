"""The regression check on hand-made aggregated leaderboards: verdicts, tolerances, protocol, JUnit XML."""

from __future__ import annotations

import math
from xml.etree import ElementTree as ET

import pandas as pd
import pytest

from wsolbench.errors import ConfigError
from wsolbench.report.check import FIXED, FLOOR, compare, parse_tolerances, tolerance_for, write_junit


def _board(changes=None) -> pd.DataFrame:
    rows = [
        {"dataset": "synthetic", "backbone": "small_cnn", "method": "cam", "objective": "ce", "cam": "cam",
         "seed_list": "0,1,2", "seeds": 3, "top1": 99.0, "top1_std": 0.5, "MaxBoxAccV2": 65.0,
         "MaxBoxAccV2_std": 1.0, "PxAP": 76.0, "PxAP_std": 0.2, "manifest_hash": "abc", "threshold_step": 0.01,
         "resolution": 64},
        {"dataset": "synthetic", "backbone": "small_cnn", "method": "cam", "objective": "kl_uniform(lam=0.3)",
         "cam": "cam", "seed_list": "0", "seeds": 1, "top1": 98.0, "top1_std": math.nan, "MaxBoxAccV2": 52.0,
         "MaxBoxAccV2_std": math.nan, "PxAP": 67.0, "PxAP_std": math.nan, "manifest_hash": "abc",
         "threshold_step": 0.01, "resolution": 64},
    ]
    frame = pd.DataFrame(rows)
    for (row, column), value in (changes or {}).items():
        frame.loc[row, column] = value
    return frame


def test_an_unchanged_rerun_passes_every_metric():
    verdicts = compare(_board(), _board())
    assert len(verdicts) == 6 and {v.verdict for v in verdicts} == {"pass"}
    assert all(v.diff == 0 for v in verdicts)


def test_tolerance_from_the_seed_spread_or_fixed():
    row = _board().iloc[0].to_dict()
    assert tolerance_for(row, "MaxBoxAccV2", {}) == pytest.approx(3 * math.sqrt(2) * 1.0 / math.sqrt(3))
    assert tolerance_for(row, "PxAP", {}) == pytest.approx(3 * math.sqrt(2) * 0.2 / math.sqrt(3))  # 0.49
    tight = _board({(0, "PxAP_std"): 0.05}).iloc[0].to_dict()  # 3 sqrt(2) 0.05 / sqrt(3) = 0.12: the floor
    assert tolerance_for(tight, "PxAP", {}) == FLOOR
    one_seed = _board().iloc[1].to_dict()
    assert tolerance_for(one_seed, "MaxBoxAccV2", {}) == FIXED
    assert tolerance_for(one_seed, "MaxBoxAccV2", {"MaxBoxAccV2": 3.0}) == 3.0


def test_a_baseline_five_points_better_fails_and_a_better_result_passes_as_better():
    better_baseline = _board({(0, "MaxBoxAccV2"): 70.0})
    verdicts = {(v.key[3], v.metric): v for v in compare(better_baseline, _board())}
    assert verdicts[("ce", "MaxBoxAccV2")].verdict == "worse"
    assert verdicts[("ce", "MaxBoxAccV2")].diff == pytest.approx(-5.0)
    assert verdicts[("ce", "PxAP")].verdict == "pass"
    worse_baseline = _board({(1, "PxAP"): 60.0})  # today is 7 points above it
    verdicts = {(v.key[3], v.metric): v.verdict for v in compare(worse_baseline, _board())}
    assert verdicts[("kl_uniform(lam=0.3)", "PxAP")] == "better"
    # within the tolerance: 1 point fixed for a one-seed row
    near = _board({(1, "MaxBoxAccV2"): 52.9})
    assert {v.verdict for v in compare(near, _board()) if v.metric == "MaxBoxAccV2"} == {"pass"}


def test_a_missing_row_fails_and_a_new_row_is_reported():
    current = _board().iloc[:1]
    verdicts = compare(_board(), current)
    missing = [v for v in verdicts if v.verdict == "missing"]
    assert len(missing) == 3 and all(v.key[3] == "kl_uniform(lam=0.3)" for v in missing)
    extra = compare(_board().iloc[:1], _board())
    assert [v.verdict for v in extra if v.key[3] != "ce"] == ["new"]
    assert not any(v.failed for v in extra)


def test_other_seeds_are_another_row():
    current = _board({(0, "seed_list"): "0,1"})
    verdicts = compare(_board(), current)
    assert sorted({(v.key[5], v.verdict) for v in verdicts if v.key[3] == "ce"}) == [("0,1", "new"),
                                                                                       ("0,1,2", "missing")]


def test_a_baseline_from_another_protocol_is_refused_naming_the_difference():
    with pytest.raises(ConfigError, match="threshold_step is '0.001' there and '0.01' here"):
        compare(_board({(0, "threshold_step"): 0.001}), _board(), source="base.csv")
    with pytest.raises(ConfigError, match="manifest_hash"):
        compare(_board({(1, "manifest_hash"): "zzz"}), _board())
    with pytest.raises(ConfigError, match="resolution.*missing"):
        compare(_board().drop(columns=["resolution"]), _board())


def test_tolerance_parsing():
    assert parse_tolerances(["MaxBoxAccV2=1.5", "PxAP=0"]) == {"MaxBoxAccV2": 1.5, "PxAP": 0.0}
    for bad in ("MaxBoxAccV2", "MaxBoxAccV2=x", "=1", "PxAP=-1"):
        with pytest.raises(ConfigError, match="--tolerance"):
            parse_tolerances([bad])
    with pytest.raises(ConfigError, match="unknown metric 'Bogus'"):
        compare(_board(), _board(), tolerances={"Bogus": 1.0})


def test_junit_xml_has_one_case_per_row_and_metric_and_marks_failures(tmp_path):
    baseline = _board({(0, "MaxBoxAccV2"): 70.0})
    current = _board().iloc[:1]
    path = write_junit(compare(baseline, current), tmp_path / "check.xml")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 6 and suite.get("tests") == "6"
    failed = [(c.get("classname"), c.get("name"), c.find("failure").get("type")) for c in cases
              if c.find("failure") is not None]
    assert suite.get("failures") == str(len(failed)) == "4"  # MaxBoxAccV2 worse + 3 missing
    assert sorted(t for _, _, t in failed) == ["missing", "missing", "missing", "regression"]
    assert [n for c, n, t in failed if t == "regression"] == ["MaxBoxAccV2"]


def test_a_metric_at_the_val_chosen_threshold_is_tolerated_one_threshold_step():
    """GT-known Loc of a one-seed row moved by a one-step threshold flip passes; a larger drop still fails;
    the threshold-free metrics keep their fixed tolerance."""
    extra = {(1, "GT-known Loc"): 50.78125, (1, "GT-known Loc_step"): 3.125}
    baseline = _board(extra)
    flipped = _board({**extra, (1, "GT-known Loc"): 47.65625, (1, "GT-known Loc_step"): 3.90625})
    by_metric = {v.metric: v for v in compare(baseline, flipped) if v.key[3] == "kl_uniform(lam=0.3)"}
    assert by_metric["GT-known Loc"].verdict == "pass" and by_metric["GT-known Loc"].tolerance == 3.90625
    assert by_metric["MaxBoxAccV2"].tolerance == FIXED
    fallen = _board({**extra, (1, "GT-known Loc"): 46.0, (1, "GT-known Loc_step"): 2.0})
    verdict = next(v for v in compare(baseline, fallen) if v.metric == "GT-known Loc" and v.key[3] != "ce")
    assert verdict.verdict == "worse" and verdict.tolerance == 3.125  # the baseline's step, the larger


def test_threshold_steps_read_the_test_curve_beside_the_chosen_index():
    from wsolbench.report.leaderboard import threshold_steps

    curve = [60.0, 55.0, 53.0, 41.0]
    record = {"selection": {"threshold": {"index": 2}, "conventions": {"loc_contours": "largest", "loc_iou": 50,
                                                                       "fixed_threshold": None}},
              "test": {"boxes": {"curves": {"gt_known": {"largest": {"50": curve}, "all": {"50": [0.0] * 4}},
                                            "top1": {"largest": {"50": [9.0, 9.0, 9.0, 9.5]}}}}}}
    assert threshold_steps(record) == {"GT-known Loc_step": 12.0, "Top-1 Loc_step": 0.5}
    record["selection"]["threshold"]["index"] = 0  # an end: only the one neighbour
    assert threshold_steps(record)["GT-known Loc_step"] == 5.0
    record["selection"]["conventions"]["fixed_threshold"] = 0.5  # no choice made on val: nothing to tolerate
    assert threshold_steps(record) == {}
