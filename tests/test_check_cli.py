"""wsolbench check through the CLI on real runs: unchanged passes, a better baseline fails, a missing row fails,
another protocol is refused, JUnit XML is valid."""

from __future__ import annotations

import shutil
from xml.etree import ElementTree as ET

import pandas as pd
import pytest
from click.testing import CliRunner

from wsolbench.cli import cli

pytestmark = pytest.mark.slow

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = invoke("bench", *TINY, "--objective", "ce,kl_uniform", "--output-dir", out)
    assert result.exit_code == 0, result.output
    baseline = out.parent / "baseline.csv"
    result = invoke("check", out, "--baseline", baseline, "--update")
    assert result.exit_code == 0, result.output
    return out, baseline


def test_an_unchanged_rerun_passes(runs, tmp_path):
    out, baseline = runs
    result = invoke("check", out, "--baseline", baseline, "--junit-xml", tmp_path / "j.xml")
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output and "worse" not in result.output
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 2 * 5  # 2 rows x top1, 3 loc, PxAP
    # the committed leaderboard.csv of the bench works as a baseline as well
    assert invoke("check", out, "--baseline", out / "leaderboard.csv").exit_code == 0


def test_a_baseline_five_points_better_fails_with_exit_1_and_names_the_metric(runs, tmp_path):
    out, baseline = runs
    frame = pd.read_csv(baseline)
    frame.loc[frame["objective"] == "ce", "MaxBoxAccV2"] += 5
    better = tmp_path / "better.csv"
    frame.to_csv(better, index=False)
    result = invoke("check", out, "--baseline", better, "--junit-xml", tmp_path / "j.xml")
    assert result.exit_code == 1, result.output
    assert "1 of" in result.output and "checks failed" in result.output
    cases = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0][1] == "MaxBoxAccV2" and "+ ce " in failed[0][0]
    # a generous tolerance lets it pass
    assert invoke("check", out, "--baseline", better, "--tolerance", "MaxBoxAccV2=6").exit_code == 0


def test_a_missing_row_fails(runs, tmp_path):
    out, baseline = runs
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    for run in partial.glob("cam-kl_uniform*"):
        shutil.rmtree(run)
    result = invoke("check", partial, "--baseline", baseline)
    assert result.exit_code == 1 and "missing" in result.output


def test_a_baseline_from_another_protocol_is_refused(runs, tmp_path):
    out, baseline = runs
    frame = pd.read_csv(baseline)
    frame["threshold_step"] = 0.001
    other = tmp_path / "other.csv"
    frame.to_csv(other, index=False)
    result = invoke("check", out, "--baseline", other)
    assert result.exit_code == 2
    assert "another protocol: threshold_step is '0.001' there" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error")]) == 1
