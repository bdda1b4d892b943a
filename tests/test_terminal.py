"""The leaderboard on a terminal: the full compact table when it fits, a narrow one at 80 columns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from rich.console import Console

from wsolbench.cli import cli
from wsolbench.report.terminal import narrow_table, print_leaderboard

ROOT = Path(__file__).resolve().parents[1]


def _agg() -> pd.DataFrame:
    base = {"dataset": "synthetic", "backbone": "small_cnn", "method": "cam", "cam": "cam", "seeds": 3,
            "seed_list": "0,1,2", "top1": 99.0, "GT-known Loc": 70.0, "GT-known Loc_std": 2.0, "Top-1 Loc": 69.0,
            "Top-1 Loc_std": 2.0, "PxAP": 60.0, "PxAP_std": 1.0, "entropy_norm": 0.2}
    rows = [
        {**base, "objective": "ce", "MaxBoxAccV2": 66.04, "MaxBoxAccV2_std": 0.41, "is_baseline": True},
        {**base, "objective": "label_smoothing(eps=0.1)", "MaxBoxAccV2": 57.61, "MaxBoxAccV2_std": 1.51,
         "MaxBoxAccV2_diff": -8.33, "MaxBoxAccV2_low": -9.19, "MaxBoxAccV2_high": -7.14, "is_baseline": False},
        {**base, "objective": "kl_uniform(lam=0.3)", "MaxBoxAccV2": 65.5, "MaxBoxAccV2_std": 2.25,
         "MaxBoxAccV2_diff": -0.54, "MaxBoxAccV2_low": -1.26, "MaxBoxAccV2_high": 0.5, "is_baseline": False},
    ]
    return pd.DataFrame(rows)


def _printed(width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_leaderboard(_agg(), console=console)
    return console.export_text().splitlines()


def test_the_narrow_table_keeps_the_sort_metric_with_its_spread_and_the_delta_with_its_interval():
    table = narrow_table(_agg(), baseline="ce")
    assert list(table.columns) == ["setting", "top-1 %", "MaxBoxAccV2 %", "GT-known Loc %", "Top-1 Loc %",
                                   "PxAP %", "Δ MaxBoxAccV2 vs ce (points)", "H/log K", "seeds"]
    rows = table.set_index("setting")
    assert rows.loc["ce", "MaxBoxAccV2 %"] == "66.0 ± 0.4"  # the method (cam, every row) is not repeated
    assert rows.loc["ce", "Δ MaxBoxAccV2 vs ce (points)"] == "baseline"
    assert rows.loc["label_smoothing\n(eps=0.1)", "Δ MaxBoxAccV2 vs ce (points)"] == "-8.3 *\n[-9.2, -7.1]"
    assert rows.loc["kl_uniform\n(lam=0.3)", "Δ MaxBoxAccV2 vs ce (points)"] == "-0.5\n[-1.3, +0.5]"  # 0 inside
    assert rows.loc["ce", "GT-known Loc %"] == "70.0"  # the other metrics as means
    assert list(narrow_table(_agg(), baseline="ce", others=False).columns) == [
        "setting", "top-1 %", "MaxBoxAccV2 %", "Δ MaxBoxAccV2 vs ce (points)", "H/log K", "seeds"]


def test_at_80_columns_every_line_fits_and_what_was_left_out_is_named():
    lines = _printed(80)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "66.0 ± 0.4" in text and "-8.3 *" in text and "[-9.2, -7.1]" in text
    assert "narrowed to 80 columns" in text
    assert "method cam" in text  # the shared method moved into the title


def test_a_wide_console_gets_the_full_compact_table():
    text = "\n".join(_printed(220))
    assert "66.04 ± 0.41" in text and "-8.33 [-9.19, -7.14] *" in text and "GT-known Loc %" in text
    assert "narrowed" not in text


def test_the_leaderboard_command_at_80_columns(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "leaderboards" / "default-bench" / "records", runs)
    result = CliRunner().invoke(cli, ["leaderboard", str(runs), "--bootstrap", "50"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table = result.stdout.splitlines()
    assert max(len(line) for line in table) <= 80
    assert sum("narrowed to 80 columns" in line for line in table) == 2  # digits and synthetic
    md = (runs / "leaderboard.md").read_text()
    assert "GT-known Loc %" in md  # the files keep every column
