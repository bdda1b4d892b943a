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
