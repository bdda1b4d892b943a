"""`wsolbench bench --dataset voc` trains multi-label and reports mAP and mPxAP exactly as evaluate-cams does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from miniature import make_voc
from wsolbench.cams import CAMS, to_scoremaps
from wsolbench.cli import cli
from wsolbench.config import config_from_dict
from wsolbench.data.dataset import ManifestDataset, eval_transform
from wsolbench.engine.state import load_weights
from wsolbench.manifest import load_manifest
from wsolbench.records import load_outcomes
from wsolbench.runner import build_method

pytestmark = pytest.mark.slow


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def voc_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voc")
    raw = make_voc(tmp / "raw")
    out = tmp / "runs"
    result = invoke("bench", "--preset", "smoke", "--dataset", "voc", "--data-root", str(raw["root"]),
                    "--output-dir", str(out), "--objective", "ce,kl_uniform", "--no-progress",
                    "--set", "optim.epochs=1", "--set", "data.source_options={val_size: 2}",
                    "--set", "data.batch_size=4", "--set", "eval.resolution=64")
    assert result.exit_code == 0, result.output
    return out


def test_leaderboard_reports_map_and_mpxap(voc_runs):
    frame = pd.read_csv(voc_runs / "leaderboard.csv")
    assert len(frame) == 2
    for col in ("mAP", "mPxAP", "PxAP", "MaxBoxAccV2"):
        assert frame[col].between(0, 100).all(), col
    record = json.loads(next(voc_runs.glob("cam-ce-*/record.json")).read_text())
    assert record["test"]["class_masks"]["pairs"] > record["test"]["classification"]["count"]  # several labels
    outcomes = load_outcomes(next(voc_runs.glob("cam-ce-*")), "test")
    assert outcomes["multilabel.labels"].sum(axis=1).min() >= 1


def test_training_target_is_the_normalized_multi_hot_label_set(voc_runs):
    record = json.loads(next(voc_runs.glob("cam-ce-*/record.json")).read_text())
    cfg = config_from_dict(record["config"])
    manifest = load_manifest(_manifest_dir(voc_runs))
    dataset = ManifestDataset(manifest, "train", eval_transform(cfg.data), multi_label=True)
    for i in range(len(dataset)):
        item = dataset[i]
        expected = np.zeros(manifest.num_classes)
        expected[list(manifest.split("train")[i].label_set)] = 1
        np.testing.assert_allclose(item["target"].numpy(), expected / expected.sum())


def _manifest_dir(runs):
    return next(p.parent for p in (runs / "data").rglob("manifest.json"))


def test_mpxap_equals_evaluate_cams_multiclass_on_the_same_maps(voc_runs, tmp_path):
    """Write the run's own per-class maps as score-map files and score them with evaluate-cams --multiclass
    (the independent driver of the same definition): the number is the record's."""
    run = next(voc_runs.glob("cam-ce-*"))
    record = json.loads((run / "record.json").read_text())
    cfg = config_from_dict(record["config"])
    manifest = load_manifest(_manifest_dir(voc_runs))
    method = build_method(cfg, manifest.num_classes, fresh=True)
    load_weights(method, run / "model.pt")
    method.eval()
    dataset = ManifestDataset(manifest, "test", eval_transform(cfg.data))
    maps_dir = tmp_path / "maps"
    with CAMS.get("cam")(method) as extractor:
        for i, sample in enumerate(dataset.samples):
            x = dataset[i]["image"][None]
            for c in sample.label_set:
                _, raw = extractor(x, torch.tensor([c]))
                path = maps_dir / str(c) / f"{sample.image_id}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, to_scoremaps(raw, cfg.eval.resolution)[0].numpy())
    result = invoke("evaluate-cams", "--scoremaps", str(maps_dir), "--manifest", str(manifest.directory),
                    "--split", "test", "--multiclass", "--resolution", str(cfg.eval.resolution),
                    "--threshold-step", str(cfg.eval.threshold_step), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_missing"] == 0 and report["n_extra"] == 0
    assert report["mPxAP"] == pytest.approx(record["test"]["summary"]["mPxAP"], abs=1e-9)
