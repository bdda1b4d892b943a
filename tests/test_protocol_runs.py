"""Runs under one identical protocol: same batches and init across objectives, determinism,
kill-and-resume, NaN handling, and distributed data parallel on CPU (gloo, 2 processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import plugin_method  # noqa: F401  (registers the test method test_aux_masks)
from wsolbench.config import load_config
from wsolbench.engine import TrainingDiverged
from wsolbench.engine import checkpoint as ckpt
from wsolbench.methods.cam import VanillaCam
from wsolbench.runner import (CHECKPOINT_FILE, PARTIAL_RECORD_FILE, build_method, prepare_manifest, run_dir,
                              train_and_evaluate, train_loader)

pytestmark = pytest.mark.slow

TINY = {
    "preset": "smoke",
    "threads": 1,
    "data": {"batch_size": 32, "eval_batch_size": 64,
             "synthetic": {"num_classes": 3, "n_train": 128, "n_val": 48, "n_test": 48}},
    "model": {"width": 8},
    "optim": {"epochs": 3},
    "train": {"checkpoint_every": 1},
}


def _config(tmp_path: Path, **overrides):
    data = yaml.safe_load(yaml.safe_dump(TINY))
    for key, value in overrides.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    data["data"]["data_dir"] = str(tmp_path / "data")
    path = tmp_path / f"config-{abs(hash(json.dumps(data, sort_keys=True)))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(preset_name=None, path=path)


def _scores(record):
    history = [{k: h[k] for k in ("loss", "top1", "entropy", "lr")} for h in record["history"]]
    return history, record["val"]["summary"], record["test"]["summary"]


def test_objectives_see_the_same_batches_and_the_same_initialisation(tmp_path):
    _, ce = _config(tmp_path, **{"objective.name": "ce"})
    _, kl = _config(tmp_path, **{"objective.name": "kl_uniform"})
    manifest = prepare_manifest(ce, tmp_path)
    batches = []
    for cfg in (ce, kl):
        loader, sampler = train_loader(cfg, manifest)
        sampler.set_epoch(1)
        it = iter(loader)
        batches.append([next(it) for _ in range(2)])
        torch.manual_seed(123)  # whatever else a run does with the global RNG must not matter
    for a, b in zip(*batches):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    init_ce = build_method(ce, manifest.num_classes).net.state_dict()
    init_kl = build_method(kl, manifest.num_classes).net.state_dict()
    assert all(torch.equal(init_ce[k], init_kl[k]) for k in init_ce)
    # and the order really is shuffled per epoch
    loader, sampler = train_loader(ce, manifest)
    sampler.set_epoch(2)
    assert not torch.equal(next(iter(loader))["image"], batches[0][0]["image"])


def test_same_config_gives_the_same_numbers_twice(tmp_path):
    _, cfg = _config(tmp_path)
    first = train_and_evaluate(cfg, output_dir=tmp_path / "a").record
    second = train_and_evaluate(cfg, output_dir=tmp_path / "b").record
    assert _scores(first) == _scores(second)


_WITH_TEST_METHOD = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import plugin_method; "
                     "from wsolbench.cli import main; sys.argv[0] = 'wsolbench'; main()")


def _cli(*args: str) -> list[str]:
    """The CLI in a new process, with the test method registered."""
    return [sys.executable, "-c", _WITH_TEST_METHOD, *args]


def test_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    """A method with its own parameters, random masks and two phases: kill -9 mid-epoch, resume, and get
    bit-identical history, metrics, per-image outcomes and final weights."""
    path, cfg = _config(tmp_path, **{"optim.epochs": 3, "method.name": plugin_method.NAME})
    env = {**os.environ, "MPLBACKEND": "Agg"}
    reference = subprocess.run(_cli("train", "-c", str(path), "--output-dir", str(tmp_path / "ref"),
                                    "--no-progress"), env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr
    ref_record = json.loads((run_dir(cfg, tmp_path / "ref") / "record.json").read_text())

    out = tmp_path / "killed"
    state_path = run_dir(cfg, out) / CHECKPOINT_FILE
    proc = subprocess.Popen(_cli("train", "-c", str(path), "--output-dir", str(out), "--no-progress"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if state_path.exists():
                state = ckpt.load(state_path)
                if state["epoch"] == 2 and state["step"] >= 1:  # mid-epoch 2
                    proc.send_signal(signal.SIGKILL)
                    killed_at = (state["epoch"], state["step"])
                    break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert killed_at is not None, "the run ended before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir(cfg, out) / "record.json").exists()

    refused = subprocess.run(_cli("train", "-c", str(path), "--output-dir", str(out), "--no-progress"),
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # an unfinished run is never overwritten

    resumed = subprocess.run(_cli("train", "-c", str(path), "--output-dir", str(out), "--resume", "--no-progress"),
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch" in resumed.stderr
    record = json.loads((run_dir(cfg, out) / "record.json").read_text())
    assert _scores(record) == _scores(ref_record)
    assert not state_path.exists()
    ref_weights = ckpt.load(run_dir(cfg, tmp_path / "ref") / "model.pt")["method"]
    weights = ckpt.load(run_dir(cfg, out) / "model.pt")["method"]
    assert {"aux.weight", "aux.bias", "gate"} <= set(weights)
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
    for split in ("val", "test"):
        a = np.load(run_dir(cfg, out) / f"outcomes-{split}.npz")
        b = np.load(run_dir(cfg, tmp_path / "ref") / f"outcomes-{split}.npz")
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _, cfg = _config(tmp_path, **{"train.checkpoint_every": 0})
    calls = {"n": 0}
    real = VanillaCam.training_step

    def poisoned(self, batch, ctx):
        out = real(self, batch, ctx)
        calls["n"] += 1
        if calls["n"] == 6:  # 4 steps per epoch: epoch 2, step 1
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(VanillaCam, "training_step", poisoned)
    with pytest.raises(TrainingDiverged, match="epoch 2, step 1"):
        train_and_evaluate(cfg, output_dir=tmp_path / "runs")
    folder = run_dir(cfg, tmp_path / "runs")
    state = ckpt.load(folder / CHECKPOINT_FILE)
    assert (state["epoch"], state["step"]) == (2, 0)
    partial = json.loads((folder / PARTIAL_RECORD_FILE).read_text())
    assert partial["status"] == "failed" and "epoch 2, step 1" in partial["error"]
    assert len(partial["history"]) == 1 and not (folder / "record.json").exists()


@pytest.mark.parametrize("method", ["cam", plugin_method.NAME])
def test_distributed_data_parallel_on_cpu_with_gloo(tmp_path, method):
    """Two processes; the test method has two phases in which different parameters get gradients."""
    path, cfg = _config(tmp_path, **{"optim.epochs": 1, "train.checkpoint_every": 0, "method.name": method})
    prepare_manifest(cfg, tmp_path)  # generate the data once, outside the timed launch
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    launcher = tmp_path / "launch.py"
    launcher.write_text(_WITH_TEST_METHOD.replace("; ", "\n"))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(launcher), "train", "-c", str(path), "--device", "cpu",
                             "--output-dir", str(tmp_path / "ddp"), "--no-progress"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir(load_config(preset_name=None, path=path, overrides={"device": "cpu"}),
                                 tmp_path / "ddp") / "record.json").read_text())
    assert record["environment"]["world_size"] == 2
    # each rank saw half of every epoch; the merged accumulators counted every val/test image once
    assert record["history"][0]["images"] == TINY["data"]["synthetic"]["n_train"] // 2
    assert record["val"]["boxes"]["count"] == TINY["data"]["synthetic"]["n_val"]
    assert record["test"]["classification"]["count"] == TINY["data"]["synthetic"]["n_test"]


def test_tensorboard_scalars_and_best_on_val_selection(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, cfg = _config(tmp_path, **{"optim.epochs": 2, "train.checkpoint_every": 0, "train.tensorboard": True,
                                  "train.select": "best"})
    record = train_and_evaluate(cfg, output_dir=tmp_path / "runs").record
    folder = run_dir(cfg, tmp_path / "runs") / "tensorboard"
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/top1", "train/entropy", "val/localization"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    scores = [h["val_score"] for h in record["history"]]
    best = record["selection"]["best"]
    assert record["selection"]["checkpoint"] == "best" and best["score"] == max(scores)
    assert best["epoch"] == scores.index(max(scores)) + 1
    # the weights evaluated at the end are the best epoch's: val reproduces its score
    assert record["val"]["summary"]["MaxBoxAcc"] == pytest.approx(best["score"])
