"""PASCAL VOC 2012 (Everingham et al.): 20 classes, several per image; class-index masks (mPxAP).

Layout (``VOCdevkit/VOC2012/``; ``--root`` may be ``VOCdevkit``, ``VOC2012`` or
their parent; card: ``data_manifests/voc.md``)::

    JPEGImages/<id>.jpg
    Annotations/<id>.xml                     objects: <name>, <bndbox> 1-based inclusive pixels
    SegmentationClass/<id>.png               palette PNG: 0 background, c + 1 class c, 255 void
    ImageSets/Segmentation/{train,val}.txt   1,464 / 1,449 ids
    ImageSets/Main/trainval.txt              11,540 ids with annotations (optional, for a larger train)

Conventions:

- classes in the standard order (:data:`VOC_CLASSES`); label set = the classes
  of the XML objects (difficult ones included) plus any class present in the
  segmentation mask;
- ``label`` (the manifest's single label, used by single-label training and the
  GT-known CAM) = the class of the largest object box (ties: the first in the
  XML); ``labels`` = the whole set (multi-label images);
- boxes: the objects of class ``label`` only, converted to 0-based by
  subtracting 1 from every coordinate (py-faster-rcnn's convention), so they are
  inclusive pixels like the synthetic data's;
- masks: the ``SegmentationClass`` PNG itself, ``mask_kind: class_index`` (read as
  palette indices with Pillow, never as colours): for a single-label evaluation
  the foreground is class ``label``'s pixels, void (255) is ignored; the
  multi-class evaluation (mPxAP) scores each class of the label set.

Splits: ``test`` = Segmentation ``val`` (1,449, masks); ``val`` = a seeded
hold-out of ``--val-size`` (default 300) Segmentation ``train`` images, with
masks; ``train`` = labels only: ``Main/trainval`` minus those two
(``--train-list main``, the default when the file exists: about 9,800 images),
or the rest of Segmentation ``train`` (``--train-list segmentation``: 1,164).

Every fault is collected in one pass (:mod:`.problems`): ids listed twice,
XML files that are missing or do not parse, unknown class names, images that
are missing or do not decode (unless ``--headers-only``), masks that are
missing, unreadable, of another size or with values that are not classes, and
boxes with a negative or zero size or outside the image (``--clip-boxes``
clips those instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolbench.data.sources.common import (
    CLIP_BOXES,
    HEADERS_ONLY,
    BoxCheck,
    Conversion,
    Problems,
    RootLayoutError,
    SourceOption,
    format_items,
    holdout_count,
    probe_images,
    read_lines,
    read_voc_xml,
    register_source,
    usable_sizes,
)
from wsolbench.data.sources.problems import fmt_box
from wsolbench.errors import ConfigError, DataError
from wsolbench.imageio import read_index_mask
from wsolbench.manifest import Sample
from wsolbench.progress import Progress
from wsolbench.structs import MASK_IGNORE

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VAL_SIZE = 300


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "Annotations").is_dir():
            return candidate
    raise RootLayoutError(root, "no JPEGImages/ and Annotations/", "be VOCdevkit/VOC2012 (or a folder holding it)")


def _ids(path: Path, problems: Problems) -> list[str]:
    """The ids of an ImageSets list, each once (a repeated id is a problem)."""
    ids: dict[str, int] = {}
    for lineno, line in read_lines(path, problems=problems) or []:
        image_id = line.split()[0]
        if image_id in ids:
            problems.add(f"id {image_id} is listed twice (first at line {ids[image_id]})", file=path, line=lineno,
                         image=image_id)
            continue
        ids[image_id] = lineno
    return list(ids)


@register_source(
    "voc",
    summary="PASCAL VOC 2012: 20 classes, several per image; class-index masks for PxAP / mPxAP",
    options=(
        SourceOption("val_size", "int", "Segmentation-train images held out as val (with masks).",
                     default=VAL_SIZE),
        SourceOption("seed", "int", "Seed of the val hold-out.", default=0),
        SourceOption("train_list", "choice", "train images: main (ImageSets/Main/trainval minus val and test), "
                     "segmentation (the rest of Segmentation/train), or auto (main when the file exists).",
                     default="auto", choices=("auto", "main", "segmentation")),
        CLIP_BOXES,
        HEADERS_ONLY,
    ),
    version=2,
    find_root=_find_root,
)
def convert_voc(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems, val_size: int = VAL_SIZE,
                seed: int = 0, train_list: str = "auto", clip_boxes: bool = False,
                headers_only: bool = False) -> Conversion:
    root = _find_root(root)
    seg = root / "ImageSets" / "Segmentation"
    seg_train, seg_val = _ids(seg / "train.txt", problems), _ids(seg / "val.txt", problems)
    overlap = sorted(set(seg_train) & set(seg_val))
    if overlap:
        problems.add(f"train.txt and val.txt share {len(overlap)} ids: {format_items(overlap)}", file=seg)
        seg_train = [i for i in seg_train if i not in set(overlap)]
    held: set[str] = set()
    if 1 <= val_size < len(seg_train):
        held = holdout_count(seg_train, val_size, seed)
    elif not problems:
        raise ConfigError(f"--val-size must be in [1, {len(seg_train) - 1}], got {val_size}")
    main = root / "ImageSets" / "Main" / "trainval.txt"
    if train_list == "auto":
        train_list = "main" if main.is_file() else "segmentation"
    if train_list == "main":
        excluded = held | set(seg_val) | set(overlap)
        train_ids = [i for i in _ids(main, problems) if i not in excluded]
    else:
        train_ids = [i for i in seg_train if i not in held]
    val_ids = [i for i in seg_train if i in held]

    index = {name: k for k, name in enumerate(VOC_CLASSES)}
    everything = train_ids + val_ids + seg_val
    parsed = {}
    with progress.phase("voc: annotations", len(everything)) as advance:
        for image_id in everything:
            xml = root / "Annotations" / f"{image_id}.xml"
            read = read_voc_xml(xml, problems=problems, image=image_id)
            advance(1)
            if read is None:
                continue
            unknown = sorted({o.name for o in read[1]} - set(index))
            if unknown:
                problems.add(f"unknown class(es) {', '.join(unknown)} (VOC has {', '.join(VOC_CLASSES)})", file=xml,
                             image=image_id)
                continue
            parsed[image_id] = read
    infos = probe_images([root / "JPEGImages" / f"{i}.jpg" for i in everything], jobs=jobs, progress=progress,
                         what="voc: " + ("image sizes" if headers_only else "decoding images"), decode=not headers_only)
    found = usable_sizes(infos, everything, problems)
    sizes = {i: parsed[i][0] or found[i] for i in everything if i in parsed and i in found}

    counts = {"mask_only_classes": 0}
    check = BoxCheck(problems, clip=clip_boxes)

    def sample(image_id: str, localized: bool) -> Sample | None:
        if image_id not in sizes:
            return None  # already a problem
        width, height = sizes[image_id]
        objects = parsed[image_id][1]
        xml = root / "Annotations" / f"{image_id}.xml"
        classes = {index[o.name] for o in objects}
        mask = None
        if localized:
            mask = root / "SegmentationClass" / f"{image_id}.png"
            try:
                values = read_index_mask(mask)
            except DataError as exc:
                problems.add_error(exc, image=image_id)
                return None
            if values.shape != (height, width):
                problems.add(f"mask is {values.shape[1]}x{values.shape[0]}, the image {width}x{height}", file=mask,
                             image=image_id)
                return None
            present = {int(v) - 1 for v in np.unique(values) if 1 <= v <= len(VOC_CLASSES)}
            bad = sorted(int(v) for v in np.unique(values) if v > len(VOC_CLASSES) and v != MASK_IGNORE)
            if bad:
                problems.add(f"mask values {bad} are neither a class (1..20), background (0) nor void (255)",
                             file=mask, image=image_id)
                return None
            counts["mask_only_classes"] += len(present - classes)
            classes |= present
        if not classes:
            problems.add("no object (and no mask class)", file=xml, image=image_id)
            return None
        if objects:
            areas = [(o.box[2] - o.box[0] + 1) * (o.box[3] - o.box[1] + 1) for o in objects]
            label = index[objects[int(np.argmax(areas))].name]  # argmax: the first of equal areas
        else:
            label = min(classes)
        labels = tuple(sorted(classes)) if len(classes) > 1 else ()
        path = str(root / "JPEGImages" / f"{image_id}.jpg")
        if not localized:
            return Sample(image_id, path, label, width, height, labels=labels)
        boxes = [check(tuple(v - 1.0 for v in o.box), width, height, file=xml, image=image_id,
                       written=f"{o.name} box {fmt_box(o.box)} (1-based)")
                 for o in objects if index[o.name] == label]
        if any(b is None for b in boxes):
            return None
        return Sample(image_id, path, label, width, height, tuple(boxes), str(mask),  # type: ignore[arg-type]
                      labels=labels, mask_kind="class_index")

    def rows(ids: list[str], localized: bool) -> list[Sample]:
        return [s for s in (sample(i, localized) for i in ids) if s is not None]

    splits = {"train": rows(train_ids, False), "val": rows(val_ids, True), "test": rows(seg_val, True)}
    info = {"val": {"source": "segmentation-train-holdout", "size": val_size, "seed": seed},
            "train_list": train_list, "label_rule": "class of the largest object box",
            "boxes": "objects of the label's class, 1-based VOC coordinates minus 1",
            "clipped_boxes": check.clipped, **counts}
    name = f"voc/val=seg-train-holdout-{val_size}-seed{seed}"
    return Conversion(name=name, classes=VOC_CLASSES, splits=splits, info=info)
