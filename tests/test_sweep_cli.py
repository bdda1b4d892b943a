"""wsolbench sweep: the runs it makes, and the strength it reports chosen on val (recomputed from the records)."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest
from click.testing import CliRunner

from wsolbench.bench.sweep import SweepLine, lines_from_flags, parse_objective, sweep_configs, with_fixed
from wsolbench.cli import cli
from wsolbench.config import load_config
from wsolbench.errors import ConfigError


def _base():
    return load_config(preset_name="smoke")


def test_a_sweep_is_the_baseline_and_every_strength_times_every_seed():
    lines = (SweepLine("kl_uniform", (0.01, 0.1, 1.0)), SweepLine("label_smoothing", (0.05, 0.1)))
    configs = sweep_configs(_base(), lines, seeds=[0, 1])
    labels = [(c.objective.name, c.objective.to_dict().get("lam", c.objective.to_dict().get("eps")), c.seed)
              for c in configs]
    assert len(configs) == (1 + 3 + 2) * 2 and len({c.config_hash() for c in configs}) == 12
    assert labels[:2] == [("ce", None, 0), ("ce", None, 1)]
    assert sorted(v for n, v, s in labels if n == "kl_uniform" and s == 1) == [0.01, 0.1, 1.0]
    assert {c.name for c in configs if c.seed == 1 and c.objective.name == "ce"} == {"cam-ce-s1"}


def test_a_line_with_fixed_parameters_is_its_own_line_and_shared_runs_run_once():
    lines = (SweepLine("kl_uniform", (0.1, 1.0)),
             SweepLine("kl_uniform", (0.1, 1.0), {"normalize_loss_scale": True}),
             SweepLine("kl_uniform", (1.0,)))  # the same config as the first line's lam=1: once
    configs = sweep_configs(_base(), lines, seeds=[0])
    kl = [c.objective.to_dict() for c in configs if c.objective.name == "kl_uniform"]
    assert len(configs) == 5 and len(kl) == 4
    assert sum(d["normalize_loss_scale"] for d in kl) == 2


def test_flags_and_objective_specs():
    assert parse_objective("kl_uniform(normalize_loss_scale=true, lam=2)") == (
        "kl_uniform", {"normalize_loss_scale": True, "lam": 2})
    lines = lines_from_flags(["kl_uniform", "label_smoothing"], ["1e-4,1e-3", "0.1"])
    assert lines[0].values == (1e-4, 1e-3) and lines[1].strength() == "eps"
    for objectives, values, match in ((["kl_uniform"], [], "1 --objective but 0 --values"),
                                      ([], [], "needs --objective"),
                                      (["kl_uniform"], ["0.1,x"], "comma-separated numbers"),
                                      (["kl_uniform"], ["0.1,0.1"], "repeat"),
                                      (["kl_uniform(lam"], ["1"], "NAME or NAME")):
        with pytest.raises(ConfigError, match=match):
            lines_from_flags(objectives, values)
    with pytest.raises(ConfigError, match="no strength to sweep"):
        SweepLine("ce", (1.0,)).strength()
    fixed = with_fixed(lines, {"normalize_loss_scale": True})
    assert fixed[0].fixed == {"normalize_loss_scale": True} and fixed[1].fixed == {}  # only kl_uniform has it
    with pytest.raises(ConfigError, match="what the sweep varies"):
        with_fixed(lines, {"lam": 1.0})
    with pytest.raises(ConfigError, match="none of the swept objectives"):
        with_fixed(lines, {"bogus": 1})


TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress"]


@pytest.mark.slow
def test_the_reported_strength_is_the_best_val_mean_over_seeds(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", *TINY, "--objective", "kl_uniform", "--values", "0.1,3",
                                      "--seeds", "0,1", "--output-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    val, test = defaultdict(list), defaultdict(list)
    for path in tmp_path.glob("*/record.json"):
        record = json.loads(path.read_text())
        key = record["summary"]["objective"]
        val[key].append(record["val"]["summary"]["MaxBoxAccV2"])
        test[key].append(record["test"]["summary"]["MaxBoxAccV2"])
    assert sorted(len(v) for v in val.values()) == [2, 2, 2]
    mean = {k: sum(v) / len(v) for k, v in val.items() if k != "ce"}
    best = max(sorted(mean, key=lambda k: float(re.search(r"lam=([\d.]+)", k).group(1))), key=mean.get)
    text = (tmp_path / "sweep.md").read_text()
    chosen = next(line for line in text.splitlines() if line.startswith("| chosen"))
    assert f"| {best} " in chosen
    assert f"{sum(test[best]) / 2:.2f}" in chosen  # test reported at that strength, not chosen on test
    for name in ("leaderboard.md", "entropy_vs_accuracy.png", "threshold_sweeps.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_the_entropy_sweep_preset_crosses_both_datasets_with_every_line_and_seed(tmp_path):
    from wsolbench.bench.sweep import SWEEP_PRESETS

    result = CliRunner().invoke(cli, ["sweep", "--preset", "entropy", "--dry-run", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [line.split()[-1] for line in result.output.splitlines() if line.startswith("todo")]
    preset = SWEEP_PRESETS["entropy"]
    assert len(names) == len(set(names)) == preset.runs() == 2 * (1 + 4 + 4 + 4) * 2
    for dataset in ("synthetic", "digits"):
        mine = [n for n in names if n.startswith(f"{dataset}-")]
        assert len(mine) == 26 and sum("-ce-" in n for n in mine) == 2
        assert sum("normalize_loss_scale" in n for n in mine) == 8 and sum("label_smoothing" in n for n in mine) == 8
    # label smoothing at the effective smoothing lam / (1 + lam) of the KL-uniform strengths (0.05 ~ 0.0476)
    kl, ls = preset.lines[0].values, preset.lines[2].values
    assert [round(v, 2) for v in ls] == [round(lam / (1 + lam), 2) if lam > 0.1 else 0.05 for lam in kl]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # a dry run writes nothing
    refused = CliRunner().invoke(cli, ["sweep", "--preset", "entropy", "--dataset", "digits", "--dry-run"])
    assert refused.exit_code == 2 and "names its own datasets" in refused.output
    one_line = CliRunner().invoke(cli, ["sweep", "--preset", "entropy", "--objective", "kl_uniform", "--values",
                                        "1", "--seeds", "0", "--dry-run", "--output-dir", str(tmp_path)])
    assert sum(line.startswith("todo") for line in one_line.output.splitlines()) == 2 * 2  # ce + lam 1, per dataset
