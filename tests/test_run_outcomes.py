"""Per-image outcomes beside every record: the split's numbers recomputed from them equal the record's;
another CAM extractor end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from wsolbench.cli import cli
from wsolbench.metrics import MaskAccumulator, cam_thresholds
from wsolbench.metrics.outcomes import from_arrays, gt_known_loc, pxap_of, result_of, top1_loc
from wsolbench.records import load_outcomes

pytestmark = pytest.mark.slow

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def gradcam_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = invoke("bench", *TINY, "--method", "cam", "--objective", "ce,kl_uniform", "--cam", "gradcam",
                    "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_bench_with_another_cam_extractor_names_it_everywhere(gradcam_runs):
    records = sorted(gradcam_runs.glob("*/record.json"))
    assert len(records) == 2
    for path in records:
        record = json.loads(path.read_text())
        conventions = record["selection"]["conventions"]
        assert conventions["cam"] == "gradcam" and conventions["cam_extractor"]["name"] == "gradcam"
        assert conventions["cam_extractor"]["target_stage"] == conventions["cam_stage"]
        assert record["summary"]["cam"] == "gradcam" and record["config"]["eval"]["cam"] == "gradcam"
    board = (gradcam_runs / "leaderboard.csv").read_text()
    assert "gradcam" in board


def test_summary_recomputed_from_outcomes_equals_the_record(gradcam_runs):
    for path in sorted(gradcam_runs.glob("*/record.json")):
        record = json.loads(path.read_text())
        index = record["selection"]["threshold"]["index"]
        contours = record["config"]["eval"]["loc_contours"]
        for split in ("val", "test"):
            arrays = load_outcomes(path.parent, split)
            outcomes = from_arrays(arrays)
            summary = record[split]["summary"]
            boxes = outcomes["boxes"]
            assert len(boxes) == record["manifest"]["sizes"][split]
            assert gt_known_loc(boxes.ious, index, 50, contours) == summary["GT-known Loc"]
            assert top1_loc(boxes.ious, boxes.cls_correct, index, 50, contours) == summary["Top-1 Loc"]
            assert result_of(boxes).max_box_acc_v2 == summary["MaxBoxAccV2"]
            assert result_of(boxes).max_box_acc == summary["MaxBoxAcc"]
            assert pxap_of(arrays["masks.fg_hist"], arrays["masks.bg_hist"]) == summary["PxAP"]
            assert result_of(outcomes["classification"]).top1 == summary["top1"]
            # the stored per-image verdicts at the chosen threshold are the same numbers, image by image
            assert 100.0 * arrays["loc.gt_known"][:, 1].mean() == pytest.approx(summary["GT-known Loc"], abs=1e-12)
            assert 100.0 * arrays["loc.top1"][:, 1].mean() == pytest.approx(summary["Top-1 Loc"], abs=1e-12)
            assert (arrays["loc.iou"] <= arrays["loc.max_iou"]).all()
            assert list(arrays["classification.image_ids"]) == list(arrays["boxes.image_ids"])


def test_a_subsets_pxap_from_outcomes_equals_a_fresh_accumulator(gradcam_runs):
    """The per-image histograms are what PxAP needs: any subset's PxAP is the pooled histograms' PxAP."""
    path = next(gradcam_runs.glob("*/record.json"))
    arrays = load_outcomes(path.parent, "test")
    subset = np.arange(len(arrays["masks.image_ids"])) % 3 == 0
    acc = MaskAccumulator(cam_thresholds(json.loads(path.read_text())["config"]["eval"]["threshold_step"]))
    acc.fg_hist += arrays["masks.fg_hist"][subset].sum(axis=0)
    acc.bg_hist += arrays["masks.bg_hist"][subset].sum(axis=0)
    acc.count = int(subset.sum())
    assert pxap_of(arrays["masks.fg_hist"], arrays["masks.bg_hist"], subset) == acc.compute().pxap


def test_evaluate_a_finished_run_with_layercam(gradcam_runs):
    run = next(gradcam_runs.glob("cam-ce-*"))
    result = invoke("evaluate", str(run), "--cam", "layercam", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["selection"]["conventions"]["cam_extractor"]["name"] == "layercam"
    assert again["eval"]["cam"] == "layercam"
    recorded = json.loads((run / "record.json").read_text())
    assert again["test"]["summary"]["top1"] == recorded["test"]["summary"]["top1"]  # same weights
    same = invoke("evaluate", str(run), "--json", "--no-progress")  # the run's own extractor: same numbers
    assert json.loads(same.stdout)["test"]["summary"] == pytest.approx(recorded["test"]["summary"])
