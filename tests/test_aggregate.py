"""Seed aggregation and the per-run frame: hand-computed means and sample stds, names derived for old records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsolbench.errors import DataError
from wsolbench.report.aggregate import SETTING, aggregate_seeds, setting_label
from wsolbench.report.leaderboard import record_row, runs_frame

REPO = Path(__file__).resolve().parents[1]


def _run(objective: str, seed: int, v2: float, val_v2: float, **extra) -> dict:
    return {"name": f"cam-{objective}", "dataset": "synthetic", "backbone": "small_cnn", "method": "cam",
            "objective": objective, "cam": "cam", "seed": seed, "method_name": "cam",
            "objective_name": objective.split("(")[0], "strength_name": "lam" if "(" in objective else None,
            "strength": 0.3 if "(" in objective else None, "MaxBoxAccV2": v2, "val_MaxBoxAccV2": val_v2,
            "config_hash": f"h{objective}{seed}", "run_dir": None, **extra}


def test_mean_sample_std_and_count_per_setting():
    runs = pd.DataFrame([
        _run("ce", 0, 60.0, 50.0), _run("ce", 1, 62.0, 52.0), _run("ce", 2, 67.0, 57.0),
        _run("kl_uniform(lam=0.3)", 5, 70.0, 61.0),
    ])
    agg = aggregate_seeds(runs).set_index("objective")
    ce = agg.loc["ce"]
    assert ce["seeds"] == 3 and ce["seed_list"] == "0,1,2"
    assert ce["MaxBoxAccV2"] == pytest.approx(63.0)
    assert ce["MaxBoxAccV2_std"] == pytest.approx(math.sqrt((9 + 1 + 16) / 2))  # ddof = 1
    assert ce["val_MaxBoxAccV2"] == pytest.approx(53.0) and ce["val_MaxBoxAccV2_std"] == pytest.approx(math.sqrt(13))
    assert ce["config_hash"] == "hce0,hce1,hce2" and ce["name"] == "cam-ce"
    kl = agg.loc["kl_uniform(lam=0.3)"]
    assert kl["seeds"] == 1 and kl["seed_list"] == "5" and kl["MaxBoxAccV2"] == 70.0
    assert math.isnan(kl["MaxBoxAccV2_std"])  # one seed: no spread
    assert (kl["objective_name"], kl["strength_name"], kl["strength"]) == ("kl_uniform", "lam", 0.3)
    assert "seed_std" not in agg.columns and "strength_std" not in agg.columns  # not measurements


def test_each_strength_and_cam_is_its_own_setting():
    runs = pd.DataFrame([_run("kl_uniform(lam=0.3)", 0, 1.0, 1.0), _run("kl_uniform(lam=0.1)", 0, 2.0, 2.0),
                         _run("ce", 0, 3.0, 3.0, cam="gradcam"), _run("ce", 0, 4.0, 4.0)])
    agg = aggregate_seeds(runs)
    assert len(agg) == 4 and list(agg.columns[:len(SETTING)]) == list(SETTING)
    assert (agg["seeds"] == 1).all()


def test_the_same_seed_twice_in_a_setting_is_refused():
    runs = pd.DataFrame([_run("ce", 0, 60.0, 50.0, run_dir="/r/a"), _run("ce", 0, 61.0, 50.0, run_dir="/r/b")])
    with pytest.raises(DataError, match="2 runs with seed 0 .*/r/a, /r/b"):
        aggregate_seeds(runs)


def test_setting_label_names_method_objective_and_cam_when_asked():
    row = pd.Series({"method": "adl(drop_rate=0.75)", "objective": "kl_uniform(lam=0.3)", "cam": "gradcam"})
    assert setting_label(row) == "adl(drop_rate=0.75) + kl_uniform(lam=0.3)"
    assert setting_label(row, with_cam=True) == "adl(drop_rate=0.75) + kl_uniform(lam=0.3) · gradcam"


def test_record_row_derives_names_and_strength_for_old_records():
    """The committed quick-preset records predate method_name / objective_name / strength in the summary."""
    path = next((REPO / "leaderboards" / "synthetic-quick" / "records").glob("cam-kl_uniform-*/record.json"))
    record = json.loads(path.read_text())
    assert "strength" not in record["summary"]
    row = record_row(record, path.parent)
    assert (row["method_name"], row["objective_name"], row["strength_name"], row["strength"]) == (
        "cam", "kl_uniform", "lam", 0.3)
    assert row["val_MaxBoxAccV2"] == record["val"]["summary"]["MaxBoxAccV2"]
    assert row["MaxBoxAccV2"] == record["summary"]["MaxBoxAccV2"] and row["seed"] == 0
    assert row["run_dir"] == str(path.parent) and row["seconds"] == record["timings"]["total"]
    ce = json.loads(next(path.parent.parent.glob("cam-ce-*/record.json")).read_text())
    row = record_row(ce)
    assert (row["strength_name"], row["strength"], row["run_dir"]) == (None, None, None)


def test_record_row_keeps_names_new_records_carry():
    record = {"summary": {"name": "x", "objective": "label_smoothing(eps=0.2)", "method": "cam", "seed": 1,
                          "method_name": "cam", "objective_name": "label_smoothing", "strength_name": "eps",
                          "strength": 0.2},
              "objective": {"params": {"eps": 0.9}}, "config": {"seed": 1}}
    row = record_row(record)
    assert (row["strength_name"], row["strength"]) == ("eps", 0.2)  # the summary's, not re-derived


def test_runs_frame_takes_pairs_and_bare_records_and_orders_by_setting_then_seed(tmp_path):
    records = [json.loads(p.read_text()) for p in
               sorted((REPO / "leaderboards" / "synthetic-quick" / "records").glob("*/record.json"))]
    frame = runs_frame([(records[1], tmp_path), records[0]])
    assert list(frame["objective"]) == sorted(frame["objective"])
    assert frame["run_dir"].tolist().count(str(tmp_path)) == 1 and frame["run_dir"].isna().sum() == 1
    assert frame.columns[0] == "name" and frame.columns[-1] == "run_dir"
    assert np.isfinite(frame["val_PxAP"]).all()
