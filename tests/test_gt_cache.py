"""The ground-truth cache of ``evaluate-cams`` and training evaluation, the batch reader of score maps, and
identical numbers with and without the cache and with one or two workers."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from miniature import make_openimages, png, write

import wsolbench.scoremaps.groundtruth as groundtruth
from wsolbench.errors import DataError, MetricInputError
from wsolbench.imageio import load_eval_mask
from wsolbench.manifest import Sample, load_manifest, write_manifest
from wsolbench.metrics import BoxAccumulator, cam_thresholds
from wsolbench.scoremaps import evaluate_cams
from wsolbench.scoremaps.cache import (
    GroundTruthArrays,
    GroundTruthCache,
    default_cache_dir,
    manifest_split_arrays,
    metadata_key,
)
from wsolbench.scoremaps.files import read_scoremap_batch
from wsolbench.scoremaps.groundtruth import ManifestGroundTruth, MetadataGroundTruth

R = 32  # score maps (and the ground truth) at 32 x 32: small and fast


def smooth(rng: np.random.Generator) -> np.ndarray:
    up = cv2.resize(rng.random((5, 5)), (R, R), interpolation=cv2.INTER_CUBIC)
    return ((up - up.min()) / (up.max() - up.min())).astype(np.float32)


def save_map(root: Path, image_id: str, array: np.ndarray) -> None:
    path = root / (image_id + ".npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


@pytest.fixture
def boxes_case(tmp_path):
    """A CUB-style metadata split of 7 images (one with two boxes) and their maps."""
    rng = np.random.default_rng(0)
    meta, maps = tmp_path / "metadata/CUB/test", tmp_path / "box-maps"
    ids, sizes, loc = [], [], []
    for k in range(7):
        image_id = f"test/{k % 3:03d}/{k}.jpg"
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        ids.append(image_id)
        sizes.append(f"{image_id},{w},{h}")
        loc.append(f"{image_id},{x0},{y0},{x0 + w // 3},{y0 + h // 3}")
        if k == 3:
            loc.append(f"{image_id},0,0,{w - 1},{h // 4}")
        save_map(maps, image_id, smooth(rng))
    write(meta / "image_ids.txt", ids, newline_at_end=False)
    write(meta / "class_labels.txt", [f"{i},{k % 3}" for k, i in enumerate(ids)])
    write(meta / "image_sizes.txt", sizes)
    write(meta / "localization.txt", loc)
    return {"metadata": meta, "scoremaps": maps}


@pytest.fixture
def masks_case(tmp_path):
    """The miniature OpenImages30k (instances in several PNG modes, ignore maps) and maps for its test split."""
    data = make_openimages(tmp_path)
    meta = data["metadata"] / "test"
    rng = np.random.default_rng(1)
    maps = tmp_path / "maps"
    for image_id in (meta / "image_ids.txt").read_text().split("\n"):
        save_map(maps, image_id, smooth(rng))
    return {"metadata": meta, "mask_root": data["root"], "scoremaps": maps}


def run(case: dict, cache: Path | None, **kwargs) -> dict:
    return evaluate_cams(**case, resolution=R, cache_dir=cache, use_cache=cache is not None, **kwargs)


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "groundtruth").glob("*.gt"))


def forbid_reading_the_source(monkeypatch) -> None:
    """Make any read of the metadata or of a mask file fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("the ground truth was read from its source")

    monkeypatch.setattr(groundtruth, "read_metadata_split", refuse)
    monkeypatch.setattr(groundtruth, "load_metadata_mask", refuse)
    monkeypatch.setattr(groundtruth, "load_eval_mask", refuse)


# --------------------------------------------------------------------------- hits and misses


@pytest.mark.parametrize("kind", ["boxes", "masks"])
def test_a_second_evaluation_reads_the_cache_not_the_sources(kind, boxes_case, masks_case, tmp_path, monkeypatch):
    case = boxes_case if kind == "boxes" else masks_case
    cache = tmp_path / "cache"
    first = run(case, cache)
    assert len(entries(cache)) == 1
    forbid_reading_the_source(monkeypatch)
    assert run(case, cache) == first
    with pytest.raises(AssertionError, match="read from its source"):
        run(case, None)  # without the cache the sources are read (the patch bites)


def test_numbers_are_identical_with_and_without_the_cache_and_workers(boxes_case, masks_case, tmp_path):
    for name, case in (("boxes", boxes_case), ("masks", masks_case)):
        plain = run(case, None, workers=1, batch_size=3)
        cached_first = run(case, tmp_path / name, workers=2, batch_size=2)
        cached_again = run(case, tmp_path / name, workers=2)
        assert plain == cached_first == cached_again
        assert run(case, None, workers=2) == plain
    # the masks read through the cache are the reference reading's, pixel for pixel
    gt = MetadataGroundTruth(groundtruth.read_metadata_split(masks_case["metadata"], mask_root=masks_case["mask_root"]))
    arrays = GroundTruthArrays.build(gt, R, workers=2)
    ids = list(gt.image_ids)
    np.testing.assert_array_equal(arrays.masks_batch(ids, R), np.stack([gt.mask(i, R) for i in ids]))
    assert set(np.unique(arrays.masks_batch(ids, R))) == {0, 1, 255}


def test_box_numbers_match_the_accumulator_fed_directly(boxes_case, tmp_path):
    out = run(boxes_case, tmp_path / "cache", workers=2)
    gt = MetadataGroundTruth(groundtruth.read_metadata_split(boxes_case["metadata"]))
    ids = list(gt.image_ids)
    acc = BoxAccumulator(cam_thresholds(0.01))
    acc.update(np.stack([np.load(boxes_case["scoremaps"] / f"{i}.npy") for i in ids]), [gt.boxes(i, R) for i in ids],
               ids)
    assert out["MaxBoxAccV2"] == acc.compute().max_box_acc_v2
    assert out["MaxBoxAcc"] == acc.compute().max_box_acc


def test_changed_metadata_misses(boxes_case, tmp_path):
    cache = tmp_path / "cache"
    before = run(boxes_case, cache)
    loc = boxes_case["metadata"] / "localization.txt"
    lines = loc.read_text().splitlines()
    image_id = lines[0].split(",")[0]
    w, h = (boxes_case["metadata"] / "image_sizes.txt").read_text().splitlines()[0].split(",")[1:]
    lines[0] = f"{image_id},0,0,{int(w) - 1},{int(h) - 1}"  # the whole image: found at the low thresholds
    loc.write_text("\n".join(lines))
    after = run(boxes_case, cache)
    assert after == run(boxes_case, None) and after["curves"] != before["curves"]
    assert len(entries(cache)) == 2


def test_changed_resolution_and_mask_root_miss(masks_case, tmp_path):
    meta, root = masks_case["metadata"], masks_case["mask_root"]
    assert metadata_key(meta, root, 32) != metadata_key(meta, root, 64)
    cache = tmp_path / "cache"
    run(masks_case, cache)
    big = dict(masks_case, scoremaps=tmp_path / "maps64")
    for image_id in (meta / "image_ids.txt").read_text().split("\n"):
        save_map(big["scoremaps"], image_id, cv2.resize(np.load(masks_case["scoremaps"] / f"{image_id}.npy"), (64, 64)))
    out64 = evaluate_cams(**big, resolution=64, cache_dir=cache)
    assert out64 == evaluate_cams(**big, resolution=64, use_cache=False)
    assert len(entries(cache)) == 2
    moved = tmp_path / "moved"
    os.rename(root, moved)
    run(dict(masks_case, mask_root=moved), cache)
    assert len(entries(cache)) == 3


def test_a_replaced_mask_file_is_read_again(masks_case, tmp_path):
    cache = tmp_path / "cache"
    before = run(masks_case, cache)
    first_mask = (masks_case["metadata"] / "localization.txt").read_text().splitlines()[0].split(",")[1]
    path = masks_case["mask_root"] / first_mask
    stat = path.stat()
    png(path, np.full((16, 20), 255, np.uint8))  # the whole image is now this instance
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = run(masks_case, cache)
    assert after == run(masks_case, None) and after["PxAP"] != before["PxAP"]
    assert len(entries(cache)) == 1  # same key, entry replaced


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "other key"])
def test_a_corrupt_entry_is_rebuilt_not_trusted(damage, masks_case, tmp_path):
    cache = tmp_path / "cache"
    good = run(masks_case, cache)
    (path,) = entries(cache)
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) * 3 // 4]
    elif damage == "flip":
        data = data[:-5] + bytes([data[-5] ^ 0x10]) + data[-4:]  # one bit of the mask planes
    elif damage == "garbage":
        data = b"not a cache file at all"
    elif damage == "empty":
        data = b""
    else:
        data = data.replace(path.stem.encode(), b"0" * len(path.stem), 1)
    path.write_bytes(data)
    key = path.stem
    assert GroundTruthCache(cache).load(key, R) is None
    assert run(masks_case, cache) == good
    assert GroundTruthCache(cache).load(key, R) is not None  # rewritten whole


def test_the_entry_is_written_atomically(masks_case, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_write = Path.write_bytes
    logged = []

    def half_then_fail(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    class Log:
        def phase(self, description, total):
            import contextlib

            return contextlib.nullcontext(lambda n: None)

        def log(self, message):
            logged.append(message)

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    out = run(masks_case, cache, progress=Log())
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert out == run(masks_case, None)
    assert any("cache not written" in m for m in logged)
    assert list((cache / "groundtruth").iterdir()) == []  # neither a half file nor a temporary one
    run(masks_case, cache)
    (path,) = list((cache / "groundtruth").iterdir())  # only the finished entry, named by its key
    assert path.suffix == ".gt" and GroundTruthCache(cache).load(path.stem, R) is not None


def test_no_cache_writes_nothing_and_the_default_location(boxes_case, tmp_path, monkeypatch):
    monkeypatch.setenv("WSOLBENCH_CACHE_DIR", str(tmp_path / "env"))
    evaluate_cams(**boxes_case, resolution=R, use_cache=False)
    assert not (tmp_path / "env").exists()
    evaluate_cams(**boxes_case, resolution=R)
    assert len(entries(tmp_path / "env")) == 1
    monkeypatch.setenv("WSOLBENCH_CACHE_DIR", "off")
    assert default_cache_dir() is None
    monkeypatch.delenv("WSOLBENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "wsolbench"


# --------------------------------------------------------------------------- manifests and training


@pytest.fixture
def manifest_dir(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "data"
    samples = []
    for k in range(5):
        w, h = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        mask = (cv2.resize(rng.random((4, 4)), (w, h)) > 0.5).astype(np.uint8) * 255
        png(root / f"masks/{k}.png", mask)
        ignore = np.zeros((h, w), np.uint8)
        ignore[: h // 3] = 255
        png(root / f"masks/{k}_ignore.png", ignore)
        samples.append(Sample(f"test/{k}.png", f"images/{k}.png", k % 2, w, h, ((1, 1, w // 2, h // 2),),
                              f"masks/{k}.png", ignore=f"masks/{k}_ignore.png"))
        save_map(tmp_path / "maps", f"test/{k}.png", smooth(rng))
    write_manifest(tmp_path / "manifest", name="mini", root="../data", classes=["p", "q"], splits={"test": samples})
    return tmp_path / "manifest"


def test_manifest_split_cached_for_training_evaluation(manifest_dir, tmp_path, monkeypatch):
    manifest = load_manifest(manifest_dir)
    cache = GroundTruthCache(tmp_path / "cache")
    arrays = manifest_split_arrays(manifest, "test", R, cache=cache, workers=2)
    samples = manifest.split("test")
    ids = [s.image_id for s in samples]
    expected = np.stack([load_eval_mask(manifest, s, R) for s in samples])
    np.testing.assert_array_equal(arrays.masks_batch(ids, R), expected)
    np.testing.assert_array_equal(arrays.masks_batch(ids[::-1], R), expected[::-1])
    forbid_reading_the_source(monkeypatch)
    again = manifest_split_arrays(load_manifest(manifest_dir), "test", R, cache=cache)
    np.testing.assert_array_equal(again.masks_batch(ids, R), expected)
    assert manifest_split_arrays(manifest, "test", R, cache=None) is None


def test_manifest_evaluation_is_identical_through_the_cache(manifest_dir, tmp_path):
    case = {"manifest": manifest_dir, "scoremaps": tmp_path / "maps"}
    plain = evaluate_cams(**case, resolution=R, use_cache=False, workers=1)
    assert plain["ground_truth"] == ["boxes", "masks"]
    assert evaluate_cams(**case, resolution=R, cache_dir=tmp_path / "c", workers=2) == plain
    assert evaluate_cams(**case, resolution=R, cache_dir=tmp_path / "c", workers=2) == plain


def test_a_manifest_split_with_some_boxes_is_left_to_the_loader(tmp_path):
    root = tmp_path / "data"
    png(root / "m.png", np.full((8, 8), 255, np.uint8))
    samples = [Sample("a", "a.png", 0, 8, 8, ((1, 1, 4, 4),), "m.png"), Sample("b", "b.png", 0, 8, 8, (), "m.png")]
    write_manifest(tmp_path / "manifest", name="m", root="../data", classes=["p"], splits={"test": samples})
    manifest = load_manifest(tmp_path / "manifest")
    with pytest.raises(DataError):
        ManifestGroundTruth(manifest, "test")
    assert manifest_split_arrays(manifest, "test", R, cache=GroundTruthCache(tmp_path / "c")) is None


@pytest.mark.slow
def test_training_with_and_without_the_cache_gives_the_same_record(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from wsolbench.cli import cli
    from wsolbench.records import find_records, load_record

    summaries = []
    for name, where in (("off", "off"), ("on", str(tmp_path / "cache"))):
        monkeypatch.setenv("WSOLBENCH_CACHE_DIR", where)
        result = CliRunner().invoke(cli, ["train", "--preset", "smoke", "--threads", "1", "--output-dir",
                                          str(tmp_path / name), "--set", "train.select=best"])
        assert result.exit_code == 0, result.output
        record = load_record(find_records(tmp_path / name)[0])
        summaries.append((record["summary"], record["val"]["summary"]))
    assert "PxAP" in summaries[0][0]
    assert summaries[0] == summaries[1]
    assert len(entries(tmp_path / "cache")) == 2  # val and test, each read once for every epoch


# --------------------------------------------------------------------------- score-map files


def test_the_batch_reader_reads_every_layout_as_np_load(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {
        "f4": rng.random((R, R)).astype(np.float32),
        "f8": rng.random((R, R)),
        "big-endian": rng.random((R, R)).astype(">f4"),
        "fortran": np.asfortranarray(rng.random((R, R)).astype(np.float32)),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], array)
    paths["v2"] = tmp_path / "v2.npy"
    with open(paths["v2"], "wb") as handle:
        np.lib.format.write_array(handle, arrays["f4"], version=(2, 0))
    arrays["v2"] = arrays["f4"]
    only32 = read_scoremap_batch([paths["f4"], paths["v2"]], ["a", "b"], R)
    assert only32.dtype == np.float32
    np.testing.assert_array_equal(only32, np.stack([arrays["f4"], arrays["f4"]]))
    names = list(paths)
    mixed = read_scoremap_batch([paths[n] for n in names], names, R)
    assert mixed.dtype == np.float64  # float32 widened exactly
    np.testing.assert_array_equal(mixed, np.stack([arrays[n].astype(np.float64) for n in names]))
    np.save(tmp_path / "small.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(DataError, match=r"image 'x' .*small.npy.* has shape \(8, 8\)"):
        read_scoremap_batch([tmp_path / "small.npy"], ["x"], R)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(paths["f4"].read_bytes()[:-100])
    with pytest.raises(DataError, match="image 'y'.*cannot be read"):
        read_scoremap_batch([cut], ["y"], R)


def test_the_box_engine_range_check_leaves_the_counts_untouched():
    rng = np.random.default_rng(4)
    maps = np.stack([smooth(rng) for _ in range(3)])
    boxes = [np.array([[2, 2, 10, 10]])] * 3
    acc = BoxAccumulator(cam_thresholds(0.01), workers=2)
    acc.update(maps, boxes, ["a", "b", "c"])
    before = acc.correct.copy()
    for bad in (np.nan, 1.5, -0.25):
        broken = maps.copy()
        broken[1, 5, 7] = bad
        with pytest.raises(MetricInputError, match="image 'q'"):
            acc.update(broken, boxes, ["p", "q", "r"])
        np.testing.assert_array_equal(acc.correct, before)
        assert acc.count == 3


def test_a_map_outside_the_unit_interval_names_its_file(boxes_case, tmp_path):
    image_id = (boxes_case["metadata"] / "image_ids.txt").read_text().split("\n")[4]
    bad = np.load(boxes_case["scoremaps"] / f"{image_id}.npy")
    bad[3, 3] = 1.25
    save_map(boxes_case["scoremaps"], image_id, bad)
    with pytest.raises(DataError, match=rf"image '{image_id}' .*\.npy\) has values outside \[0, 1\]"):
        run(boxes_case, tmp_path / "cache")

