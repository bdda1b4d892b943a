"""wsolbench leaderboard over a folder with an unreadable record and a failed run: the rest still make the
leaderboard, the bad record is named with its path (exit 1), the failed run is listed with its error."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from wsolbench.cli import cli

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress"]


@pytest.mark.slow
def test_one_unreadable_record_is_reported_and_the_rest_kept(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["bench", *TINY, "--objective", "ce,kl_uniform", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    broken = next(tmp_path.glob("cam-kl_uniform*/record.json"))
    broken.write_text('{"schema_version": 2, "name": ')  # truncated
    failed = tmp_path / "cam-label_smoothing-eps0.1-deadbeef"
    failed.mkdir()
    (failed / "record.partial.json").write_text(json.dumps({"name": "cam-label_smoothing-eps0.1", "status": "failed",
                                                            "error": "loss is NaN at epoch 2, step 1"}))
    (tmp_path / "leaderboard.md").unlink()
    result = runner.invoke(cli, ["leaderboard", str(tmp_path), "--bootstrap", "0"])
    assert result.exit_code == 1
    assert str(broken) in result.output and "1 unreadable run record(s)" in result.output
    assert "failed run cam-label_smoothing-eps0.1" in result.output and "loss is NaN at epoch 2" in result.output
    board = (tmp_path / "leaderboard.md").read_text()
    assert "cam + ce" in board and "kl_uniform" not in board


@pytest.mark.slow
def test_two_protocols_in_one_folder_are_two_groups_and_each_bench_keeps_its_own_leaderboard(tmp_path):
    runner = CliRunner()
    first = ["bench", *TINY, "--objective", "ce,kl_uniform", "--output-dir", str(tmp_path)]
    assert runner.invoke(cli, first).exit_code == 0
    two_epochs = [a.replace("optim.epochs=1", "optim.epochs=2") for a in TINY]  # (a repeated --set is an axis)
    second = ["bench", *two_epochs, "--objective", "kl_uniform", "--set", "objective.lam=1",
              "--output-dir", str(tmp_path)]
    result = runner.invoke(cli, second)
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/record.json")]
    assert len(records) == 3 and len({r["summary"]["protocol"] for r in records}) == 2
    assert all(r["command"].startswith("wsolbench bench") or "bench" in r["command"] for r in records)
    board = (tmp_path / "leaderboard.md").read_text()  # the folder-wide one: every run, one group per protocol
    headings = [line for line in board.splitlines() if line.startswith("## ") and line != "## Columns"]
    assert len(headings) == 2 and all("protocol" in h for h in headings)
    assert sum("1 epochs" in h for h in headings) == 1 and sum("2 epochs" in h for h in headings) == 1
    assert "kl_uniform(lam=0.3)" in board and "kl_uniform(lam=1)" in board
    own = list((tmp_path / "benches").glob("*/leaderboard.md"))  # each bench's own, with its command
    assert len(own) == 2
    texts = [p.read_text() for p in own]
    assert sum("lam=1" in t and "lam=0.3" not in t for t in texts) == 1
    assert any("optim.epochs=2" in t for t in texts)
