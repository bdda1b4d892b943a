"""bench --workers: extra local processes share the runs through the store; the numbers are those of one process."""

from __future__ import annotations

import json

from click.testing import CliRunner

from wsolbench.cli import cli

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress", "--objective", "ce,kl_uniform",
        "--seeds", "0,1"]


def _summaries(folder):
    return {p.parent.name: json.loads(p.read_text())["test"]["summary"] for p in folder.glob("*/record.json")}


def test_two_workers_train_every_run_once_with_the_numbers_of_one_process(tmp_path):
    one = CliRunner().invoke(cli, ["bench", *TINY, "--output-dir", str(tmp_path / "one")], catch_exceptions=False)
    assert one.exit_code == 0, one.output
    two = CliRunner().invoke(cli, ["bench", *TINY, "--workers", "2", "--output-dir", str(tmp_path / "two")],
                             catch_exceptions=False)
    assert two.exit_code == 0, two.output
    assert _summaries(tmp_path / "two") == _summaries(tmp_path / "one") and len(_summaries(tmp_path / "one")) == 4
    log = (tmp_path / "two" / "workers" / "worker-1.log").read_text()
    trained = [int(line.split(": ")[2].split()[0]) for line in (*two.output.splitlines(), *log.splitlines())
               if line.startswith("bench: 4 runs")]
    assert len(trained) == 2 and sum(trained) == 4  # the parent's count and the worker's: each run once
    leaderboard = (tmp_path / "two" / "leaderboard.csv").read_text()
    assert leaderboard.count("\n") == 1 + 2  # header + ce and kl_uniform, each with both seeds


def test_workers_are_refused_with_the_ray_executor_and_below_one(tmp_path):
    for extra, message in ((["--workers", "0"], "at least 1"), (["--workers", "2", "--executor", "ray"], "local")):
        result = CliRunner().invoke(cli, ["bench", *TINY, *extra, "--output-dir", str(tmp_path)])
        assert result.exit_code == 2 and message in result.output, result.output
