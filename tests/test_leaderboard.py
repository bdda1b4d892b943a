"""`wsolbench leaderboard`: aggregated over seeds, compared with a baseline, compact Markdown, full CSVs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from test_significance import THRESHOLDS, _box_run, _ids, outcome_arrays, write_run
from wsolbench.cli import cli
from wsolbench.records import load_outcomes
from wsolbench.report.leaderboard import compact_table, leaderboard_frame, runs_frame, sort_leaderboard, with_run_dirs
from wsolbench.report.significance import run_scores, whole_split_value


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _mixed(n: int, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Boxes right on ``fraction`` of the images (a different subset per seed) and pixel histograms."""
    rng = np.random.default_rng(seed)
    arrays = _box_run(n, rng.uniform(size=n) < fraction)
    arrays.update(outcome_arrays(_ids(n), fg=rng.integers(1, 40, (n, len(THRESHOLDS) + 2)) * (1 + fraction),
                                 bg=rng.integers(1, 40, (n, len(THRESHOLDS) + 2))))
    return arrays


@pytest.fixture()
def two_settings(tmp_path) -> Path:
    """ce and kl_uniform(lam=0.3), three seeds each; kl right on about 90 % of the images, ce on about 50 %."""
    root = tmp_path / "runs"
    for seed in range(3):
        write_run(root, "cam-ce", _mixed(200, 0.5, seed), seed=seed)
        write_run(root, "cam-kl_uniform-lam0.3", _mixed(200, 0.9, 10 + seed), seed=seed,
                  objective="kl_uniform(lam=0.3)")
    return root


def test_markdown_is_compact_and_says_what_the_numbers_are(two_settings, tmp_path):
    out = tmp_path / "board"
    result = invoke("leaderboard", two_settings, "--output-dir", out, "--bootstrap", "300")
    assert result.exit_code == 0, result.output
    md = (out / "leaderboard.md").read_text()
    for phrase in ("Test split, percent", "mean ± sample std over seeds (3 per setting", "95% paired bootstrap",
                   "300 resamples", "baseline objective `ce`", "Sorted by MaxBoxAccV2"):
        assert phrase in md, phrase
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and set(runs["seed"]) == {0, 1, 2}
    table = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["setting", "MaxBoxAccV2 %", "GT-known Loc %", "Top-1 Loc %", "PxAP %",
                      "Δ MaxBoxAccV2 vs ce (points)", "seeds"]  # units in the headers
    kl, ce = ([c.strip() for c in line.strip("|").split("|")] for line in table[2:4])  # best first
    assert kl[0] == "cam + kl_uniform(lam=0.3)" and ce[0] == "cam + ce" and ce[5] == "baseline"
    values = runs[runs["objective"] == "kl_uniform(lam=0.3)"]["MaxBoxAccV2"]
    assert kl[1] == f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"  # rounding of the unrounded runs
    assert re.fullmatch(r"\+\d+\.\d\d \[\+\d+\.\d\d, \+\d+\.\d\d\] \*", kl[5]), kl[5]
    agg = pd.read_csv(out / "leaderboard.csv").set_index("objective")
    assert agg.loc["kl_uniform(lam=0.3)", "seeds"] == 3
    diff = values.mean() - runs[runs["objective"] == "ce"]["MaxBoxAccV2"].mean()
    assert agg.loc["kl_uniform(lam=0.3)", "MaxBoxAccV2_diff"] == pytest.approx(diff, abs=1e-4)
    assert agg.loc["kl_uniform(lam=0.3)", "MaxBoxAccV2_low"] < diff < agg.loc["kl_uniform(lam=0.3)", "MaxBoxAccV2_high"]
    for metric in ("GT-known Loc", "Top-1 Loc", "PxAP"):
        assert {f"{metric}_diff", f"{metric}_low", f"{metric}_high", f"{metric}_std"} <= set(agg.columns)
    assert "val_MaxBoxAccV2_std" in agg.columns and agg.loc["ce", "baseline"] != agg.loc["ce", "baseline"]  # NaN


def test_bootstrap_zero_gives_differences_only_and_bad_options_are_refused(two_settings, tmp_path):
    out = tmp_path / "board"
    assert invoke("leaderboard", two_settings, "--output-dir", out, "--bootstrap", "0").exit_code == 0
    md = (out / "leaderboard.md").read_text()
    cells = [line.split("|")[-3].strip() for line in md.splitlines() if line.startswith("| cam")]
    assert "baseline" in cells and all("[" not in c for c in cells)
    result = invoke("leaderboard", two_settings, "--output-dir", out, "--sort-by", "Top-5 Loc")
    assert result.exit_code == 2 and "unknown metric 'Top-5 Loc'" in result.output
    result = invoke("leaderboard", two_settings, "--output-dir", out, "--baseline", "dataset=cub")
    assert result.exit_code == 2 and "the axis must be one of" in result.output


def test_sorted_by_the_chosen_metric_within_each_dataset_and_backbone():
    agg = pd.DataFrame({"dataset": ["b", "a", "a", "a"], "backbone": "x", "method": "cam",
                        "objective": ["ce", "p", "q", "r"], "cam": "cam", "seeds": 1,
                        "MaxBoxAccV2": [90.0, 50.0, 70.0, 60.0], "PxAP": [1.0, 80.0, 40.0, 60.0]})
    assert list(sort_leaderboard(agg, "MaxBoxAccV2")["objective"]) == ["q", "r", "p", "ce"]
    assert list(sort_leaderboard(agg, "PxAP")["objective"]) == ["p", "r", "q", "ce"]


def test_multi_label_shows_map_and_mpxap_instead_of_top1_and_pxap():
    agg = pd.DataFrame({"dataset": "voc", "backbone": "x", "method": "cam", "objective": ["ce"], "cam": "cam",
                        "seeds": 2, "top1": 10.0, "top1_std": 1.0, "mAP": 55.0, "mAP_std": 2.5, "PxAP": 30.0,
                        "mPxAP": 27.5, "mPxAP_std": 0.25, "MaxBoxAccV2": 66.0, "MaxBoxAccV2_std": 1.0})
    table = compact_table(agg)
    assert list(table.columns) == ["setting", "mAP", "MaxBoxAccV2", "mPxAP", "seeds"]
    assert table.iloc[0].tolist() == ["cam + ce", "55.00 ± 2.50", "66.00 ± 1.00", "27.50 ± 0.25", "2"]


def test_common_seeds_only_and_the_note_when_fewer(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_run(root, "kl", _mixed(100, 0.9, seed), seed=seed, objective="kl_uniform(lam=1)")
    for seed in (1, 2, 7):
        write_run(root, "ce", _mixed(100, 0.5, 20 + seed), seed=seed)
    runs = runs_frame([(json.loads((p / "record.json").read_text()), p) for p in sorted(root.iterdir())])
    agg = leaderboard_frame(runs, n_resamples=100).set_index("objective")
    assert agg.loc["kl_uniform(lam=1)", "interval_seeds"] == "1,2"
    mine, theirs = (runs[(runs["objective"] == o) & runs["seed"].isin([1, 2])]["MaxBoxAccV2"].mean()
                    for o in ("kl_uniform(lam=1)", "ce"))
    assert agg.loc["kl_uniform(lam=1)", "MaxBoxAccV2_diff"] == pytest.approx(mine - theirs, abs=1e-12)
    cell = compact_table(agg.reset_index()).set_index("setting").loc["cam + kl_uniform(lam=1)"]
    assert cell["Δ MaxBoxAccV2 vs baseline"].endswith("(seeds 1,2)")


def test_baseline_on_another_axis_and_groups_per_dataset(tmp_path):
    root = tmp_path / "runs"
    for dataset in ("alpha", "beta"):
        write_run(root / dataset, "cam-ce", _mixed(80, 0.5, 1), dataset=dataset)
        write_run(root / dataset, "has-ce", _mixed(80, 0.8, 2), dataset=dataset, method="has(drop_rate=0.5)")
    out = tmp_path / "board"
    result = invoke("leaderboard", root, "--output-dir", out, "--baseline", "method=cam", "--bootstrap", "100")
    assert result.exit_code == 0, result.output
    md = (out / "leaderboard.md").read_text()
    assert "## alpha / small_cnn" in md and "## beta / small_cnn" in md
    assert md.count("| baseline") == 2 and "Δ MaxBoxAccV2 vs method=cam" in md
    assert "baseline method `cam` of the same dataset, backbone, objective, cam" in md
    agg = pd.read_csv(out / "leaderboard.csv")
    assert set(agg[agg["method"] == "has(drop_rate=0.5)"]["baseline"]) == {"cam"}


def test_mask_only_dataset_shows_pxap_and_its_difference(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for objective, scale in (("ce", 1), ("kl_uniform(lam=1)", 3)):
        for seed in (0, 1):
            fg = rng.integers(1, 40, (60, len(THRESHOLDS) + 2))
            fg[:, -3:] *= scale  # more foreground in the high bins: better PxAP
            write_run(root, objective[:2], outcome_arrays(_ids(60), fg=fg, bg=rng.integers(1, 40, fg.shape)),
                      seed=seed, objective=objective)
    agg = leaderboard_frame([(json.loads((p / "record.json").read_text()), p) for p in sorted(root.iterdir())],
                            n_resamples=100)
    table = compact_table(agg, baseline="ce")
    assert list(table.columns) == ["setting", "PxAP", "Δ PxAP vs ce", "seeds"]
    assert table.iloc[0]["setting"] == "cam + kl_uniform(lam=1)" and "*" in table.iloc[0]["Δ PxAP vs ce"]


def test_records_without_outcomes_get_a_difference_but_no_interval(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "ce", None, summary={"MaxBoxAccV2": 50.0, "top1": 90.0})
    write_run(root, "kl", None, summary={"MaxBoxAccV2": 53.5, "top1": 91.0}, objective="kl_uniform(lam=1)")
    out = tmp_path / "board"
    assert invoke("leaderboard", root, "--output-dir", out).exit_code == 0
    row = pd.read_csv(out / "leaderboard.csv").set_index("objective").loc["kl_uniform(lam=1)"]
    assert row["MaxBoxAccV2_diff"] == pytest.approx(3.5) and math.isnan(row["MaxBoxAccV2_low"])
    assert "| +3.50 " in (out / "leaderboard.md").read_text()


def test_with_published_shows_the_same_dataset_and_backbone(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "cam-ce", _mixed(40, 0.5, 0), dataset="cub", backbone="resnet50_wsol")
    out = tmp_path / "board"
    assert invoke("leaderboard", root, "--output-dir", out, "--with-published").exit_code == 0
    md = (out / "leaderboard.md").read_text()
    published = md.split("Published numbers for cub / resnet50_wsol", 1)[1]
    assert "54.81" in published and "CutMix-PyTorch" in published and "UNVERIFIED" in published
    assert "vgg16_wsol" not in published  # other backbones stay out
    write_run(tmp_path / "syn", "cam-ce", _mixed(40, 0.5, 0))
    assert invoke("leaderboard", tmp_path / "syn", "--output-dir", out, "--with-published").exit_code == 0
    assert "No published numbers for synthetic / small_cnn" in (out / "leaderboard.md").read_text()


def test_bare_records_find_their_run_folders_by_config_hash(two_settings):
    records = [json.loads(p.read_text()) for p in sorted(two_settings.glob("*/record.json"))]
    pairs = with_run_dirs(records, two_settings)
    assert [str(d) for _, d in pairs] == [str(p.parent) for p in sorted(two_settings.glob("*/record.json"))]
    assert with_run_dirs([{"config_hash": "nope"}], two_settings) == [({"config_hash": "nope"}, None)]


@pytest.mark.slow
def test_real_smoke_runs_with_two_seeds(tmp_path):
    """Four trained runs (ce and kl_uniform, seeds 0 and 1): the leaderboard's means, stds and differences
    are those of the records, and every recomputed whole-split number equals its record's."""
    runs = tmp_path / "runs"
    for objective in ("ce", "kl_uniform"):
        for seed in ("0", "1"):
            result = invoke("train", "--preset", "smoke", "--objective", objective, "--seed", seed, "--threads", "1",
                            "--output-dir", runs, "--no-progress")
            assert result.exit_code == 0, result.output
    records = sorted(runs.glob("*/record.json"))
    assert len(records) == 4
    for path in records:
        record = json.loads(path.read_text())
        scores = run_scores(load_outcomes(path.parent, "test"))
        for metric in ("MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP"):
            assert whole_split_value(scores, metric) == record["summary"][metric], (path.parent.name, metric)
    out = tmp_path / "board"
    result = invoke("leaderboard", runs, "--output-dir", out)
    assert result.exit_code == 0, result.output
    agg = pd.read_csv(out / "leaderboard.csv").set_index("objective_name")
    by_run = pd.read_csv(out / "runs.csv")
    assert len(agg) == 2 and (agg["seeds"] == 2).all()
    for name in ("ce", "kl_uniform"):
        values = by_run[by_run["objective_name"] == name]["MaxBoxAccV2"]
        assert agg.loc[name, "MaxBoxAccV2"] == pytest.approx(values.mean(), abs=0.006)
        assert agg.loc[name, "MaxBoxAccV2_std"] == pytest.approx(abs(values.iloc[0] - values.iloc[1]) / math.sqrt(2),
                                                               abs=0.006)
    kl = agg.loc["kl_uniform"]
    assert kl["interval_seeds"] == "0,1" and kl["interval_images"] == 128
    assert kl["MaxBoxAccV2_low"] <= kl["MaxBoxAccV2_diff"] <= kl["MaxBoxAccV2_high"]
    assert (out / "entropy_vs_accuracy.png").stat().st_size > 0
