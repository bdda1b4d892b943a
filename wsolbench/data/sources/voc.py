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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolbench.data.sources.common import (
    Conversion,
    SourceOption,
    clip_box,
    format_items,
    holdout_count,
    probe_images,
    read_lines,
    read_voc_xml,
    register_source,
    sizes_or_fail,
)
from wsolbench.errors import ConfigError, ManifestError
from wsolbench.imageio import read_index_mask
from wsolbench.manifest import Sample
from wsolbench.structs import MASK_IGNORE
from wsolbench.progress import Progress

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VAL_SIZE = 300


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "Annotations").is_dir():
            return candidate
    raise ManifestError(f"{root}: no JPEGImages/ and Annotations/; --root must be VOCdevkit/VOC2012 (or a "
                        "folder holding it)")


def _ids(path: Path) -> list[str]:
    ids = [line.split()[0] for _, line in read_lines(path)]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{path}: an image id is listed twice")
    return ids


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
    ),
)
def convert_voc(root: Path, out: Path, *, progress: Progress, jobs: int, val_size: int = VAL_SIZE, seed: int = 0,
                train_list: str = "auto") -> Conversion:
    root = _find_root(root)
    seg = root / "ImageSets" / "Segmentation"
    seg_train, seg_val = _ids(seg / "train.txt"), _ids(seg / "val.txt")
    overlap = sorted(set(seg_train) & set(seg_val))
    if overlap:
        raise ManifestError(f"{seg}: train.txt and val.txt share {len(overlap)} ids: {format_items(overlap)}")
    if not 1 <= val_size < len(seg_train):
        raise ConfigError(f"--val-size must be in [1, {len(seg_train) - 1}], got {val_size}")
    held = holdout_count(seg_train, val_size, seed)
    main = root / "ImageSets" / "Main" / "trainval.txt"
    if train_list == "auto":
        train_list = "main" if main.is_file() else "segmentation"
    if train_list == "main":
        excluded = held | set(seg_val)
        train_ids = [i for i in _ids(main) if i not in excluded]
    else:
        train_ids = [i for i in seg_train if i not in held]
    val_ids = [i for i in seg_train if i in held]

    index = {name: k for k, name in enumerate(VOC_CLASSES)}
    parsed = {}
    with progress.phase("voc: annotations", len(train_ids) + len(val_ids) + len(seg_val)) as advance:
        for image_id in train_ids + val_ids + seg_val:
            xml = root / "Annotations" / f"{image_id}.xml"
            size, objects = read_voc_xml(xml)
            unknown = sorted({o.name for o in objects} - set(index))
            if unknown:
                raise ManifestError(f"{xml}: unknown class(es) {', '.join(unknown)} (VOC has {', '.join(VOC_CLASSES)})")
            parsed[image_id] = (size, objects)
            advance(1)
    unsized = [i for i, (size, _) in parsed.items() if size is None]
    if unsized:
        infos = probe_images([root / "JPEGImages" / f"{i}.jpg" for i in unsized], jobs=jobs, progress=progress,
                             what="voc: image sizes")
        for image_id, size in zip(unsized, sizes_or_fail(infos, "VOC")):
            parsed[image_id] = (size, parsed[image_id][1])

    counts = {"clipped_boxes": 0, "mask_only_classes": 0}

    def sample(image_id: str, localized: bool) -> Sample:
        (width, height), objects = parsed[image_id]
        classes = {index[o.name] for o in objects}
        mask = None
        if localized:
            mask = root / "SegmentationClass" / f"{image_id}.png"
            values = read_index_mask(mask)
            if values.shape != (height, width):
                raise ManifestError(f"{mask}: size {values.shape[1]}x{values.shape[0]} differs from the image's "
                                    f"{width}x{height}")
            present = {int(v) - 1 for v in np.unique(values) if 1 <= v <= len(VOC_CLASSES)}
            bad = sorted(int(v) for v in np.unique(values) if v > len(VOC_CLASSES) and v != MASK_IGNORE)
            if bad:
                raise ManifestError(f"{mask}: values {bad} are neither a class (1..20), background (0) nor void "
                                    "(255)")
            counts["mask_only_classes"] += len(present - classes)
            classes |= present
        if not classes:
            raise ManifestError(f"{root / 'Annotations' / (image_id + '.xml')}: no object (and no mask class)")
        if objects:
            areas = [(o.box[2] - o.box[0] + 1) * (o.box[3] - o.box[1] + 1) for o in objects]
            label = index[objects[int(np.argmax(areas))].name]  # argmax: the first of equal areas
        else:
            label = min(classes)
        labels = tuple(sorted(classes)) if len(classes) > 1 else ()
        path = str(root / "JPEGImages" / f"{image_id}.jpg")
        if not localized:
            return Sample(image_id, path, label, width, height, labels=labels)
        boxes = []
        for o in objects:
            if index[o.name] == label:
                box, changed = clip_box(tuple(v - 1.0 for v in o.box), width, height)
                counts["clipped_boxes"] += changed
                boxes.append(box)
        return Sample(image_id, path, label, width, height, tuple(boxes), str(mask), labels=labels,
                      mask_kind="class_index")

    splits = {"train": [sample(i, False) for i in train_ids], "val": [sample(i, True) for i in val_ids],
              "test": [sample(i, True) for i in seg_val]}
    info = {"val": {"source": "segmentation-train-holdout", "size": val_size, "seed": seed},
            "train_list": train_list, "label_rule": "class of the largest object box",
            "boxes": "objects of the label's class, 1-based VOC coordinates minus 1", **counts}
    name = f"voc/val=seg-train-holdout-{val_size}-seed{seed}"
    return Conversion(name=name, classes=VOC_CLASSES, splits=splits, info=info)
