"""The ``wsolevaluation`` converter: split folders of the community's plain-text metadata.

Choe et al. (CVPR 2020) ship, per dataset and split, ``image_ids.txt``,
``class_labels.txt``, ``image_sizes.txt`` and ``localization.txt`` (boxes, or
mask files with an ignore file); :mod:`.wsolevaluation` reads them. This
converter turns the split folders under ``--metadata-root`` (``train``, ``val``,
``test``; any it finds) into one manifest. Card: ``data_manifests/wsolevaluation.md``.

- Image ids and paths: ``image_ids.txt``'s relative paths, under ``--root`` (or
  ``--split-root SPLIT=DIR`` for a split whose images live elsewhere, e.g. CUBV2).
- Sizes: ``image_sizes.txt`` when it lists the image, else read from the file
  header (OpenImages ships an empty ``image_sizes.txt``).
- Several labels (VOC-style ``class_labels.txt``): ``label`` = the first listed,
  ``labels`` = all of them.
- Boxes are kept as written; a box outside its image (the metadata's size) is
  a problem unless ``--clip-boxes`` clips it (counted in ``info``). ``train``
  keeps labels only, so its boxes are not read.
- Masks (paths under ``--mask-root``, default ``--root``): the instance masks of
  an image are read as the reference does (OpenCV greyscale, non-zero =
  foreground), OR-ed, and written as one 0/255 PNG into the manifest folder
  (``masks/<image id>.png``); the ignore file likewise (``masks/<id>_ignore.png``,
  ignore minus foreground). A mask whose size differs from its image is
  nearest-resized to the image size (counted in ``info``), since a manifest's
  masks have their image's size.
- Class names: the folder just above the image when it is the same for every
  image of a class and different between classes (CUB ``001.Black_footed_Albatross``,
  OpenImages ``01226z``), else ``class_<k>``.

Every fault of every split is collected in one pass (:mod:`.problems`): the
metadata files' lines (read with a collector), images that are missing or do
not decode (unless ``--headers-only``), mask and ignore files that are missing
or unreadable, boxes with a negative or zero size or outside the image.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from wsolbench.data.sources.common import (
    CLIP_BOXES,
    DERIVED_DIR,
    HEADERS_ONLY,
    BoxCheck,
    Conversion,
    Problems,
    SourceOption,
    parallel_map,
    probe_images,
    register_source,
    usable_sizes,
    write_png,
)
from wsolbench.data.sources.wsolevaluation import (
    CLASS_LABELS,
    IMAGE_IDS,
    LOCALIZATION,
    MetadataSplit,
    read_grayscale_nonzero,
    read_metadata_split,
)
from wsolbench.errors import ConfigError, DataError, ManifestError
from wsolbench.manifest import Sample
from wsolbench.progress import Progress

SPLITS = ("train", "val", "test")


def _split_roots(root: Path, items: tuple[str, ...]) -> dict[str, Path]:
    roots = {}
    for item in items:
        split, sep, folder = item.partition("=")
        if not sep or not split or not folder:
            raise ConfigError(f"--split-root expects SPLIT=DIR, got {item!r}")
        roots[split] = Path(folder).expanduser().resolve()
    return roots


def class_names_from_folders(ids_and_labels: list[tuple[str, int]], num_classes: int) -> tuple[str, ...]:
    """The parent-folder name of each class's images when it identifies the class, else ``class_<k>``."""
    folders: dict[int, set[str]] = {}
    for image_id, label in ids_and_labels:
        parts = PurePosixPath(image_id).parts
        folders.setdefault(label, set()).add(parts[-2] if len(parts) >= 2 else "")
    names = {k: next(iter(v)) for k, v in folders.items() if len(v) == 1 and next(iter(v))}
    if len(names) == len(folders) and len(set(names.values())) == len(names):
        return tuple(names.get(k, f"class_{k}") for k in range(num_classes))
    return tuple(f"class_{k}" for k in range(num_classes))


def _merge_masks(split: MetadataSplit, sample: Any, size: tuple[int, int], out: Path) -> tuple[str, str | None, dict]:
    """Union of the instance masks (and the ignore map) of one image, written under ``out``; paths + counts."""
    counts = {"resized_instances": 0, "resized_to_image": 0}
    foreground = None
    for path in split.mask_paths(sample):
        instance = read_grayscale_nonzero(path).astype(np.uint8)
        if foreground is None:
            foreground = instance
        else:
            if instance.shape != foreground.shape:
                instance = cv2.resize(instance, foreground.shape[::-1], interpolation=cv2.INTER_NEAREST)
                counts["resized_instances"] += 1
            foreground |= instance
    assert foreground is not None
    ignore = None
    ignore_path = split.ignore_path(sample)
    if ignore_path is not None:
        ignore = read_grayscale_nonzero(ignore_path, "ignore map").astype(np.uint8)
        if ignore.shape != foreground.shape:
            ignore = cv2.resize(ignore, foreground.shape[::-1], interpolation=cv2.INTER_NEAREST)
        ignore &= 1 - foreground
    if foreground.shape != (size[1], size[0]):
        foreground = cv2.resize(foreground, size, interpolation=cv2.INTER_NEAREST)
        ignore = None if ignore is None else cv2.resize(ignore, size, interpolation=cv2.INTER_NEAREST)
        counts["resized_to_image"] += 1
    stem = PurePosixPath(sample.image_id).with_suffix("")
    mask_file = out / DERIVED_DIR / f"{stem}.png"
    write_png(mask_file, foreground * np.uint8(255))
    ignore_file = None
    if ignore is not None:
        ignore_file = out / DERIVED_DIR / f"{stem}_ignore.png"
        write_png(ignore_file, ignore * np.uint8(255))
    return str(mask_file), None if ignore_file is None else str(ignore_file), counts


def convert_metadata(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                     metadata_root: Path | None, mask_root: Path | None = None, split_root: tuple[str, ...] = (),
                     name: str = "wsolevaluation", required: tuple[str, ...] = (),
                     class_names: tuple[str, ...] | None = None, clip_boxes: bool = False,
                     headers_only: bool = False) -> Conversion:
    """Convert the metadata split folders under ``metadata_root``; see the module docstring."""
    if metadata_root is None:
        raise ConfigError("--metadata-root is required (the folder with train/, val/, test/ metadata splits, "
                          "e.g. wsolevaluation's metadata/CUB)")
    metadata_root = Path(metadata_root)
    if not metadata_root.is_dir():
        raise ConfigError(f"--metadata-root {metadata_root} is not a folder")
    roots = _split_roots(root, split_root)
    found = [s for s in SPLITS if (metadata_root / s / "image_ids.txt").is_file()]
    absent = [s for s in required if s not in found]
    if absent:
        raise ManifestError(f"{metadata_root}: no {', '.join(absent)} split folder(s) (with image_ids.txt)")
    if not found:
        raise ManifestError(f"{metadata_root}: no split folder (train/, val/ or test/ with image_ids.txt)")
    unknown = sorted(set(roots) - set(found))
    if unknown:
        raise ConfigError(f"--split-root names split(s) {', '.join(unknown)} that {metadata_root} does not have")
    mask_base = Path(mask_root or root)

    metas = {s: read_metadata_split(metadata_root / s, mask_root=mask_base, problems=problems) for s in found}
    for meta in metas.values():
        if not meta.has_labels:
            problems.add("does not exist (a manifest needs every image's label)", file=meta.directory / CLASS_LABELS)
    labelled = [(s.image_id, s.labels[0]) for meta in metas.values() for s in meta if s.labels]
    num_classes = 1 + max((label for _, label in labelled), default=-1)
    if class_names is None:
        class_names = class_names_from_folders(labelled, num_classes)
    elif num_classes > len(class_names):
        raise ManifestError(f"{metadata_root}: label {num_classes - 1} is beyond the {len(class_names)} classes")

    splits: dict[str, list[Sample]] = {}
    check = BoxCheck(problems, clip=clip_boxes)
    totals = {"resized_instances": 0, "resized_to_image": 0, "multi_label_images": 0}
    for split, meta in metas.items():
        image_root = roots.get(split, root)
        paths = [image_root / s.image_id for s in meta]
        infos = probe_images(paths, jobs=jobs, progress=progress, decode=not headers_only,
                             what=f"{name}: {split} " + ("image sizes" if headers_only else "images"))
        probed = usable_sizes(infos, meta.image_ids, problems, listed=meta.directory / IMAGE_IDS,
                              lines=[s.line for s in meta])
        sizes = {s.image_id: s.size or probed[s.image_id] for s in meta if s.image_id in probed}

        merged: dict[str, tuple[str, str | None]] = {}
        if meta.kind == "masks" and split != "train":
            usable = [i for i, s in enumerate(meta.samples) if s.image_id in sizes and s.masks]

            def merge(i: int, meta: MetadataSplit = meta) -> tuple[str, str | None, dict] | DataError:
                sample = meta.samples[i]
                try:
                    return _merge_masks(meta, sample, sizes[sample.image_id], out)
                except DataError as exc:
                    return exc

            with progress.phase(f"{name}: merging {split} masks", len(usable)) as advance:
                for i, result in zip(usable, parallel_map(merge, usable, jobs=jobs)):
                    image_id = meta.samples[i].image_id
                    if isinstance(result, DataError):
                        problems.add_error(result, image=image_id)
                    else:
                        mask, ignore, counts = result
                        merged[image_id] = (mask, ignore)
                        for key, value in counts.items():
                            totals[key] += value
                    advance(1)

        rows = []
        for s, path in zip(meta, paths):
            if s.image_id not in sizes or not s.labels:
                continue  # already a problem
            width, height = sizes[s.image_id]
            mask, ignore = merged.get(s.image_id, (None, None))
            if meta.kind == "masks" and split != "train" and mask is None:
                continue  # its masks are a problem
            # the protocol's train split: image labels only (its boxes, if any, are not read)
            boxes = [check(box, width, height, file=meta.directory / LOCALIZATION, line=line, image=s.image_id)
                     for box, line in zip(s.boxes, s.box_lines)] if split != "train" else []
            if any(b is None for b in boxes):
                continue  # a problem
            labels = tuple(sorted(s.labels)) if len(s.labels) > 1 else ()
            totals["multi_label_images"] += bool(labels)
            rows.append(Sample(s.image_id, str(path), s.labels[0], width, height,
                               tuple(boxes), mask, ignore, labels=labels))  # type: ignore[arg-type]
        splits[split] = rows
    info: dict[str, Any] = {"metadata_root": str(metadata_root), "mask_root": str(mask_base),
                            "split_roots": {k: str(v) for k, v in roots.items()}, "clipped_boxes": check.clipped,
                            **totals}
    derived = any(s.mask for rows in splits.values() for s in rows)
    missing_val = [s for s in ("val", "test") if s not in splits]
    if missing_val:
        info["note"] = f"no {' or '.join(missing_val)} split in the metadata"
    return Conversion(name=name, classes=tuple(class_names), splits=splits, info=info, derived_masks=derived)


@register_source(
    "wsolevaluation",
    summary="Split folders of the community metadata (wsolevaluation: image_ids, class_labels, image_sizes, "
            "localization)",
    options=(
        SourceOption("metadata_root", "path", "The folder holding train/, val/, test/ metadata splits "
                     "(e.g. wsolevaluation's metadata/CUB). Required."),
        SourceOption("mask_root", "path", "The folder mask paths of localization.txt are relative to. Default: "
                     "ROOT."),
        SourceOption("split_root", "multi", "SPLIT=DIR: the image folder of one split when it is not ROOT "
                     "(repeatable), e.g. val=/data/CUBV2."),
        CLIP_BOXES,
        HEADERS_ONLY,
    ),
    version=2,
)
def convert_wsolevaluation(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                           metadata_root: Path | None = None, mask_root: Path | None = None,
                           split_root: tuple[str, ...] = (), clip_boxes: bool = False,
                           headers_only: bool = False) -> Conversion:
    conversion = convert_metadata(root, out, progress=progress, jobs=jobs, problems=problems,
                                  metadata_root=metadata_root, mask_root=mask_root, split_root=split_root,
                                  clip_boxes=clip_boxes, headers_only=headers_only)
    if not conversion.splits:
        raise ManifestError(f"{metadata_root}: nothing to convert")
    return conversion

