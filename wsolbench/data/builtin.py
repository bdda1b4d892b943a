"""What the built-in generated datasets share: per-image seeding, balanced labels, tight boxes, a cached build.

The shapes set (:mod:`wsolbench.data.synthetic`) and the digits set
(:mod:`wsolbench.data.digits`) differ only in how one image is drawn. Both:

- draw image ``i`` of split ``s`` from its own generator,
  ``SeedSequence(seed, spawn_key=(crc32(s), 0, i))`` (:func:`image_rng`), and take
  its label from balanced blocks of ``K`` (:func:`split_labels`), so image ``i`` is
  the same whatever the split sizes are;
- give ``val`` and ``test`` one box per image, the tight box of the mask in
  inclusive pixels (:func:`tight_box`), and ``train`` labels only;
- live in ``<out_dir>/<kind>-<stable_hash(config)>``, with a ``<kind>.json`` sidecar
  recording the generator version and the config; a complete build of the same
  config and version is reused, anything else is rebuilt in a temporary sibling
  folder and renamed into place, so an interrupted build never leaves a loadable
  half dataset (:func:`build_generated`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench._io import DIR_MODE
from wsolbench.config import stable_hash, to_dict
from wsolbench.errors import ManifestError, OutputError
from wsolbench.manifest import Sample, load_manifest, write_manifest

SPLITS = ("train", "val", "test")

#: ``render(split, index, label) -> (image, mask, extra)``: ``(S, S, 3)`` uint8 RGB, ``(S, S)`` uint8 mask in
#: {0, 1}, and a JSON value kept per image in the build's sidecar (None when the set keeps none).
Render = Callable[[str, int, int], tuple[np.ndarray, np.ndarray, Any]]


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the non-zero pixels of ``mask``, inclusive (last column / row)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("tight_box of an empty mask")
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def split_key(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split`` (independent of the split's size)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_key(split), 0, index)))


def split_labels(seed: int, num_classes: int, split: str, n: int) -> np.ndarray:
    """Labels of the first ``n`` images of ``split``: blocks of K, each a seeded permutation of the classes.

    Label ``i`` does not depend on ``n``; class counts differ by at most one.
    """
    blocks = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_key(split), 1, b)))
              .permutation(num_classes) for b in range(-(-n // num_classes))]
    return (np.concatenate(blocks)[:n] if blocks else np.zeros(0, np.int64)).astype(np.int64)


def sub_streams(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """``count`` independent generators seeded from ``rng``: one per layer of an image, so that changing one
    knob leaves the other layers as they were."""
    return [np.random.Generator(np.random.PCG64(int(s))) for s in rng.integers(0, 2**63, size=count)]


def smooth_noise(rng: np.random.Generator, cells: int, size: int, channels: int) -> np.ndarray:
    """A ``(size, size, channels)`` float32 low-frequency field: ``cells x cells`` N(0, 1), bicubic-upsampled."""
    field_ = rng.standard_normal((cells, cells, channels), dtype=np.float32)
    out = cv2.resize(field_, (size, size), interpolation=cv2.INTER_CUBIC)
    return out if out.ndim == 3 else out[:, :, None]


@dataclass(frozen=True)
class GeneratedSet:
    """One built-in dataset as the builder sees it.

    ``kind`` names the folder prefix, the ``<kind>.json`` sidecar, the manifest and error messages;
    ``config`` is the frozen config section (with ``seed``, ``num_classes``, ``image_size`` and
    ``n_train`` / ``n_val`` / ``n_test``); ``version`` the generator version (bump it when the images a
    config produces change). ``extras_file``: where the per-image ``extra`` values of ``render`` go,
    ``{split: [extra, ...]}`` (None: the set keeps none). ``manifest_info``: the manifest header's ``info``.
    """

    kind: str
    config: Any
    version: int
    classes: tuple[str, ...]
    render: Render
    extras_file: str | None = None
    manifest_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def info_file(self) -> str:
        return f"{self.kind}.json"

    def sizes(self) -> dict[str, int]:
        cfg = self.config
        return {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}

    def info(self) -> dict[str, Any]:
        return {"generator_version": self.version, "config": to_dict(self.config)}

    def directory(self, out_dir: Path) -> Path:
        return Path(out_dir) / f"{self.kind}-{stable_hash(to_dict(self.config))}"


def is_complete(directory: Path, spec: GeneratedSet) -> bool:
    """A finished build of exactly this config and generator version (every file present)."""
    try:
        info = json.loads((directory / spec.info_file).read_text())
    except (OSError, ValueError):
        return False
    if info != json.loads(json.dumps(spec.info())):
        return False
    if spec.extras_file is not None and not (directory / spec.extras_file).is_file():
        return False
    try:
        manifest = load_manifest(directory, check_files=True)
    except ManifestError:
        return False
    return all(len(manifest.splits.get(s, ())) == n for s, n in spec.sizes().items())


def encode_png(array: np.ndarray, path: Path) -> None:
    ok, data = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError(f"cannot encode {path}")
    with open(path, "wb") as handle:
        handle.write(data.tobytes())


def _generate_into(directory: Path, spec: GeneratedSet, progress: Callable[[int, int], None] | None) -> None:
    cfg, sizes = spec.config, spec.sizes()
    total, done = sum(sizes.values()), 0
    samples: dict[str, list[Sample]] = {}
    extras: dict[str, list[Any]] = {}
    for split, n in sizes.items():
        with_gt = split != "train"
        (directory / "images" / split).mkdir(parents=True)
        if with_gt:
            (directory / "masks" / split).mkdir(parents=True)
        width = max(6, len(str(n - 1)))
        labels = split_labels(cfg.seed, cfg.num_classes, split, n)
        rows, kept = [], []
        for i in range(n):
            label = int(labels[i])
            image, mask, extra = spec.render(split, i, label)
            stem = f"{i:0{width}d}.png"
            rel = f"images/{split}/{stem}"
            encode_png(np.ascontiguousarray(image[:, :, ::-1]), directory / rel)
            boxes: tuple = ()
            mask_rel = None
            if with_gt:
                mask_rel = f"masks/{split}/{stem}"
                encode_png(mask * np.uint8(255), directory / mask_rel)
                boxes = (tuple(float(v) for v in tight_box(mask)),)
            rows.append(Sample(image_id=f"{split}/{stem}", path=rel, label=label, width=cfg.image_size,
                               height=cfg.image_size, boxes=boxes, mask=mask_rel))
            kept.append(extra)
            done += 1
            if progress is not None:
                progress(done, total)
        samples[split] = rows
        extras[split] = kept
    if spec.extras_file is not None:
        (directory / spec.extras_file).write_text(json.dumps(extras, separators=(",", ":")) + "\n")
    (directory / spec.info_file).write_text(json.dumps(spec.info(), indent=2, sort_keys=True) + "\n")
    write_manifest(directory, name=spec.kind, root=".", classes=spec.classes, splits=samples,
                   info=spec.manifest_info or None)


def _publish(tmp: Path, target: Path, spec: GeneratedSet) -> None:
    """Move the finished ``tmp`` to ``target``; an outdated ``target`` is moved aside first."""
    for _ in range(3):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if not target.exists():
                raise
        if is_complete(target, spec):  # another process finished the same build first
            return
        trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        try:
            os.rename(target, trash / "data")
        except FileNotFoundError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    raise OutputError(f"cannot move the {spec.kind} dataset into {target}")


def build_generated(spec: GeneratedSet, out_dir: str | Path,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate (or reuse) ``spec``'s dataset under ``out_dir``; return its manifest directory.

    Layout: ``images/<split>/``, ``masks/{val,test}/`` (0 / 255 PNGs), the manifest (root ``"."``),
    ``<kind>.json`` and, when the set keeps one, its per-image extras file. ``progress(done, total)``
    is called after each image of a new build (never for a reused one).
    """
    out_dir = Path(out_dir)
    target = spec.directory(out_dir)
    if is_complete(target, spec):
        return target
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp"))
        os.chmod(tmp, DIR_MODE)
    except OSError as exc:
        raise OutputError(f"cannot create the {spec.kind} dataset in {out_dir}: {exc.strerror}") from None
    try:
        try:
            _generate_into(tmp, spec, progress)
            _publish(tmp, target, spec)
        except OSError as exc:
            raise OutputError(f"cannot write the {spec.kind} dataset in {out_dir}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
