"""Executing grids: resume after a dead owner, retries of failed runs only, a lost store rebuilt, usage errors
stopping the bench, and several bench processes sharing one output folder (each run trained once)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

from wsolbench.bench import ResultsStore, expand_grid, run_bench
from wsolbench.bench.store import STORE_FILE, Owner
from wsolbench.config import load_config
from wsolbench.engine import checkpoint as ckpt
from wsolbench.errors import WsolbenchError
from wsolbench.records import load_record
from wsolbench.runner import CHECKPOINT_FILE, run_dir

pytestmark = pytest.mark.slow

#: The smoke preset, smaller still: a run trains in about a second on one thread.
TINY = {"threads": 1, "optim": {"epochs": 2}, "data": {"synthetic": {"n_train": 128, "n_val": 32, "n_test": 32}}}
TINY_SETS = ["--set", "optim.epochs=1", "--set", "data.synthetic.n_train=128", "--set", "data.synthetic.n_val=32",
             "--set", "data.synthetic.n_test=32"]


def _tiny(**overrides):
    return load_config(preset_name="smoke", overrides={**TINY, **overrides})


def _dead_owner() -> Owner:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return Owner(Owner.current().host, int(proc.stdout))


class _Killed(BaseException):
    """Stands for a kill -9 after the first epoch's checkpoint."""


def test_rerun_skips_the_finished_run_and_resumes_the_interrupted_one(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    done, interrupted = expand_grid(_tiny(), {"objective.name": ["ce", "kl_uniform"]})
    assert run_bench([done], output_dir=out).trained[0].record["config_hash"] == done.config_hash()

    import wsolbench.runner as runner

    class KilledAfterFirstEpoch(runner.Checkpointer):
        def on_epoch_end(self, state, row):
            super().on_epoch_end(state, row)
            raise _Killed

    monkeypatch.setattr(runner, "Checkpointer", KilledAfterFirstEpoch)
    with pytest.raises(_Killed):
        run_bench([interrupted], output_dir=out)
    monkeypatch.undo()
    state_path = run_dir(interrupted, out) / CHECKPOINT_FILE
    with ResultsStore(out) as store:
        assert store.row(interrupted.config_hash()) is None  # an interrupted run is released
    # as if the process had been killed holding its claim: a claim of a pid that no longer exists
    dead = _dead_owner()
    with ResultsStore(out, owner=dead) as store:
        assert store.claim(interrupted.config_hash(), name=interrupted.name, run_dir="x").ok
    # mark the checkpoint: a resumed run keeps the first epoch's history row, a retrained one would not
    state = ckpt.load(state_path)
    assert len(state["history"]) == 1  # one epoch of two done
    state["history"][0]["loss"] = 123.0
    ckpt.save(state_path, state)

    outcome = run_bench([done, interrupted], output_dir=out)
    assert [r.record["name"] for r in outcome.reused] == [done.name]
    assert [r.record["name"] for r in outcome.trained] == [interrupted.name]
    record = load_record(run_dir(interrupted, out) / "record.json")
    assert [h["loss"] for h in record["history"]][0] == 123.0 and len(record["history"]) == 2
    assert not state_path.exists()
    with ResultsStore(out) as store:
        assert store.row(done.config_hash()).trainings == 1 and store.row(done.config_hash()).claims == 1
        row = store.row(interrupted.config_hash())
        assert row.status == "complete" and row.trainings == 1
        events = [(e["event"], e["detail"]) for e in store.events(interrupted.config_hash())]
        assert events == [("claim", "new"), ("release", "interrupted"), ("claim", "new"),
                          ("claim", f"stale (was {dead})"), ("complete", "trained")]


def test_a_rerun_retries_only_failed_runs_and_a_lost_store_is_rebuilt(tmp_path):
    out = tmp_path / "runs"
    good = expand_grid(_tiny(**{"optim": {"epochs": 1}}), {"objective.name": ["ce"]})[0]
    diverges = expand_grid(_tiny(**{"optim": {"epochs": 1, "lr": 1e30}}), {"objective.name": ["ce"]})[0]
    first = run_bench([good, diverges], output_dir=out)
    assert len(first.trained) == 1 and [n for n, _ in first.failures] == [diverges.name]
    assert "non-finite" in first.failures[0][1]
    second = run_bench([good, diverges], output_dir=out)
    assert [r.record["name"] for r in second.reused] == [good.name] and not second.trained
    assert len(second.failures) == 1
    with ResultsStore(out) as store:
        assert store.row(good.config_hash()).claims == 1  # not tried again
        failed = store.row(diverges.config_hash())
        assert failed.status == "failed" and failed.claims == 2 and "non-finite" in failed.error
    (out / STORE_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (out / (STORE_FILE + suffix)).unlink(missing_ok=True)
    third = run_bench([good], output_dir=out)
    assert len(third.reused) == 1 and not third.trained
    with ResultsStore(out) as store:
        row = store.row(good.config_hash())
        assert row.status == "complete" and row.trainings == 0
        assert store.record(good.config_hash())["config_hash"] == good.config_hash()
        assert [e["event"] for e in store.events(good.config_hash())] == ["mirror"]


def test_a_usage_error_stops_the_bench(tmp_path):
    out = tmp_path / "runs"
    (tmp_path / "empty").mkdir()  # a folder without a manifest: found when the run starts (a missing one, before)
    missing = expand_grid(_tiny(**{"data": {"dataset": "manifest", "manifest": str(tmp_path / "empty")}}),
                          {"objective.name": ["ce"]})[0]
    after = expand_grid(_tiny(), {"objective.name": ["ce"]})[0]
    with pytest.raises(WsolbenchError) as info:
        run_bench([missing, after], output_dir=out)
    assert info.value.exit_code == 2
    assert not run_dir(after, out).exists()  # never started
    with ResultsStore(out) as store:
        assert store.row(missing.config_hash()).status == "failed" and store.row(after.config_hash()) is None


def test_three_bench_processes_share_one_grid(tmp_path):
    out = tmp_path / "runs"
    axes = ["--objective", "ce,kl_uniform,label_smoothing", "--seeds", "0,1"]
    command = [sys.executable, "-m", "wsolbench.cli", "bench", "--preset", "smoke", "--threads", "1", "--no-progress",
               "--output-dir", str(out), *axes, *TINY_SETS]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    started = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    wall = time.perf_counter() - started
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err
    trained = [int(re.search(r"bench: 6 runs: (\d+) trained here", err).group(1)) for _, err in results]
    assert sum(trained) == 6, [err for _, err in results]

    configs = expand_grid(load_config(preset_name="smoke", overrides={**TINY, "optim": {"epochs": 1}}),
                          {"objective.name": ["ce", "kl_uniform", "label_smoothing"], "seed": [0, 1]})
    assert len(configs) == 6
    with ResultsStore(out) as store:
        for cfg in configs:
            record = load_record(run_dir(cfg, out) / "record.json")
            assert record["config_hash"] == cfg.config_hash() and record["name"] == cfg.name
            row = store.row(cfg.config_hash())
            assert (row.status, row.claims, row.trainings) == ("complete", 1, 1), cfg.name
            events = [e["event"] for e in store.events(cfg.config_hash())]
            assert events == ["claim", "complete"], (cfg.name, events)
        assert len(store.rows()) == 6
    # the last leaderboard written holds every run: 3 settings x 2 seeds
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 3 and board["seeds"].sum() == 6
    print(f"3 processes, 6 runs: {wall:.1f} s wall, trained per process {trained}")
