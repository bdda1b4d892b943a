"""Grids: expansion (counts, dedupe, routing of class parameters, names), grid files and flags, --dry-run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsolbench.bench import ResultsStore, expand_grid, plan_bench, plan_lines
from wsolbench.bench.grid import bench_configs
from wsolbench.bench.gridfile import axes_from_sets, grid_configs, read_grid_file, split_values
from wsolbench.bench.store import Owner
from wsolbench.cli import cli
from wsolbench.config import BENCH_OBJECTIVES, build_axis, preset
from wsolbench.errors import ConfigError
from wsolbench.records import new_record, write_record
from wsolbench.runner import run_dir


@pytest.fixture(scope="module")
def base():
    return preset("smoke")


def _summary(cfg):
    return (cfg.method.name, cfg.objective.to_dict(), cfg.seed)


def test_cross_product_counts_and_ce_is_not_repeated_per_lam(base):
    objectives, lams, seeds = ["ce", "kl_uniform", "label_smoothing"], [0.01, 0.1, 1.0], [0, 1, 2]
    configs = expand_grid(base, {"objective.name": objectives, "objective.lam": lams, "seed": seeds})
    # by hand: per seed, one ce, three kl_uniform (one per lam), one label_smoothing (lam is not its parameter)
    assert len(configs) == 3 * (1 + 3 + 1)
    assert len({c.config_hash() for c in configs}) == len(configs)
    ce = [c for c in configs if c.objective.name == "ce"]
    assert [c.seed for c in ce] == seeds
    kl = [c for c in configs if c.objective.name == "kl_uniform"]
    assert sorted((c.seed, c.objective.lam) for c in kl) == sorted((s, lam) for s in seeds for lam in lams)
    ls = [c for c in configs if c.objective.name == "label_smoothing"]
    assert all(c.objective.to_dict() == {"name": "label_smoothing", "eps": 0.1} for c in ls)  # its own default
    # the first order is kept: seed outermost, then the objectives as given, lam inside kl_uniform
    assert [_summary(c)[1]["name"] for c in configs[:5]] == ["ce", "kl_uniform", "kl_uniform", "kl_uniform",
                                                             "label_smoothing"]
    assert [c.objective.lam for c in configs[1:4]] == lams


def test_method_parameters_go_to_the_methods_that_have_them(base):
    configs = expand_grid(base, {"method.name": ["cam", "adl"], "method.drop_rate": [0.5, 0.75],
                                 "objective.name": ["ce"]})
    assert [(c.method.name, c.method.to_dict().get("drop_rate")) for c in configs] == [
        ("cam", None), ("adl", 0.5), ("adl", 0.75)]
    paired = expand_grid(base, {"method": [{"name": "adl", "drop_rate": 0.6}, "cam"],
                                "objective": ["ce", {"name": "kl_uniform", "lam": 1.0}]})
    assert [c.name for c in paired] == ["adl-drop_rate0.6-ce", "adl-drop_rate0.6-kl_uniform-lam1", "cam-ce",
                                        "cam-kl_uniform-lam1"]


def test_a_parameter_no_class_of_the_grid_has_is_refused(base):
    with pytest.raises(ConfigError, match=r"objective.lam is a parameter of none of the objectives .*\(ce, "
                                          r"label_smoothing\)"):
        expand_grid(base, {"objective.name": ["ce", "label_smoothing"], "objective.lam": [1.0]})
    with pytest.raises(ConfigError, match="method.drop_rate is a parameter of none of the methods"):
        expand_grid(base, {"method.drop_rate": [0.5]})  # the base's method, cam, has no drop_rate


@pytest.mark.parametrize("axes, needle", [
    ({"optim.lrr": [0.1]}, "unknown config key optim.lrr"),
    ({"optim.lr": [-1.0]}, "optim.lr must be > 0"),
    ({"seed": []}, "grid axis seed has no values"),
    ({"seed": [1, 1]}, "grid axis seed repeats 1"),
    ({"seed": 3}, "must be a list"),
    ({"name": ["x"]}, "'name' cannot be a grid axis"),
    ({"objective.name": ["nope"]}, "unknown objective 'nope'"),
])
def test_bad_axes_are_one_line_config_errors(base, axes, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as info:
        expand_grid(base, axes)
    assert "\n" not in str(info.value)


def test_names_say_what_varies_and_hashes_match_single_configs(base):
    configs = expand_grid(base, {"objective.name": ["ce", "kl_uniform"], "eval.cam": ["cam", "gradcam"],
                                 "seed": [0, 1]})
    assert [c.name for c in configs[:4]] == ["cam-ce-cam-s0", "cam-ce-gradcam-s0", "cam-kl_uniform-lam0.3-cam-s0",
                                             "cam-kl_uniform-lam0.3-gradcam-s0"]
    one_seed = expand_grid(dataclasses.replace(base, seed=7), {"objective.name": ["ce"]})
    assert [c.name for c in one_seed] == ["cam-ce"] and one_seed[0].seed == 7  # a single seed adds no part
    # a grid point is exactly the config built by hand
    by_hand = [dataclasses.replace(base, objective=build_axis("objective", name)).config_hash()
               for name in BENCH_OBJECTIVES]
    assert [c.config_hash() for c in bench_configs(base)] == by_hand
    assert [c.config_hash() for c in expand_grid(base, {"objective.name": list(BENCH_OBJECTIVES)})] == by_hand


def test_resources_do_not_change_the_hash(base):
    gpu = dataclasses.replace(base, resources=dataclasses.replace(base.resources, num_gpus=1.0, num_cpus=4.0))
    assert gpu.config_hash() == base.config_hash()
    assert expand_grid(base, {"resources.num_gpus": [0.5]})[0].resources.num_gpus == 0.5


def test_set_values_split_at_top_level_commas_only():
    assert split_values("0.1,1,[a,b],{x: 1, y: 2},'c,d'") == ["0.1", "1", "[a,b]", "{x: 1, y: 2}", "'c,d'"]
    axes = axes_from_sets(["objective.lam=0.1,1", "eval.iou_thresholds=[30,50,70]", "seed=1", "seed=2",
                           "objective=kl_uniform"])
    assert axes == {"objective.lam": [0.1, 1], "eval.iou_thresholds": [[30, 50, 70]], "seed": [1, 2],
                    "objective.name": ["kl_uniform"]}
    with pytest.raises(ConfigError, match="key=value"):
        axes_from_sets(["seed"])


def _grid_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def test_grid_file_and_flags_combine_flags_winning(tmp_path, base):
    path = _grid_file(tmp_path, "preset: smoke\nset:\n  optim.epochs: 2\n  objective.lam: 1.0\n"
                                "axes:\n  objective.name: [ce, kl_uniform]\n  seed: [0, 1]\n")
    grid = read_grid_file(path)
    assert grid.preset == "smoke"
    configs = grid_configs(base, grid=grid, flag_axes={})
    assert [(c.objective.name, c.seed) for c in configs] == [("ce", 0), ("kl_uniform", 0), ("ce", 1),
                                                             ("kl_uniform", 1)]
    assert all(c.optim.epochs == 2 for c in configs)
    assert [c.objective.lam for c in configs if c.objective.name == "kl_uniform"] == [1.0, 1.0]
    flags = axes_from_sets(["seed=5", "objective.lam=0.1,0.3"])
    mixed = grid_configs(base, grid=grid, flag_axes=flags)
    assert sorted((c.objective.name, c.objective.to_dict().get("lam"), c.seed) for c in mixed) == [
        ("ce", None, 5), ("kl_uniform", 0.1, 5), ("kl_uniform", 0.3, 5)]


@pytest.mark.parametrize("text, needles", [
    ("axis:\n  seed: [0]\n", ["unknown key 'axis'", "preset, set, axes"]),
    ("axes:\n  seed: 3\n", ["axes.seed must be a non-empty list"]),
    ("axes:\n  seed: [0\n", ["line"]),
    ("axes:\n  optim.lrr: [0.1]\n", ["unknown config key optim.lrr"]),
    ("axes:\n  objective.name: [ce]\n  objective.lam: [0.1]\n", ["objective.lam", "none of the objectives"]),
    ("set:\n  optim.lr: -1\n", ["optim.lr must be > 0"]),
])
def test_a_bad_grid_file_is_one_line_naming_file_and_key(tmp_path, text, needles):
    path = _grid_file(tmp_path, text)
    result = CliRunner().invoke(cli, ["bench", "--preset", "smoke", "--grid", str(path), "--dry-run",
                                      "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: grid file {path}"), result.stderr
    for needle in needles:
        assert needle in lines[0]


def _fake_record(cfg, output_dir: Path, seconds: float) -> None:
    """A record file as the runner writes it (the keys a reader checks), with a known total time."""
    cfg = cfg.with_name()
    record = new_record(name=cfg.name, config=cfg.to_dict(), config_hash=cfg.config_hash(),
                        summary={"name": cfg.name}, timings={"total": seconds})
    write_record(run_dir(cfg, output_dir) / "record.json", record)


def test_dry_run_statuses_and_estimate_from_finished_runs(tmp_path, base):
    out = tmp_path / "runs"
    configs = expand_grid(base, {"objective.name": ["ce", "kl_uniform"], "seed": [0, 1, 2]})  # 6 runs
    _fake_record(configs[0], out, 12.0)
    _fake_record(configs[1], out, 30.0)
    with ResultsStore(out) as store:
        failed, claimed = configs[2], configs[3]
        store.claim(failed.config_hash(), name=failed.name, run_dir="x")
        store.fail(failed.config_hash(), "training loss became non-finite")
    with ResultsStore(out, owner=Owner("elsewhere", 1)) as other:  # alive for all we know, beating now
        other.claim(claimed.config_hash(), name=claimed.name, run_dir="y")
    plan = plan_bench(configs, output_dir=out)
    assert [r.status for r in plan.runs] == ["done", "done", "failed", "claimed", "todo", "todo"]
    assert plan.mean_seconds == pytest.approx(21.0) and plan.seconds_left == pytest.approx(21.0 * 4)
    result = CliRunner().invoke(cli, ["bench", "--preset", "smoke", "--objective", "ce,kl_uniform", "--seeds", "0,1,2",
                                      "--dry-run", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "2/6 runs done (1 failed, 1 claimed, 2 todo)" in text
    assert "= 84.0 s (mean 21.0 s of 2 finished runs x 4 runs left" in text
    assert "non-finite" in text and "elsewhere:1" in text
    assert not list(out.glob("*/checkpoint.pt")) and len(list(out.rglob("record.json"))) == 2  # trained nothing


def test_dry_run_without_finished_runs_says_unknown_and_writes_nothing(tmp_path, base):
    out = tmp_path / "never"
    configs = expand_grid(base, {"seed": [0, 1]})
    assert plan_lines(plan_bench(configs, output_dir=out))[-1].startswith("time left: unknown")
    assert not out.exists()


def test_grid_file_runs_are_listed_by_the_cli(tmp_path):
    path = _grid_file(tmp_path, json.dumps({"preset": "smoke", "axes": {"method": ["cam", "adl"],
                                                                       "method.drop_rate": [0.5, 0.75]}}))
    result = CliRunner().invoke(cli, ["bench", "--grid", str(path), "--dry-run", "--output-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    names = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("todo")]
    assert names == ["cam-ce", "adl-drop_rate0.5-ce", "adl-drop_rate0.75-ce"]  # adl's strength is in its name


def test_a_bare_bench_is_both_built_in_datasets_times_the_objectives_times_three_seeds(tmp_path):
    from click.testing import CliRunner

    from wsolbench.cli import cli

    result = CliRunner().invoke(cli, ["bench", "--dry-run", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [line.split()[-1] for line in result.output.splitlines()
             if line.split() and line.split()[-1].startswith(("synthetic-", "digits-"))]
    assert len(names) == 24 and len(set(names)) == 24
    assert sum(n.startswith("digits-") for n in names) == 12
    assert {n.rsplit("-", 1)[-1] for n in names} == {"s0", "s1", "s2"}
    one = CliRunner().invoke(cli, ["bench", "--dry-run", "--preset", "smoke", "--output-dir", str(tmp_path)])
    assert len([line for line in one.output.splitlines() if line.split() and line.split()[-1].startswith("cam-")]) == 4
