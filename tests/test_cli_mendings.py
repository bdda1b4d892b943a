"""The command line's small mendings (issue 13, section 4): --debug keeps exit codes and is accepted anywhere,
Ctrl-C says what was kept, errors name every dataset and the right flag, one threshold-step range, readable
train / evaluate output, reuse said as such, no folder left by a failed validation, a line per epoch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsolbench.cli import cli
from wsolbench.cli_support import lift_debug

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--no-progress"]


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result, exit_code: int = 2) -> str:
    """The last stderr line, which must be the one ``error: ...`` line, after checking the exit code."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr
    return line


# --------------------------------------------------------------------------- 1, 2: --debug


@pytest.mark.parametrize("args", [["--debug", "bench"], ["bench", "--debug"], ["bench", "--preset", "smoke", "--debug"]])
def test_debug_shows_the_traceback_then_the_error_line_and_keeps_its_exit_code(tmp_path, args):
    result = invoke(*args, "--set", "optim.lr=-1", "--output-dir", tmp_path / "runs")
    assert error_line(result, 2) == "error: optim.lr must be > 0, got -1.0"
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.index("Traceback") < result.stderr.index("error: optim.lr")


@pytest.mark.parametrize("args", [[], ["--debug"]])
def test_a_failed_check_exits_1_with_or_without_debug(tmp_path, args):
    from wsolbench.manifest import Sample, write_manifest

    splits = {split: [Sample(f"{split}-a", f"{split}-a.png", 0, 4, 4, ((0.0, 0.0, 3.0, 3.0),))]
              for split in ("train", "val", "test")}
    write_manifest(tmp_path / "m", name="m", root=tmp_path, classes=["x"], splits=splits)  # no image exists
    result = invoke("data", "verify", tmp_path / "m", "--no-progress", *args)
    assert error_line(result, 1).startswith("error: ")
    assert ("Traceback" in result.stderr) == bool(args)


def test_without_debug_there_is_no_traceback(tmp_path):
    result = invoke("bench", "--set", "optim.lr=-1", "--output-dir", tmp_path / "runs")
    assert error_line(result) == "error: optim.lr must be > 0, got -1.0"
    assert "Traceback" not in result.output


def test_debug_after_a_bare_double_dash_is_an_argument(tmp_path):
    result = invoke("leaderboard", "--", "--debug")
    assert result.exit_code == 2 and "'--debug' does not exist" in result.output  # RUNS_DIR, not the flag
    assert lift_debug(["bench", "--debug", "--seed", "1", "--", "--debug"]) == [
        "--debug", "bench", "--seed", "1", "--", "--debug"]
    assert lift_debug(["train", "--seed", "1"]) == ["train", "--seed", "1"]


def test_help_says_debug_is_accepted_after_the_subcommand():
    text = " ".join(invoke("--help").output.split())
    assert "--debug" in text and "Accepted anywhere before a bare '--'" in text


# --------------------------------------------------------------------------- 3: Ctrl-C


def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_in_bench_names_the_folder_and_how_to_continue(tmp_path, monkeypatch):
    import wsolbench.bench

    monkeypatch.setattr(wsolbench.bench, "run_bench", _interrupt)
    out = tmp_path / "runs"
    result = invoke("bench", *TINY, "--output-dir", out)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == [
        f"interrupted: finished runs and checkpoints are kept in {out}; run the same command again to continue "
        "(finished runs are reused, interrupted ones resume from their last checkpoint)"]
    assert "Aborted" not in result.output


def test_ctrl_c_in_train_says_to_add_resume(tmp_path, monkeypatch):
    import wsolbench.runner

    monkeypatch.setattr(wsolbench.runner, "train_and_evaluate", _interrupt)
    out = tmp_path / "runs"
    result = invoke("train", *TINY, "--output-dir", out)
    assert result.exit_code == 130, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and str(out) in line and "--resume" in line
    result = invoke("--debug", "train", *TINY, "--output-dir", out)
    assert result.exit_code == 130 and "Traceback" in result.stderr and "KeyboardInterrupt" in result.stderr


def test_ctrl_c_elsewhere_says_to_run_again(tmp_path, monkeypatch):
    import wsolbench.report.html

    monkeypatch.setattr(wsolbench.report.html, "write_report", _interrupt)
    result = invoke("report", tmp_path, "--out", tmp_path / "report")
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted: run the same command again"


@pytest.mark.slow
def test_sigint_during_a_bench_keeps_the_checkpoint_and_frees_the_run(tmp_path):
    """A real process: SIGINT once the first checkpoint is written; exit 130 with the one line, the checkpoint
    kept and the run no longer claimed (the next bench resumes it)."""
    out = tmp_path / "runs"
    args = ["bench", *TINY, "--objective", "ce", "--set", "optim.epochs=40", "--set", "train.checkpoint_every=1",
            "--output-dir", str(out)]
    code = "import sys; from wsolbench.cli import main; sys.argv[0] = 'wsolbench'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None and not list(out.glob("*/checkpoint.pt")):
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted: finished runs and checkpoints are kept in {out}")
    assert "Aborted" not in stderr and "Traceback" not in stderr
    assert list(out.glob("*/checkpoint.pt")) and not list(out.glob("*/record.json"))
    plan = invoke("bench", *TINY, "--objective", "ce", "--set", "optim.epochs=40", "--set",
                  "train.checkpoint_every=1", "--output-dir", out, "--dry-run")
    assert plan.exit_code == 0 and plan.stdout.splitlines()[0].startswith("todo"), plan.output


# --------------------------------------------------------------------------- 4, 5, 9: datasets, roots, folders


@pytest.mark.parametrize("command", ["train", "bench"])
def test_an_unknown_dataset_lists_every_accepted_one_and_leaves_no_folder(tmp_path, command):
    out = tmp_path / "runs"
    line = error_line(invoke(command, "--preset", "smoke", "--dataset", "bogus", "--output-dir", out))
    known = re.search(r"unknown dataset 'bogus' \(known: (.*)\)$", line).group(1).split(", ")
    from wsolbench.data.sources import SOURCES

    assert sorted(known) == sorted(["synthetic", "digits", "manifest", *SOURCES.names()])
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "bench"])
def test_a_missing_data_root_names_data_root_and_leaves_no_folder(tmp_path, command):
    out = tmp_path / "runs"
    line = error_line(invoke(command, "--preset", "smoke", "--dataset", "cub", "--data-root", tmp_path / "nope",
                             "--output-dir", out))
    assert line == f"error: --data-root {tmp_path / 'nope'} is not a folder (the raw cub dataset, as its publisher ships it)"
    assert not out.exists()


def test_a_data_root_of_another_layout_names_the_flag_it_came_from(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    run = error_line(invoke("bench", *TINY, "--dataset", "cub", "--data-root", raw, "--output-dir", tmp_path / "r"))
    assert run.startswith(f"error: --data-root {raw}: no images.txt; --data-root must be the CUB_200_2011 folder")
    assert "--root" not in run
    prepared = error_line(invoke("data", "prepare", "cub", "--root", raw, "--out", tmp_path / "m"))
    assert prepared.startswith(f"error: --root {raw}: no images.txt; --root must be the CUB_200_2011 folder")
    assert "--data-root" not in prepared
    missing = error_line(invoke("data", "prepare", "cub", "--root", tmp_path / "nope", "--out", tmp_path / "m"))
    assert missing.startswith(f"error: --root {tmp_path / 'nope'} is not a folder")


@pytest.mark.parametrize("command", ["train", "bench"])
@pytest.mark.parametrize(("dataset", "found"), [("cub", "no images.txt"), ("pet", "no images/ and annotations/"),
                                                ("voc", "no JPEGImages/ and Annotations/"),
                                                ("imagenet", "no train/ folder")])
def test_a_data_root_of_another_layout_is_found_before_the_output_folder_is_made(tmp_path, command, dataset, found):
    raw = tmp_path / "raw"
    (raw / "something").mkdir(parents=True)
    out = tmp_path / "runs"
    line = error_line(invoke(command, *TINY, "--dataset", dataset, "--data-root", raw, "--output-dir", out))
    assert line.startswith(f"error: --data-root {raw}: {found}; --data-root must "), line
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["train", "--set", "optim.lr=-1"],
    ["bench", "--set", "optim.lr=-1"],
    ["train", "--set", "model.backbone=bogus"],
    ["bench", "--set", "model.backbone=bogus"],
    ["train", "--dataset", "manifest", "--set", "data.manifest=/nonexistent/manifest"],
    ["bench", "--dataset", "manifest", "--set", "data.manifest=/nonexistent/manifest"],
])
def test_a_validation_error_leaves_no_output_folder(tmp_path, args):
    out = tmp_path / "X"
    error_line(invoke(*args, "--preset", "smoke", "--output-dir", out))
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_leaves_no_output_folder(tmp_path):
    out = tmp_path / "X"
    assert "CUDA is not available" in error_line(invoke("train", *TINY, "--device", "cuda", "--output-dir", out))
    assert not out.exists()


# --------------------------------------------------------------------------- 6: one threshold-step range


@pytest.fixture
def one_image_metadata(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "image_ids.txt").write_text("a.jpg\n")
    (meta / "class_labels.txt").write_text("a.jpg,0\n")
    (meta / "image_sizes.txt").write_text("a.jpg,224,224\n")
    (meta / "localization.txt").write_text("a.jpg,10,10,100,100\n")
    maps = tmp_path / "maps"
    maps.mkdir()
    score = np.zeros((224, 224), np.float32)
    score[10:101, 10:101] = 1
    np.save(maps / "a.jpg.npy", score)
    return meta, maps


def test_threshold_step_has_one_range_for_the_option_and_the_config(tmp_path, one_image_metadata):
    meta, maps = one_image_metadata

    def evaluate(step: str):
        return invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--threshold-step", step,
                      "--no-progress", "--no-cache")

    option = error_line(evaluate("0.6"))
    config = error_line(invoke("train", "--preset", "smoke", "--set", "eval.threshold_step=0.6",
                               "--output-dir", tmp_path / "runs"))
    assert option.startswith("error: --threshold-step must be in (0, 0.5]")
    assert config.startswith("error: eval.threshold_step must be in (0, 0.5]")
    assert option.removeprefix("error: --threshold-step") == config.removeprefix("error: eval.threshold_step")
    assert error_line(evaluate("0")).startswith("error: --threshold-step must be in (0, 0.5]")
    ok = evaluate("0.5")  # the largest step both accept
    assert ok.exit_code == 0, ok.output
    from wsolbench.config import load_config

    assert load_config(preset_name="smoke", overrides={"eval": {"threshold_step": 0.5}}).eval.threshold_step == 0.5


# --------------------------------------------------------------------------- 7, 8, 10: a trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    args = ["train", *TINY, "--set", "optim.epochs=2", "--set", "train.select=best", "--output-dir", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, args, result


def _record(out: Path) -> dict:
    return json.loads(next(out.glob("*/record.json")).read_text())


@pytest.mark.slow
def test_train_prints_a_readable_summary_with_units(trained):
    out, _, result = trained
    summary = _record(out)["summary"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{summary['name']} (config {summary['config_hash']})")
    rows = {line.rsplit("  ", 1)[0].strip(): line.rsplit("  ", 1)[1].strip() for line in lines[2:]}
    assert rows["Top-1 accuracy"] == f"{summary['top1']:.2f} %"
    assert rows["MaxBoxAccV2"] == f"{summary['MaxBoxAccV2']:.2f} %"
    assert rows["GT-known Loc"] == f"{summary['GT-known Loc']:.2f} %"
    assert rows["Top-1 Loc"] == f"{summary['Top-1 Loc']:.2f} %"
    assert rows["PxAP"] == f"{summary['PxAP']:.2f} %"
    assert rows["Entropy"] == f"{summary['entropy']:.3f} nats"
    assert "wrote " in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_train_json_prints_the_summary_and_a_reused_run_says_so(trained):
    out, args, _ = trained
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == _record(out)["summary"]
    path = next(out.glob("*/record.json"))
    assert result.stderr.splitlines()[-1] == f"reused {path} (a finished run of the same config; --rerun trains again)"
    assert "wrote" not in result.stderr


@pytest.mark.slow
def test_evaluate_prints_val_and_test_columns_unless_json(trained):
    out, _, _ = trained
    run = next(out.glob("cam-ce-*"))
    record = _record(out)
    result = invoke("evaluate", run, "--no-progress")
    assert result.exit_code == 0, result.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
    lines = result.stdout.splitlines()
    assert "CAM cam" in lines[0] and lines[1].split() == ["metric", "val", "test"]
    row = next(line for line in lines if line.startswith("MaxBoxAccV2"))
    assert row.split()[1:] == [f"{record['val']['summary']['MaxBoxAccV2']:.2f}", "%",
                               f"{record['test']['summary']['MaxBoxAccV2']:.2f}", "%"]
    as_json = json.loads(invoke("evaluate", run, "--no-progress", "--json").stdout)
    assert as_json["test"]["summary"] == pytest.approx(record["test"]["summary"])


@pytest.mark.slow
def test_training_without_progress_bars_prints_a_line_per_epoch(trained):
    out, _, result = trained
    history = _record(out)["history"]
    lines = [line for line in result.stderr.splitlines() if re.match(r"cam-ce: epoch \d/2 ", line)]
    assert len(lines) == len(history) == 2
    for line, row in zip(lines, history):
        assert line == (f"cam-ce: epoch {row['epoch']}/2  loss {row['loss']:.4f}  train top-1 {row['top1']:.1f} %  "
                        f"lr {row['lr']:.3g}  val MaxBoxAcc {row['val_score']:.1f} %  {row['seconds']:.1f} s")
