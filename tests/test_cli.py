"""The smoke bench end to end through the CLI, and the CLI's handling of bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from click.testing import CliRunner

from wsolbench.cli import cli
from wsolbench.config import BENCH_OBJECTIVES, preset
from wsolbench.metrics import cam_thresholds

pytestmark = pytest.mark.slow


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = invoke("bench", "--preset", "smoke", "--output-dir", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_smoke_bench_writes_records_leaderboards_and_plot(smoke_runs):
    records = sorted(smoke_runs.rglob("record.json"))
    assert len(records) == len(BENCH_OBJECTIVES)
    for name in ("leaderboard.csv", "leaderboard.md", "entropy_vs_accuracy.png"):
        assert (smoke_runs / name).stat().st_size > 0
    image = matplotlib.image.imread(smoke_runs / "entropy_vs_accuracy.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    md = (smoke_runs / "leaderboard.md").read_text()
    assert "wsolbench bench" in md or "bench" in md
    for objective in BENCH_OBJECTIVES:
        assert objective in md


def test_leaderboard_values_are_sane(smoke_runs):
    frame = pd.read_csv(smoke_runs / "leaderboard.csv")
    assert (frame["method"] == "cam").all() and (frame["cam"] == "cam").all()
    assert (frame["backbone"] == "small_cnn").all() and (frame["dataset"] == "synthetic").all()
    frame["name"] = frame["objective"].str.split("(").str[0]
    assert sorted(frame["name"]) == sorted(BENCH_OBJECTIVES)
    k = preset("smoke").data.synthetic.num_classes
    assert (frame["top1"] > 100 / k + 30).all(), frame[["name", "top1"]]  # far above chance
    for col in ("MaxBoxAcc", "MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP"):
        assert frame[col].between(0, 100).all(), col
    assert (frame["Top-1 Loc"] <= frame["GT-known Loc"] + 1e-9).all()
    assert frame["entropy_norm"].between(0, 1).all()
    # A CAM baseline on part-on-body objects must not localize perfectly, nor fail entirely.
    ce = frame.set_index("name").loc["ce"]
    assert 20 < ce["MaxBoxAcc"] < 99
    # The regularizers raise the predictive entropy above plain CE.
    by_name = frame.set_index("name")
    assert by_name.loc["kl_uniform", "entropy_norm"] > by_name.loc["ce", "entropy_norm"]
    assert by_name.loc["label_smoothing", "entropy_norm"] > by_name.loc["ce", "entropy_norm"]
    lam = 0.3  # kl_uniform's published default
    assert by_name.loc["kl_uniform", "objective"] == "kl_uniform(lam=0.3)"
    assert by_name.loc["kl_uniform", "effective_smoothing"] == pytest.approx(lam / (1 + lam), abs=1e-4)
    assert frame["config_hash"].nunique() == len(frame)


def test_run_record_contents(smoke_runs):
    record = json.loads(next(smoke_runs.glob("cam-kl_uniform-*/record.json")).read_text())
    cfg = preset("smoke")
    assert record["name"] == "cam-kl_uniform-lam0.3"
    assert record["config"]["objective"] == {"name": "kl_uniform", "lam": 0.3, "normalize_loss_scale": False}
    assert record["config"]["method"] == {"name": "cam"}
    assert record["selection"]["conventions"]["cam"] == "cam"
    assert record["selection"]["conventions"]["cam_extractor"]["name"] == "cam"
    assert record["schema_version"] == 2 and record["config_hash"] == record["summary"]["config_hash"]
    assert len(record["history"]) == cfg.optim.epochs
    assert all(h["loss"] > 0 and 0 <= h["top1"] <= 100 for h in record["history"])
    n_thresholds = len(cam_thresholds(cfg.eval.threshold_step))
    for split in ("val", "test"):
        boxes = record[split]["boxes"]
        assert boxes["count"] == record["manifest"]["sizes"][split]
        assert len(boxes["thresholds"]) == n_thresholds
    assert record["selection"]["threshold"]["split"] == "val"
    assert record["code_version"]["wsolbench"]
    assert record["environment"]["libraries"]["torch"]
    assert record["objective"]["loss_scale"] == pytest.approx(1.3)
    assert record["outcomes"] == {"val": "outcomes-val.npz", "test": "outcomes-test.npz"}
    assert (smoke_runs / Path(record["name"] + "-" + record["config_hash"][:8]) / "model.pt").is_file()


def test_evaluate_reproduces_the_recorded_numbers(smoke_runs):
    run = next(smoke_runs.glob("cam-ce-*"))
    recorded = json.loads((run / "record.json").read_text())
    result = invoke("evaluate", str(run), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["test"]["summary"] == pytest.approx(recorded["test"]["summary"])
    assert again["val"]["summary"] == pytest.approx(recorded["val"]["summary"])


def test_second_bench_reuses_and_leaderboard_rebuilds(smoke_runs, tmp_path):
    before = _digest(smoke_runs)
    result = invoke("bench", "--preset", "smoke", "--output-dir", str(smoke_runs), "--no-progress")
    assert result.exit_code == 0
    assert "reusing" in result.stderr
    after = _digest(smoke_runs)
    assert {k: v for k, v in after.items() if "record.json" in k} == {
        k: v for k, v in before.items() if "record.json" in k}
    out = tmp_path / "board"
    result = invoke("leaderboard", str(smoke_runs), "--output-dir", str(out))
    assert result.exit_code == 0
    assert pd.read_csv(out / "leaderboard.csv").shape[0] == len(BENCH_OBJECTIVES)


@pytest.mark.parametrize("command", [[], ["bench"], ["train"], ["evaluate"], ["leaderboard"], ["presets"], ["methods"],
                                     ["evaluate-cams"], ["data"], ["data", "prepare"], ["data", "verify"], ["report"],
                                     ["sweep"], ["check"]])
def test_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


def test_missing_config_file(tmp_path):
    _one_line_error(invoke("bench", "-c", str(tmp_path / "nope.yaml"), "--output-dir", str(tmp_path)),
                    "nope.yaml", "does not exist")


def test_malformed_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [0.1\n")
    _one_line_error(invoke("train", "-c", str(bad), "--output-dir", str(tmp_path)), "bad.yaml", "line")


def test_unknown_objective_stops_before_any_run(smoke_runs):
    before = _digest(smoke_runs)
    result = invoke("bench", "--preset", "smoke", "--objective", "ce", "--objective", "focal",
                    "--output-dir", str(smoke_runs), "--no-progress")
    _one_line_error(result, "unknown objective 'focal'")
    assert _digest(smoke_runs) == before  # nothing already written is touched


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_line_error(invoke("bench", "--preset", "smoke", "--output-dir", str(blocker / "runs")),
                    "cannot be written")


def test_bad_override_value(tmp_path):
    _one_line_error(invoke("train", "--preset", "smoke", "--set", "optim.epochs=zero",
                           "--output-dir", str(tmp_path)), "optim.epochs")


def test_presets_lists_every_preset_with_its_source():
    from wsolbench.config import PRESETS

    result = invoke("presets")
    assert result.exit_code == 0
    for name in PRESETS:
        assert name in result.stdout
    assert "wsolevaluation" in result.stdout
    as_json = json.loads(invoke("presets", "--json").stdout)
    assert as_json["cub-paper"]["optim"]["new_layer_lr_mult"] == 10.0
    assert as_json["cub-paper"]["model"]["backbone"] == "resnet50_wsol"


def test_a_parameter_of_no_objective_in_the_bench_is_refused(tmp_path):
    _one_line_error(invoke("bench", "--preset", "smoke", "--objective", "ce", "--set", "objective.lam=1.0",
                           "--output-dir", str(tmp_path)), "objective.lam", "none of the objectives")


def test_unknown_cam_and_method_are_usage_errors(tmp_path):
    _one_line_error(invoke("bench", "--preset", "smoke", "--cam", "nocam", "--output-dir", str(tmp_path)),
                    "unknown cam 'nocam'", "gradcam")
    _one_line_error(invoke("train", "--preset", "smoke", "--method", "nomethod", "--output-dir", str(tmp_path)),
                    "unknown method 'nomethod'", "cam")


def test_help_lists_the_registries():
    from wsolbench.cams import CAMS
    from wsolbench.objectives import OBJECTIVES

    text = invoke("bench", "--help").output
    for name in [*CAMS.names(), *OBJECTIVES.names()]:
        assert name in text


def test_methods_lists_every_registered_method_with_its_defaults():
    from wsolbench.methods import METHODS

    listed = json.loads(invoke("methods", "--json").stdout)
    assert sorted(listed) == METHODS.names()
    from wsolbench.config import to_dict

    for name, row in listed.items():
        assert row["params"] == to_dict(METHODS.get(name).Config()) and row["phases"]
    assert "Zhou et al." in listed["cam"]["summary"]
    assert invoke("methods").exit_code == 0
