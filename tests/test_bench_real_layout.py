"""`wsolbench bench --dataset cub --data-root ...` runs the synthetic default's pipeline on a miniature CUB."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from miniature import make_cub
from wsolbench.cli import cli

pytestmark = pytest.mark.slow


def test_bench_on_miniature_cub(tmp_path):
    cub = make_cub(tmp_path, per_class=12)
    root = tmp_path / "CUB_200_2011"
    assert root.is_dir() and cub
    out = tmp_path / "runs"
    result = CliRunner().invoke(cli, [
        "bench", "--preset", "smoke", "--dataset", "cub", "--data-root", str(root), "--output-dir", str(out),
        "--objective", "ce", "--objective", "kl_uniform", "--no-progress",
        "--set", "optim.epochs=1", "--set", "data.source_options={val_per_class: 2}",
        "--set", "data.batch_size=8", "--set", "eval.resolution=64"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "leaderboard.csv")
    assert sorted(frame["name"]) == ["cam-ce", "cam-kl_uniform-lam0.3"]
    assert set(frame["dataset"]) == {"cub"} and set(frame["method"]) == {"cam"}
    record = json.loads(next(out.glob("cam-ce-*/record.json")).read_text())
    assert record["manifest"]["name"].startswith("cub")
    sizes = record["manifest"]["sizes"]
    assert sizes["val"] == 3 * 2 and sizes["test"] == 3 * 6 and sizes["train"] == 3 * 6 - 3 * 2
    assert record["test"]["boxes"]["count"] == sizes["test"]
    assert record["test"]["masks"] is not None  # the segmentations give PxAP on CUB
    assert 0 <= record["summary"]["PxAP"] <= 100 and 0 <= record["summary"]["MaxBoxAccV2"] <= 100
