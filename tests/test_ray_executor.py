"""The Ray executor on a local Ray started by the test: runs complete, a failing run is stored as failed."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from click.testing import CliRunner

from wsolbench.bench import ResultsStore, expand_grid, run_bench
from wsolbench.bench.ray_executor import task_resources
from wsolbench.cli import cli
from wsolbench.config import load_config, preset
from wsolbench.errors import ConfigError
from wsolbench.records import load_record
from wsolbench.runner import run_dir

TINY = {"threads": 1, "optim": {"epochs": 1}, "data": {"synthetic": {"n_train": 128, "n_val": 32, "n_test": 32}}}


def test_task_resources_follow_the_config_and_the_device():
    base = preset("smoke")
    cpu = dataclasses.replace(base, device="cpu")
    assert task_resources(cpu, cluster_gpus=8) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert task_resources(dataclasses.replace(base, device="cuda"), cluster_gpus=0)["num_gpus"] == 1.0
    assert task_resources(base, cluster_gpus=2)["num_gpus"] == 1.0  # auto on a cluster with GPUs
    assert task_resources(base, cluster_gpus=0)["num_gpus"] == 0.0
    assert task_resources(dataclasses.replace(cpu, threads=4), cluster_gpus=0)["num_cpus"] == 4.0
    shared = dataclasses.replace(base, resources=dataclasses.replace(base.resources, num_gpus=0.5, num_cpus=2))
    assert task_resources(shared, cluster_gpus=1) == {"num_cpus": 2.0, "num_gpus": 0.5}
    with pytest.raises(ConfigError, match="resources.num_gpus must be a number >= 0"):
        load_config(preset_name="smoke", overrides={"resources": {"num_gpus": -1}})


def test_without_ray_the_executor_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(cli, ["bench", "--preset", "smoke", "--objective", "ce", "--executor", "ray",
                                      "--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --executor ray needs Ray"), result.stderr
    assert 'pip install -e ".[ray]"' in lines[0]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_runs_complete_and_a_failing_run_is_stored_as_failed(tmp_path, local_ray):
    out = tmp_path / "runs"
    base = load_config(preset_name="smoke", overrides=TINY)
    good = expand_grid(base, {"objective.name": ["ce", "kl_uniform"]})
    diverges = expand_grid(dataclasses.replace(base, optim=dataclasses.replace(base.optim, lr=1e30)),
                           {"objective.name": ["ce"]})
    outcome = run_bench([good[0], diverges[0], good[1]], output_dir=out, executor="ray")
    assert sorted(r.record["name"] for r in outcome.trained) == sorted(c.name for c in good)
    assert [name for name, _ in outcome.failures] == [diverges[0].name]
    assert "non-finite" in outcome.failures[0][1] and "\n" not in outcome.failures[0][1]
    with ResultsStore(out) as store:
        for cfg in good:
            row = store.row(cfg.config_hash())
            assert (row.status, row.trainings) == ("complete", 1)
            assert load_record(run_dir(cfg, out) / "record.json")["config_hash"] == cfg.config_hash()
            assert row.owner == store.owner  # the driver writes the store
        failed = store.row(diverges[0].config_hash())
        assert failed.status == "failed" and "non-finite" in failed.error
    # a rerun on Ray retries the failed run only
    again = run_bench([*good, *diverges], output_dir=out, executor="ray")
    assert len(again.reused) == 2 and not again.trained and len(again.failures) == 1
    with ResultsStore(out) as store:
        assert store.row(diverges[0].config_hash()).claims == 2
        assert all(store.row(c.config_hash()).claims == 1 for c in good)


@pytest.mark.slow
def test_a_run_asking_more_than_the_cluster_has_is_refused(tmp_path, local_ray):
    cfg = expand_grid(load_config(preset_name="smoke", overrides={**TINY, "resources": {"num_gpus": 1}}),
                      {"objective.name": ["ce"]})[0]
    with pytest.raises(ConfigError, match=r"asks for 1 GPU\(s\) but the Ray cluster has 0"):
        run_bench([cfg], output_dir=tmp_path, executor="ray")
