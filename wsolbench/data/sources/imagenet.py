"""ImageNet (ILSVRC 2012 classification + localization): 1,000 classes.

Layouts (card: ``data_manifests/imagenet.md``), either the official one::

    ROOT/train/<wnid>/<wnid>_<n>.JPEG                    1,281,167 images
    ROOT/val/ILSVRC2012_val_<8 digits>.JPEG              50,000 images
    ROOT/val/ILSVRC2012_val_<8 digits>.xml               boxes (ILSVRC2012_bbox_val_v3.tgz), or --val-annotations DIR

or Kaggle's ("ImageNet Object Localization Challenge")::

    ROOT/ILSVRC/Data/CLS-LOC/{train/<wnid>/, val/}       the same images
    ROOT/ILSVRC/Annotations/CLS-LOC/val/*.xml            the same XML boxes
    ROOT/LOC_val_solution.csv                            ImageId,PredictionString ("wnid x0 y0 x1 y1 ...")
    ROOT/LOC_synset_mapping.txt                          "<wnid> <names>", the 1,000 classes (checked)

Conventions: label = index of the WNID in the sorted list of the ``train``
folders (class names are the WNIDs); image ids are paths under the image root
(``train/n01440764/n01440764_10026.JPEG``, ``val/ILSVRC2012_val_00000001.JPEG``:
the community metadata's ids). XML boxes are PASCAL-VOC style
``<xmin><ymin><xmax><ymax>`` and are kept as written (as the community
metadata does), clipped to the image; an image's label is its objects' WNID
(the boxes of other WNIDs, if any, are dropped and counted).

Splits: ``train`` = ILSVRC train, labels only; ``test`` = ILSVRC val (50,000,
boxes). ``val``:

- ``imagenetv2`` (the community protocol): ImageNetV2 images
  (``val2/<class index>/<file>.jpeg`` under ``--imagenetv2-root``, default the
  image root) with the boxes of ``--imagenetv2-metadata`` (wsolevaluation's
  ``metadata/ILSVRC/val``: 10,000 images);
- ``test-holdout`` (when ImageNetV2 is not available): ``--val-per-class``
  (default 10) ILSVRC val images per class, seeded, *taken out of test*. Test is
  then smaller than the published protocol's; the manifest name says so
  (``imagenet/val=test-holdout-10pc-seed0``).
"""

from __future__ import annotations

import os
from pathlib import Path

from wsolbench.data.sources.common import (
    Conversion,
    SourceOption,
    clip_box,
    format_items,
    holdout,
    list_images,
    parse_float,
    probe_images,
    read_lines,
    read_voc_xml,
    register_source,
    sizes_or_fail,
)
from wsolbench.data.sources.wsolevaluation import read_metadata_split
from wsolbench.errors import ConfigError, ManifestError
from wsolbench.manifest import Box, Sample
from wsolbench.progress import Progress

VAL_PER_CLASS = 10
KAGGLE_IMAGES = Path("ILSVRC/Data/CLS-LOC")
KAGGLE_XML = Path("ILSVRC/Annotations/CLS-LOC/val")
KAGGLE_CSV = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"


def _image_root(root: Path) -> Path:
    if (root / "train").is_dir():
        return root
    if (root / KAGGLE_IMAGES / "train").is_dir():
        return root / KAGGLE_IMAGES
    raise ManifestError(f"{root}: no train/ folder; --root must hold train/<wnid>/ and val/ (or Kaggle's "
                        f"{KAGGLE_IMAGES}/)")


def _wnids(image_root: Path, root: Path) -> tuple[str, ...]:
    train = image_root / "train"
    wnids = sorted(e.name for e in os.scandir(train) if e.is_dir())
    if not wnids:
        raise ManifestError(f"{train}: no class folders")
    mapping = root / KAGGLE_SYNSETS
    if mapping.is_file():
        listed = [line.split()[0] for _, line in read_lines(mapping)]
        if sorted(listed) != wnids:
            extra = sorted(set(listed) ^ set(wnids))
            raise ManifestError(f"{mapping} and the folders of {train} name different classes: "
                                f"{format_items(extra)}")
    return tuple(wnids)


def _read_csv(path: Path) -> dict[str, list[tuple[str, Box]]]:
    """``LOC_val_solution.csv``: image stem -> [(wnid, box)], boxes in file order."""
    out: dict[str, list[tuple[str, Box]]] = {}
    lines = read_lines(path)
    if lines and lines[0][1].lower().startswith("imageid"):
        lines = lines[1:]
    for lineno, line in lines:
        stem, _, prediction = line.partition(",")
        tokens = prediction.split()
        if not stem or not tokens or len(tokens) % 5:
            raise ManifestError(f"{path} line {lineno}: expected ImageId,\"wnid x0 y0 x1 y1 ...\"")
        if stem in out:
            raise ManifestError(f"{path} line {lineno}: image {stem!r} is listed twice")
        objects = []
        for k in range(0, len(tokens), 5):
            box = tuple(parse_float(v, path, lineno, "box coordinate") for v in tokens[k + 1:k + 5])
            objects.append((tokens[k], box))
        out[stem] = objects  # type: ignore[assignment]
    return out


@register_source(
    "imagenet",
    summary="ILSVRC 2012: 1,000 classes; test = ILSVRC val with boxes; val = ImageNetV2 (+ metadata) or a "
            "hold-out of test",
    options=(
        SourceOption("val_annotations", "path", "ILSVRC val boxes: a folder of ILSVRC2012_val_*.xml or Kaggle's "
                     "LOC_val_solution.csv. Default: val/*.xml, Kaggle's Annotations/CLS-LOC/val, or "
                     "ROOT/LOC_val_solution.csv."),
        SourceOption("imagenetv2_metadata", "path", "ImageNetV2 boxes: wsolevaluation's metadata/ILSVRC/val "
                     "folder (image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt)."),
        SourceOption("imagenetv2_root", "path", "The folder the ImageNetV2 metadata's ids (val2/<class>/<file>) "
                     "are relative to. Default: the image root."),
        SourceOption("val_source", "choice", "auto: imagenetv2 when --imagenetv2-metadata is given, else "
                     "test-holdout.", default="auto", choices=("auto", "imagenetv2", "test-holdout")),
        SourceOption("val_per_class", "int", "test-holdout: ILSVRC val images per class moved to val.",
                     default=VAL_PER_CLASS),
        SourceOption("seed", "int", "Seed of the test-holdout.", default=0),
    ),
)
def convert_imagenet(root: Path, out: Path, *, progress: Progress, jobs: int, val_annotations: Path | None = None,
                     imagenetv2_metadata: Path | None = None, imagenetv2_root: Path | None = None,
                     val_source: str = "auto", val_per_class: int = VAL_PER_CLASS, seed: int = 0) -> Conversion:
    image_root = _image_root(root)
    classes = _wnids(image_root, root)
    index = {w: i for i, w in enumerate(classes)}
    if val_source == "auto":
        val_source = "imagenetv2" if imagenetv2_metadata is not None else "test-holdout"
    if val_source == "imagenetv2" and imagenetv2_metadata is None:
        raise ConfigError("val_source imagenetv2 needs --imagenetv2-metadata (wsolevaluation's metadata/ILSVRC/val)")

    # train: labels only
    train_paths, train_labels = [], []
    with progress.phase("imagenet: listing train", len(classes)) as advance:
        for label, wnid in enumerate(classes):
            for path in list_images(image_root / "train" / wnid):
                train_paths.append(path)
                train_labels.append(label)
            advance(1)
    infos = probe_images(train_paths, jobs=jobs, progress=progress, what="imagenet: train image sizes")
    train = [Sample(p.relative_to(image_root).as_posix(), str(p), lab, w, h)
             for p, lab, (w, h) in zip(train_paths, train_labels, sizes_or_fail(infos, "ImageNet train"))]

    test, info = _ilsvrc_val(root, image_root, index, val_annotations, jobs=jobs, progress=progress)

    if val_source == "imagenetv2":
        assert imagenetv2_metadata is not None
        val = _imagenetv2(Path(imagenetv2_metadata), Path(imagenetv2_root or image_root), len(classes))
        name = "imagenet/val=imagenetv2"
        info["val"] = {"source": "imagenetv2", "metadata": str(imagenetv2_metadata),
                       "images": str(imagenetv2_root or image_root)}
    else:
        groups: dict[int, list[str]] = {}
        for s in test:
            groups.setdefault(s.label, []).append(s.image_id)
        held = holdout(groups, val_per_class, seed, names=classes, what="ILSVRC val")
        val = [s for s in test if s.image_id in held]
        test = [s for s in test if s.image_id not in held]
        name = f"imagenet/val=test-holdout-{val_per_class}pc-seed{seed}"
        info["val"] = {"source": "test-holdout", "per_class": val_per_class, "seed": seed,
                       "note": "val images are taken out of ILSVRC val (the test split): test is smaller than "
                               "the published protocol's; use ImageNetV2 to compare with published numbers"}
    return Conversion(name=name, classes=classes, splits={"train": train, "val": val, "test": test}, info=info)


def _ilsvrc_val(root: Path, image_root: Path, index: dict[str, int], annotations: Path | None, *, jobs: int,
                progress: Progress) -> tuple[list[Sample], dict]:
    """The ILSVRC val images with their labels and boxes (XML folder or Kaggle CSV)."""
    folder = image_root / "val"
    if not folder.is_dir():
        raise ManifestError(f"{folder} does not exist (the ILSVRC val images, the test split)")
    images = list_images(folder)
    if not images:
        raise ManifestError(f"{folder}: no images")
    if annotations is None:
        for candidate in (folder, root / KAGGLE_XML, root / KAGGLE_CSV):
            if (candidate.is_dir() and any(candidate.glob("*.xml"))) or candidate.is_file():
                annotations = candidate
                break
        else:
            raise ManifestError(f"no ILSVRC val boxes found (val/*.xml, {KAGGLE_XML}/, {KAGGLE_CSV}); pass "
                                "--val-annotations (a folder of ILSVRC2012_val_*.xml or LOC_val_solution.csv)")
    annotations = Path(annotations)
    csv = _read_csv(annotations) if annotations.is_file() else None
    if csv is None and not annotations.is_dir():
        raise ConfigError(f"--val-annotations {annotations} does not exist")

    objects: dict[Path, list[tuple[str, Box]]] = {}
    xml_sizes: dict[Path, tuple[int, int]] = {}
    missing = []
    with progress.phase("imagenet: val boxes", len(images)) as advance:
        for path in images:
            stem = path.stem
            if csv is not None:
                if stem not in csv:
                    missing.append(stem)
                else:
                    objects[path] = csv[stem]
            else:
                xml = annotations / f"{stem}.xml"
                if not xml.is_file():
                    missing.append(xml.name)
                else:
                    size, objs = read_voc_xml(xml)
                    if not objs:
                        raise ManifestError(f"{xml}: no <object>")
                    objects[path] = [(o.name, o.box) for o in objs]
                    if size is not None:
                        xml_sizes[path] = size
            advance(1)
    if missing:
        raise ManifestError(f"{annotations}: no boxes for {len(missing)} of {len(images)} val images: "
                            f"{format_items(missing)}")
    unsized = [p for p in images if p not in xml_sizes]
    sizes = dict(xml_sizes)
    if unsized:
        infos = probe_images(unsized, jobs=jobs, progress=progress, what="imagenet: val image sizes")
        sizes.update(zip(unsized, sizes_or_fail(infos, "ImageNet val")))

    out, dropped, clipped = [], 0, 0
    for path in images:
        objs = objects[path]
        wnid = objs[0][0]
        if wnid not in index:
            raise ManifestError(f"{annotations}: image {path.name} has class {wnid!r}, which is not a train folder")
        width, height = sizes[path]
        boxes = []
        for name, box in objs:
            if name != wnid:
                dropped += 1
                continue
            box, changed = clip_box(box, width, height)
            clipped += changed
            boxes.append(box)
        out.append(Sample(path.relative_to(image_root).as_posix(), str(path), index[wnid], width, height,
                          tuple(boxes)))
    info = {"test": {"source": "ilsvrc-val", "annotations": str(annotations)},
            "clipped_boxes": clipped, "dropped_other_class_boxes": dropped}
    return out, info


def _imagenetv2(metadata: Path, image_root: Path, num_classes: int) -> list[Sample]:
    split = read_metadata_split(metadata)
    if split.kind != "boxes":
        raise ManifestError(f"{metadata}: the ImageNetV2 metadata must list boxes in localization.txt")
    out = []
    for s in split:
        if s.label >= num_classes:
            raise ManifestError(f"{metadata / 'class_labels.txt'}: image {s.image_id!r} has label {s.label}, "
                                f"but there are {num_classes} classes")
        assert s.size is not None
        boxes = tuple(clip_box(b, *s.size)[0] for b in s.boxes)
        out.append(Sample(s.image_id, str(image_root / s.image_id), s.label, s.size[0], s.size[1], boxes))
    return out
