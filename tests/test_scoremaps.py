"""``wsolbench evaluate-cams``: folders of score maps against miniature metadata and manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from wsolbench.cli import cli
from wsolbench.errors import DataError
from wsolbench.manifest import Sample, write_manifest
from wsolbench.metrics import BoxAccumulator, MaskAccumulator, cam_thresholds, rescale_boxes
from wsolbench.metrics.multiclass import MultiClassMaskAccumulator
from wsolbench.scoremaps import evaluate_cams, load_ground_truth, read_class_index_mask

R = 224

# image id -> ((w, h), boxes in original pixels, the same boxes rescaled to 224 by hand)
BOX_IMAGES = {
    "test/001/a.jpg": ((448, 448), [(40, 60, 240, 260)], [(20, 30, 120, 130)]),
    "test/002/b.jpg": ((448, 224), [(100, 50, 107, 53)], [(50, 50, 53, 53)]),  # 107 * 224 / 448 = 53.5
    "test/002/c.jpg": ((224, 224), [(10, 10, 19, 19), (100, 100, 109, 109)], [(10, 10, 19, 19), (100, 100, 109, 109)]),
    "test/003/d.jpg": ((224, 224), [(10, 10, 19, 19)], [(10, 10, 19, 19)]),
    "test/003/e.jpg": ((224, 224), [(200, 0, 223, 9)], [(200, 0, 223, 9)]),
}
LABELS = {"test/001/a.jpg": 0, "test/002/b.jpg": 1, "test/002/c.jpg": 1, "test/003/d.jpg": 2, "test/003/e.jpg": 2}

# A perfect map (1 inside the GT boxes, 0 outside) gives, per contour, the box
# (x0, y0, x1 + 1, y1 + 1) clipped to 223 (boundingRect's exclusive right/bottom edge),
# so with the +1 convention IoU = w * h / ((w + 1) * (h + 1)) for a w x h box:
IOU = {
    "a": 101 * 101 / (102 * 102),  # 0.98: correct at 30, 50, 70
    "b": 4 * 4 / (5 * 5),  # 0.64: correct at 30 and 50, not 70
    "c": 10 * 10 / (11 * 11),  # 0.83 for either box
    "d": 10 * 10 / (11 * 11),  # all contours; the largest contour is a 50 x 50 distractor: IoU 0
    "e": 24 * 10 / (24 * 11),  # touches the right edge: x1 clipped to 223, only the height grows
}
assert IOU["b"] < 0.7 <= min(IOU["a"], IOU["c"], IOU["e"])
V2_AT = {30: 100.0, 50: 100.0, 70: 80.0}  # b fails at 70
MAX_BOX_ACC = 80.0  # largest contour at IoU 50: d fails
MAX_BOX_ACC_V2 = (100 + 100 + 80) / 3


def write(folder: Path, name: str, lines: list[str], *, newline_at_end: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + ("\n" if newline_at_end and lines else ""))


def save_map(root: Path, image_id: str, array: np.ndarray) -> Path:
    path = root / (image_id + ".npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


def perfect_box_map(image_id: str) -> np.ndarray:
    m = np.zeros((R, R), np.float32)
    for x0, y0, x1, y1 in BOX_IMAGES[image_id][2]:
        m[y0:y1 + 1, x0:x1 + 1] = 1
    if image_id.endswith("d.jpg"):
        m[100:150, 100:150] = 1  # a larger blob away from the object
    return m


@pytest.fixture
def box_case(tmp_path):
    meta = tmp_path / "metadata/CUB/test"
    ids = list(BOX_IMAGES)
    write(meta, "image_ids.txt", ids)
    write(meta, "class_labels.txt", [f"{i},{LABELS[i]}" for i in ids])
    write(meta, "image_sizes.txt", [f"{i},{w},{h}" for i, ((w, h), _, _) in BOX_IMAGES.items()])
    write(meta, "localization.txt", [f"{i},{x0},{y0},{x1},{y1}" for i, (_, boxes, _) in BOX_IMAGES.items()
                                     for x0, y0, x1, y1 in boxes], newline_at_end=False)
    maps = tmp_path / "maps"
    for i in ids:
        save_map(maps, i, perfect_box_map(i))
    return meta, maps


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args] + ["--no-progress"], catch_exceptions=False)


def run_json(*args) -> dict:
    result = invoke("evaluate-cams", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_rescaled_boxes_match_the_hand_values(box_case):
    gt = load_ground_truth(metadata=box_case[0])
    for image_id, (_, _, at_224) in BOX_IMAGES.items():
        np.testing.assert_array_equal(gt.boxes(image_id, R), np.array(at_224))


def test_perfect_box_maps_give_hand_computed_accuracies(box_case):
    meta, maps = box_case
    out = run_json("--scoremaps", maps, "--metadata", meta)
    assert out["MaxBoxAccV2@30"] == V2_AT[30] and out["MaxBoxAccV2@50"] == V2_AT[50]
    assert out["MaxBoxAccV2@70"] == V2_AT[70]
    assert out["MaxBoxAccV2"] == pytest.approx(MAX_BOX_ACC_V2)
    assert out["MaxBoxAcc"] == MAX_BOX_ACC
    assert out["GT-known Loc"] == MAX_BOX_ACC  # largest contour, best threshold on this split
    assert "Top-1 Loc" not in out and "PxAP" not in out
    thresholds = cam_thresholds(0.01)
    assert out["curves"]["thresholds"] == thresholds.tolist()
    # Binary maps: the same foreground at every threshold, so the curves are flat and the
    # best threshold is the first one.
    assert out["curves"]["MaxBoxAccV2@70"] == [80.0] * len(thresholds)
    assert out["best_threshold"]["MaxBoxAcc"] == 0.0 and out["best_threshold"]["MaxBoxAccV2"] is None
    assert out["threshold_step"] == 0.01 and out["resolution"] == 224
    assert out["contours"] == {"MaxBoxAcc": "largest", "MaxBoxAccV2": "all", "GT-known Loc": "largest"}
    assert (out["n_images"], out["n_missing"], out["n_extra"]) == (5, 0, 0)
    assert out["ground_truth"] == ["boxes"] and out["source"] == {"metadata": str(meta)}
    assert out["loc_threshold"]["selected"].startswith("max GT-known Loc")


def smooth_maps(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        up = cv2.resize(rng.random((6, 6)), (R, R), interpolation=cv2.INTER_CUBIC)
        out.append(((up - up.min()) / (up.max() - up.min())).astype(np.float32))
    return np.stack(out)


@pytest.mark.parametrize("batch_size", [2, 64])
def test_agrees_with_the_accumulators_fed_directly(box_case, batch_size):
    meta, maps = box_case
    ids = list(BOX_IMAGES)
    arrays = smooth_maps(0, len(ids))
    for i, a in zip(ids, arrays, strict=True):
        save_map(maps, i, a)
    predictions = meta.parent / "pred.txt"
    predicted = {i: (LABELS[i] if k % 2 else 5) for k, i in enumerate(ids)}
    predictions.write_text("".join(f"{i},{p}\n" for i, p in predicted.items()))
    out = evaluate_cams(scoremaps=maps, metadata=meta, predictions=predictions, threshold_step=0.05,
                        batch_size=batch_size)

    thresholds = cam_thresholds(0.05)
    acc = BoxAccumulator(thresholds)
    gt = [rescale_boxes(np.array(BOX_IMAGES[i][1]), BOX_IMAGES[i][0], (R, R)) for i in ids]
    acc.update(arrays.astype(np.float64), gt, ids, cls_correct=np.array([predicted[i] == LABELS[i] for i in ids]))
    ref = acc.compute()
    assert out["MaxBoxAcc"] == ref.max_box_acc and out["MaxBoxAccV2"] == ref.max_box_acc_v2
    for iou in (30, 50, 70):
        assert out[f"MaxBoxAccV2@{iou}"] == ref.max_box_acc_v2_at(iou)
        assert out["best_threshold"][f"MaxBoxAccV2@{iou}"] == ref.best_threshold(iou, "all")
    index = ref.best_index(50, "largest")
    assert out["GT-known Loc"] == ref.gt_known_loc(index) and out["Top-1 Loc"] == ref.top1_loc(index)
    assert out["curves"]["Top-1 Loc"] == ref.curve(50, "largest", top1=True).tolist()
    assert out["Top-1 Loc"] <= out["GT-known Loc"]


def test_predictions_add_top1_loc(box_case):
    meta, maps = box_case
    pred = meta.parent / "pred.txt"
    # a's class is wrong; the others are right. Top-1 correct and box-correct (largest contour):
    # b, c, e; GT-known: a, b, c, e.
    pred.write_text("test/001/a.jpg,7\ntest/002/b.jpg,1\ntest/002/c.jpg,1\ntest/003/d.jpg,2\n"
                    "test/003/e.jpg,2\nunrelated/z.jpg,4")
    out = run_json("--scoremaps", maps, "--metadata", meta, "--predictions", pred)
    assert out["GT-known Loc"] == 80.0 and out["Top-1 Loc"] == 60.0
    assert out["best_threshold"]["Top-1 Loc"] == out["loc_threshold"]["threshold"] == 0.0
    assert out["contours"]["Top-1 Loc"] == "largest" and out["n_unused_predictions"] == 1
    out = run_json("--scoremaps", maps, "--metadata", meta, "--predictions", pred, "--loc-threshold", "0.15")
    assert out["loc_threshold"]["threshold"] == pytest.approx(0.15)
    assert out["loc_threshold"]["selected"] == "fixed (--loc-threshold)"
    assert out["Top-1 Loc"] == 60.0
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--loc-threshold", "0.155"))
    assert "not one of the CAM thresholds" in line
    pred.write_text("test/001/a.jpg,7\n")
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--predictions", pred))
    assert "no line for 4 of the 5" in line and "'test/002/b.jpg'" in line


def test_table_output(box_case):
    meta, maps = box_case
    result = invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta)
    assert result.exit_code == 0, result.stderr
    for text in ("MaxBoxAccV2@70", "GT-known Loc", "80.00", "93.33", "images 5", "missing 0"):
        assert text in result.stdout


def _assert_metric_keys(report: dict) -> None:
    from wsolbench.metrics.table import METRIC_KEYS

    metrics = {k for k, v in report.items() if isinstance(v, float) and k != "threshold_step"}
    metrics |= set(report["best_threshold"])
    metrics |= set(report.get("contours", ()))
    assert metrics <= set(METRIC_KEYS), metrics - set(METRIC_KEYS)


def test_box_report_keys_are_the_metric_tables(box_case):
    """One name per metric: the report uses the keys run records use (wsolbench.metrics.table)."""
    meta, maps = box_case
    pred = meta.parent / "pred.txt"
    pred.write_text("".join(f"{i},{LABELS[i]}\n" for i in BOX_IMAGES))
    report = run_json("--scoremaps", maps, "--metadata", meta, "--predictions", pred)
    assert {"MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2@30", "MaxBoxAccV2@50", "MaxBoxAccV2@70",
            "GT-known Loc", "Top-1 Loc"} <= set(report)
    _assert_metric_keys(report)


def test_mask_report_keys_are_the_metric_tables(mask_case, multiclass_case):
    meta, root, maps, _, _ = mask_case
    report = run_json("--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--resolution", MR)
    assert {"PxAP", "PIoU"} <= set(report)
    _assert_metric_keys(report)
    meta, root, maps = multiclass_case
    report = run_json("--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--multiclass",
                      "--resolution", 4, "--threshold-step", 0.5)
    assert "mPxAP" in report
    _assert_metric_keys(report)


def test_missing_and_extra_maps(box_case):
    meta, maps = box_case
    (maps / "test/002/b.jpg.npy").unlink()
    save_map(maps, "test/009/stray.jpg", np.zeros((R, R), np.float32))
    (maps / "notes.txt").write_text("not a map")
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta))
    assert "1 of 5 images have no map ('test/002/b.jpg')" in line
    assert "1 maps have no image in the split ('test/009/stray.jpg')" in line
    assert "--allow-missing" in line
    result = invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--allow-missing", "--json")
    assert "skipped 1 of 5 images without a map, ignored 1 extra maps" in result.stderr
    out = json.loads(result.stdout)
    assert (out["n_images"], out["n_missing"], out["n_extra"]) == (4, 1, 1)
    # Without b (the one failing at IoU 70): a, c, d, e.
    assert out["MaxBoxAccV2@70"] == 100.0 and out["MaxBoxAcc"] == 75.0
    # Extra maps alone are a warning with their count, not an error.
    save_map(maps, "test/002/b.jpg", np.load(maps / "test/001/a.jpg.npy") * 0)
    result = invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--json")
    assert result.exit_code == 0, result.output
    assert "warning: ignored 1 score maps" in result.stderr and "test/009/stray.jpg" in result.stderr
    assert json.loads(result.stdout)["n_extra"] == 1


def test_many_missing_maps_are_listed_with_a_count(box_case):
    meta, maps = box_case
    for path in maps.rglob("*.npy"):
        path.unlink()
    save_map(maps, "x.jpg", np.zeros((R, R), np.float32))
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta))
    assert "5 of 5 images have no map ('test/001/a.jpg', 'test/002/b.jpg', 'test/002/c.jpg', 'test/003/d.jpg', " \
           "'test/003/e.jpg')" in line
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--allow-missing"))
    assert "no score map" in line


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 10), np.float32), r"has shape \(10, 10\); expected \(224, 224\)"),
        (np.zeros((1, R, R), np.float32), r"has shape \(1, 224, 224\)"),
        (np.full((R, R), np.nan, np.float32), "NaN or inf"),
        (np.full((R, R), 1.5), r"outside \[0, 1\]"),
        (np.full((R, R), -0.1), r"outside \[0, 1\]"),
        (np.zeros((R, R), np.uint8), "dtype uint8; expected float32 or float64"),
        (np.zeros((R, R), np.float16), "dtype float16"),
    ],
)
def test_invalid_maps_name_the_image(box_case, array, message):
    meta, maps = box_case
    save_map(maps, "test/003/d.jpg", array)
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta))
    assert "image 'test/003/d.jpg'" in line and "d.jpg.npy" in line
    assert re.search(message, line), line


def test_float64_maps_and_a_corrupt_file(box_case):
    meta, maps = box_case
    for k, i in enumerate(BOX_IMAGES):
        save_map(maps, i, perfect_box_map(i).astype(">f4" if k == 0 else np.float64))  # either byte order
    assert run_json("--scoremaps", maps, "--metadata", meta)["MaxBoxAccV2"] == pytest.approx(MAX_BOX_ACC_V2)
    (maps / "test/003/e.jpg.npy").write_bytes(b"garbage")
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta))
    assert "'test/003/e.jpg'" in line and "cannot be read" in line


def test_metadata_errors_reach_the_cli_as_one_line(box_case):
    meta, maps = box_case
    write(meta, "localization.txt", ["test/001/a.jpg,40,60,240,260", "test/002/b.jpg,1,2"])
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta))
    assert line == f"error: {meta / 'localization.txt'} line 2: expected id,x0,y0,x1,y1"


def test_option_errors(box_case, tmp_path):
    meta, maps = box_case
    assert "exactly one of" in error_line(invoke("evaluate-cams", "--scoremaps", maps))
    assert "exactly one of" in error_line(
        invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--manifest", tmp_path))
    assert "--split applies to --manifest" in error_line(
        invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--split", "val"))
    assert "does not exist" in error_line(invoke("evaluate-cams", "--scoremaps", tmp_path / "no", "--metadata", meta))
    assert "--threshold-step" in error_line(
        invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--threshold-step", "0"))
    assert "--multiclass needs class-index masks" in error_line(
        invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--multiclass"))


# --------------------------------------------------------------------------- masks

MASK_SIZE = (24, 40)  # (h, w) of the original masks
MR = 32  # evaluation resolution of the mask tests


def mask_arrays():
    """Two images: x with two instances (grey and colour) and an ignore map, y with one instance."""
    h, w = MASK_SIZE
    x1 = np.zeros((h, w), np.uint8)
    x1[2:10, 3:15] = 255
    x2 = np.zeros((h, w, 3), np.uint8)
    x2[12:20, 20:36] = (0, 180, 40)
    ignore = np.zeros((h, w), np.uint8)
    ignore[0:14, 0:20] = 255
    y1 = np.zeros((h, w), np.uint8)
    y1[5:18, 10:30] = 1
    return {"x": [x1, x2], "x_ignore": ignore, "y": [y1]}


def resized(mask: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY) if mask.ndim == 3 else mask
    return cv2.resize(grey, (MR, MR), interpolation=cv2.INTER_NEAREST) != 0


@pytest.fixture
def mask_case(tmp_path):
    meta, root, maps = tmp_path / "metadata/OpenImages/test", tmp_path / "OpenImages", tmp_path / "maps"
    arrays = mask_arrays()
    ids = {"x": "test/05/x.jpg", "y": "test/05/y.jpg"}
    write(meta, "image_ids.txt", list(ids.values()))
    write(meta, "class_labels.txt", [f"{i},5" for i in ids.values()])
    write(meta, "image_sizes.txt", [])  # OpenImages: empty
    write(meta, "localization.txt", [
        "test/05/x.jpg,test/05/x_m1.png,test/05/x_ignore.png",
        "test/05/x.jpg,test/05/x_m2.png,",
        "test/05/y.jpg,test/05/y_m1.png,",
    ], newline_at_end=False)
    (root / "test/05").mkdir(parents=True)
    for name, array in (("x_m1", arrays["x"][0]), ("x_m2", arrays["x"][1]), ("x_ignore", arrays["x_ignore"]),
                        ("y_m1", arrays["y"][0])):
        assert cv2.imwrite(str(root / f"test/05/{name}.png"), array)
    foreground = {k: np.logical_or.reduce([resized(m) for m in arrays[k]]) for k in ("x", "y")}
    ignore = resized(arrays["x_ignore"]) & ~foreground["x"]
    for key, image_id in ids.items():
        m = foreground[key].astype(np.float32)
        if key == "x":
            m[ignore] = 1.0  # scores on ignore pixels do not count
        save_map(maps, image_id, m)
    return meta, root, maps, foreground, ignore


def test_maps_equal_to_masks_give_pxap_100(mask_case):
    meta, root, maps, _, ignore = mask_case
    assert ignore.any()
    out = run_json("--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--resolution", MR)
    assert out["PxAP"] == 100.0 and out["PIoU"] == 100.0
    assert out["best_threshold"]["PIoU"] == 0.01 and out["best_threshold"]["PxAP"] is None
    assert "MaxBoxAcc" not in out and out["ground_truth"] == ["masks"]
    assert len(out["curves"]["PxAP"]["precision"]) == 100 and out["n_images"] == 2


def test_mask_metrics_agree_with_the_accumulator(mask_case):
    meta, root, maps, foreground, ignore = mask_case
    arrays = smooth_maps(3, 2)[:, :MR, :MR].copy()
    ids = ["test/05/x.jpg", "test/05/y.jpg"]
    for i, a in zip(ids, arrays, strict=True):
        save_map(maps, i, a)
    out = evaluate_cams(scoremaps=maps, metadata=meta, mask_root=root, resolution=MR, batch_size=1)
    masks = np.stack([foreground["x"].astype(np.uint8), foreground["y"].astype(np.uint8)])
    masks[0][ignore] = 255
    acc = MaskAccumulator(cam_thresholds(0.01))
    acc.update(arrays.astype(np.float64), masks, ids)
    ref = acc.compute()
    assert out["PxAP"] == ref.pxap and out["PIoU"] == ref.piou
    assert out["best_threshold"]["PIoU"] == ref.piou_threshold


def test_mask_metadata_needs_a_mask_root(mask_case):
    meta, root, maps, *_ = mask_case
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--resolution", MR))
    assert "--mask-root" in line
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--mask-root", root,
                             "--resolution", MR, "--predictions", meta / "class_labels.txt"))
    assert "needs ground-truth boxes" in line


def test_manifest_input_with_boxes_and_masks(tmp_path):
    root = tmp_path / "data"
    samples, maps = [], tmp_path / "maps"
    for k, ((w, h), boxes, _) in enumerate(BOX_IMAGES.values()):
        image_id = f"test/{k}.png"
        mask = np.zeros((h, w), np.uint8)
        for x0, y0, x1, y1 in boxes:
            mask[y0:y1, x0:x1] = 255
        (root / "masks").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / f"masks/{k}.png"), mask)
        samples.append(Sample(image_id, f"images/{k}.png", k % 2, w, h, tuple(map(tuple, boxes)),
                              f"masks/{k}.png"))
        save_map(maps, image_id, cv2.resize(mask, (R, R), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255)
    val = [Sample("val/0.png", "images/v0.png", 0, 8, 8, ((1, 1, 4, 4),)), Sample("val/1.png", "images/v1.png", 1, 8, 8,
                                                                                ((0, 0, 7, 7),))]
    write_manifest(tmp_path / "manifest", name="mini", root="../data", classes=["p", "q"],
                   splits={"val": val, "test": samples})
    out = run_json("--scoremaps", maps, "--manifest", tmp_path / "manifest")
    assert out["ground_truth"] == ["boxes", "masks"] and out["PxAP"] == 100.0
    assert out["source"] == {"manifest": str(tmp_path / "manifest"), "split": "test"}
    thresholds = cam_thresholds(0.01)
    acc = BoxAccumulator(thresholds)
    ids = [s.image_id for s in samples]
    acc.update(np.stack([np.load(maps / f"{i}.npy") for i in ids]),
               [rescale_boxes(np.array(s.boxes), (s.width, s.height), (R, R)) for s in samples], ids)
    assert out["MaxBoxAccV2"] == acc.compute().max_box_acc_v2
    line = error_line(invoke("evaluate-cams", "--scoremaps", maps, "--manifest", tmp_path / "manifest",
                             "--split", "val"))
    assert "2 of 2 images have no map ('val/0.png', 'val/1.png')" in line
    assert "5 maps have no image in the split" in line
    assert "no split 'train'" in error_line(invoke("evaluate-cams", "--scoremaps", maps, "--manifest",
                                                   tmp_path / "manifest", "--split", "train"))


# --------------------------------------------------------------------------- multi-class

V = 255
MC_MASKS = {
    "im/1.jpg": np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, V]], np.uint8),
    "im/2.jpg": np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]], np.uint8),
}
MC_MAPS = {
    (0, "im/1.jpg"): [[1.0, 0.7, 0.2, 0.2], [0.2, 1.0, 0.2, 0.7], [0.2] * 4, [0.2] * 4],
    (1, "im/1.jpg"): [[0.2] * 4, [0.2] * 4, [0.2, 0.2, 1.0, 0.7], [0.2, 0.2, 0.2, 1.0]],
    (0, "im/2.jpg"): [[0.7, 0.2, 0.2, 0.2], [0.2] * 4, [0.2] * 4, [0.2, 0.2, 0.2, 1.0]],
    (2, "im/2.jpg"): [[0.5] * 4] * 4,
}
# Worked out in tests/test_metrics_multiclass.py: class 0 pools both images (image 2's class-1
# pixel is a negative there), class 1 only image 1, class 2 has no pixel and is left out.
PXAP_0, PXAP_1 = 263 / 465, 11 / 15


def palette_png(path: Path, indices: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 31 % 256, i * 101 % 256)])
    image.save(path)


@pytest.fixture
def multiclass_case(tmp_path):
    meta, root, maps = tmp_path / "metadata/VOC/val", tmp_path / "VOC", tmp_path / "cams"
    write(meta, "image_ids.txt", list(MC_MASKS))
    write(meta, "class_labels.txt", ["im/1.jpg,0", "im/1.jpg,1", "im/2.jpg,0", "im/2.jpg,2"], newline_at_end=False)
    write(meta, "localization.txt", [f"{i},seg/{i[3]}.png," for i in MC_MASKS])
    for image_id, mask in MC_MASKS.items():
        palette_png(root / f"seg/{image_id[3]}.png", mask)
    for (c, image_id), values in MC_MAPS.items():
        save_map(maps / str(c), image_id, np.array(values, np.float32))
    save_map(maps / "1", "im/2.jpg", np.zeros((4, 4), np.float32))  # image 2 is not labelled 1: unused
    return meta, root, maps


def test_palette_masks_keep_their_indices(multiclass_case):
    _, root, _ = multiclass_case
    np.testing.assert_array_equal(read_class_index_mask(root / "seg/1.png"), MC_MASKS["im/1.jpg"])
    rgb = np.stack([MC_MASKS["im/1.jpg"]] * 3, axis=-1)
    Image.fromarray(rgb).save(root / "rgb.png")
    with pytest.raises(DataError, match="mode RGB"):
        read_class_index_mask(root / "rgb.png")


def test_multiclass_metadata_gives_the_hand_computed_mpxap(multiclass_case):
    meta, root, maps = multiclass_case
    out = run_json("--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--multiclass",
                   "--resolution", 4, "--threshold-step", 0.5)
    assert out["PxAP_per_class"]["0"] == pytest.approx(100 * PXAP_0, rel=1e-12)
    assert out["PxAP_per_class"]["1"] == pytest.approx(100 * PXAP_1, rel=1e-12)
    assert out["PxAP_per_class"]["2"] is None and out["present_classes"] == [0, 1]
    assert out["mPxAP"] == pytest.approx(100 * (PXAP_0 + PXAP_1) / 2, rel=1e-12)
    assert (out["n_images"], out["n_pairs"], out["n_missing"], out["n_extra"], out["n_unused"]) == (2, 4, 0, 0, 1)
    assert out["n_unlabelled_mask_classes"] == 1  # image 2's class-1 pixel
    assert out["label_set"] == "class_labels.txt"
    result = invoke("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--multiclass",
                    "--resolution", 4, "--threshold-step", 0.5)
    assert "mPxAP" in result.stdout and "PxAP class 1" in result.stdout


def test_multiclass_missing_pairs_and_bad_folders(multiclass_case):
    meta, root, maps = multiclass_case
    (maps / "2/im/2.jpg.npy").unlink()
    args = ("evaluate-cams", "--scoremaps", maps, "--metadata", meta, "--mask-root", root, "--multiclass",
            "--resolution", 4, "--threshold-step", 0.5)
    line = error_line(invoke(*args))
    assert "1 of 4 labelled (image, class) pairs have no map ('2/im/2.jpg')" in line
    out = run_json(*args[1:], "--allow-missing")
    assert out["n_missing"] == 1 and out["n_pairs"] == 3
    assert out["mPxAP"] == pytest.approx(100 * (PXAP_0 + PXAP_1) / 2, rel=1e-12)
    (maps / "cat").mkdir()
    assert "is not a class index" in error_line(invoke(*args))


def test_class_masks_merge_the_ignore_map_into_background_only(multiclass_case, tmp_path):
    """Manifest class masks are imageio.load_eval_class_mask's; metadata ones merge ignore the same way."""
    from wsolbench.manifest import load_eval_class_mask, load_manifest

    meta, root, _ = multiclass_case
    ignore = np.zeros((4, 4), np.uint8)
    ignore[:2, 1:3] = 255  # over class 0 at (0, 1) and (1, 1), background at (0, 2) and (1, 2)
    assert cv2.imwrite(str(root / "seg/1_ignore.png"), ignore)
    expected = MC_MASKS["im/1.jpg"].copy()
    expected[(ignore != 0) & (expected == 0)] = V
    write(meta, "localization.txt", ["im/1.jpg,seg/1.png,seg/1_ignore.png", "im/2.jpg,seg/2.png,"])
    gt = load_ground_truth(metadata=meta, mask_root=root)
    np.testing.assert_array_equal(gt.class_mask("im/1.jpg", 4), expected)
    np.testing.assert_array_equal(gt.class_mask("im/1.jpg", 8), np.kron(expected, np.ones((2, 2), np.uint8)))
    samples = [Sample("im/1.jpg", "img/1.jpg", 0, 4, 4, (), "seg/1.png", "seg/1_ignore.png"),
               Sample("im/2.jpg", "img/2.jpg", 0, 4, 4, (), "seg/2.png")]
    write_manifest(tmp_path / "m", name="voc-mini", root=str(root), classes=["a", "b", "c"], splits={"val": samples})
    gt = load_ground_truth(manifest=tmp_path / "m", split="val")
    manifest = load_manifest(tmp_path / "m")
    for resolution in (4, 8):
        np.testing.assert_array_equal(gt.class_mask("im/1.jpg", resolution),
                                      load_eval_class_mask(manifest, manifest.split("val")[0], resolution))
    np.testing.assert_array_equal(gt.class_mask("im/1.jpg", 4), expected)
    np.testing.assert_array_equal(gt.class_mask("im/2.jpg", 4), MC_MASKS["im/2.jpg"])


def test_multiclass_manifest_label_sets_come_from_label_and_mask(tmp_path):
    root, maps = tmp_path / "voc", tmp_path / "cams"
    samples = []
    for k, (image_id, mask) in enumerate(MC_MASKS.items()):
        palette_png(root / f"seg/{k}.png", mask)
        samples.append(Sample(image_id, f"img/{k}.jpg", 0, 4, 4, (), f"seg/{k}.png"))
    write_manifest(tmp_path / "m", name="voc-mini", root="../voc", classes=["a", "b", "c"], splits={"val": samples})
    # Label sets: image 1 {0, 1}, image 2 {0, 1} (its mask holds value 2 = class 1).
    arrays = {(c, i): np.array(v, np.float32) for (c, i), v in MC_MAPS.items() if c != 2}
    arrays[(1, "im/2.jpg")] = np.full((4, 4), 0.9, np.float32)
    for (c, image_id), a in arrays.items():
        save_map(maps / str(c), image_id, a)
    out = run_json("--scoremaps", maps, "--manifest", tmp_path / "m", "--split", "val", "--multiclass",
                   "--resolution", 4, "--threshold-step", 0.5)
    keys = sorted(arrays, key=lambda k: (k[1], k[0]))
    acc = MultiClassMaskAccumulator(cam_thresholds(0.5), 3)
    acc.update(np.stack([arrays[k] for k in keys]), np.stack([MC_MASKS[i] for _, i in keys]),
               np.array([c for c, _ in keys]), [i for _, i in keys])
    ref = acc.compute()
    assert out["mPxAP"] == ref.mpxap and out["PxAP_per_class"]["1"] == ref.pxap[1]
    assert out["class_names"] == ["a", "b", "c"] and out["n_pairs"] == 4 and out["n_unlabelled_mask_classes"] == 0
