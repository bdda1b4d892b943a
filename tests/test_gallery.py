"""The gallery a run keeps for reports: which test images, and that their maps are the run's maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wsolbench.cams import scoremaps_for
from wsolbench.cli import cli
from wsolbench.config import config_from_dict
from wsolbench.data.dataset import ManifestDataset, eval_transform
from wsolbench.engine.gallery import extreme_positions, sample_positions
from wsolbench.engine.state import load_weights
from wsolbench.manifest import load_manifest
from wsolbench.metrics import rescale_boxes
from wsolbench.records import load_gallery, load_outcomes
from wsolbench.runner import build_method


def test_the_sample_depends_on_the_set_of_ids_not_their_order():
    ids = [f"img{i:03d}" for i in range(50)]
    a = sample_positions(ids, 8)
    shuffled = ids[::-1]
    b = sample_positions(shuffled, 8)
    assert len(a) == 8 and len(set(a)) == 8
    assert sorted(ids[i] for i in a) == sorted(shuffled[i] for i in b)
    assert sample_positions(ids, 80) == sorted(range(50), key=lambda i: ids[i])  # capped: every image
    assert sample_positions(ids, 0) == []


def test_best_and_worst_by_iou_with_ties_broken_by_id():
    ids = ["a", "b", "c", "d", "e"]
    outcome_ids = ["e", "d", "c", "b", "a"]  # another order than the dataset's
    iou = np.array([0.9, 0.1, 0.5, 0.9, 0.0])  # e .9, d .1, c .5, b .9, a 0
    best, worst = extreme_positions(ids, outcome_ids, iou, 2)
    assert [ids[p] for p in best] == ["b", "e"]  # tie at 0.9: b before e
    assert [ids[p] for p in worst] == ["a", "d"]
    assert extreme_positions(ids, outcome_ids, iou, 0) == ([], [])


TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=64", "--set",
        "data.synthetic.n_val=24", "--set", "data.synthetic.n_test=30", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--set", "eval.gallery=5",
        "--set", "eval.gallery_extremes=2", "--no-progress"]


@pytest.mark.slow
def test_a_run_keeps_the_same_sample_as_every_other_run_and_its_own_maps(tmp_path):
    result = CliRunner().invoke(cli, ["bench", *TINY, "--objective", "ce,kl_uniform", "--output-dir",
                                      str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = sorted(p.parent for p in tmp_path.glob("*/record.json"))
    assert len(runs) == 2
    galleries = [load_gallery(r) for r in runs]
    samples = [[g["image_id"] for g in gallery if g["role"] == "sample"] for gallery in galleries]
    assert len(samples[0]) <= 5 and samples[0] == samples[1]  # the same images in every setting

    run = runs[0]
    record = json.loads((run / "record.json").read_text())
    assert record["gallery"] == "gallery-test.npz"
    cfg = config_from_dict(record["config"])
    manifest = load_manifest(next((tmp_path / "data").glob("synthetic-*")))
    method = build_method(cfg, manifest.num_classes, fresh=True)
    load_weights(method, run / "model.pt")
    method.eval()
    dataset = ManifestDataset(manifest, "test", eval_transform(cfg.data), mask_resolution=cfg.eval.resolution)
    where = {s.image_id: i for i, s in enumerate(dataset.samples)}
    gallery = galleries[0]
    res = cfg.eval.resolution
    for item in gallery:
        sample = dataset.samples[where[item["image_id"]]]
        x = dataset[where[item["image_id"]]]["image"][None]
        with torch.no_grad():
            feats = method.net.forward_features(x)
            expected = scoremaps_for(feats, method.net.head_weight, torch.tensor([sample.label]), res)[0].numpy()
        levels = np.floor(expected * 255)  # one batch of 1 here, one of all kept images in the run: a float
        kept = np.round(item["map"] * 255)  # rounding difference may move a pixel by one 8-bit level
        assert np.abs(kept - levels).max() <= 1 and (kept == levels).mean() > 0.99
        assert item["label"] == sample.label and item["image"].shape == (res, res, 3)
        np.testing.assert_allclose(item["boxes"], rescale_boxes(np.asarray(sample.boxes, dtype=np.float64)
                                                                .reshape(-1, 4), (sample.width, sample.height),
                                                                (res, res)))
        assert item["mask"].shape == (res, res) and item["mask"].any()
    outcomes = load_outcomes(run, "test")
    ranked = sorted(zip(map(str, outcomes["boxes.image_ids"]), outcomes["loc.iou"]), key=lambda t: (-t[1], t[0]))
    extremes = {t[0] for t in ranked[:2]} | {t[0] for t in ranked[-2:]}
    assert {g["image_id"] for g in gallery} == set(samples[0]) | extremes
    for image_id, _ in ranked[:2]:
        assert next(g["role"] for g in gallery if g["image_id"] == image_id) in ("best", "sample")
