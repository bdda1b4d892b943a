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
metadata does); a box outside its image is a problem unless ``--clip-boxes``
clips it (counted); an image's label is its objects' WNID (the boxes of other
WNIDs, if any, are dropped and counted).

Every fault is collected in one pass (:mod:`.problems`): CSV lines that do not
parse or repeat an image, val images without boxes, XML files that do not
parse, unknown WNIDs, boxes with a negative or zero size or outside the image,
images that are missing or unreadable (train: headers only, 1.28 M files;
ILSVRC val and ImageNetV2: decoded unless ``--headers-only``).

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
    CLIP_BOXES,
    HEADERS_ONLY,
    BoxCheck,
    Conversion,
    Problems,
    RootLayoutError,
    SourceOption,
    holdout,
    list_images,
    probe_images,
    read_lines,
    read_voc_xml,
    register_source,
    to_number,
    usable_sizes,
)
from wsolbench.data.sources.problems import fmt_box
from wsolbench.data.sources.wsolevaluation import CLASS_LABELS, IMAGE_IDS, LOCALIZATION, read_metadata_split
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
    raise RootLayoutError(root, "no train/ folder", f"hold train/<wnid>/ and val/ (or Kaggle's {KAGGLE_IMAGES}/)")


def _wnids(image_root: Path, root: Path, problems: Problems) -> tuple[str, ...]:
    train = image_root / "train"
    wnids = sorted(e.name for e in os.scandir(train) if e.is_dir())
    if not wnids:
        raise ManifestError(f"{train}: no class folders")
    mapping = root / KAGGLE_SYNSETS
    if mapping.is_file():
        listed = [line.split()[0] for _, line in read_lines(mapping, problems=problems) or []]
        if sorted(listed) != wnids:
            extra = sorted(set(listed) ^ set(wnids))
            problems.add(f"names other classes than the folders of {train}: {', '.join(extra[:5])}"
                         + (f", ... (+{len(extra) - 5} more)" if len(extra) > 5 else ""), file=mapping)
    return tuple(wnids)


#: One object of the val annotations: (wnid, box as written, the line of the CSV or None for XML).
_Object = tuple[str, Box, int | None]


def _read_csv(path: Path, problems: Problems) -> dict[str, list[_Object]]:
    """``LOC_val_solution.csv``: image stem -> [(wnid, box, line)], boxes in file order."""
    out: dict[str, list[_Object]] = {}
    first: dict[str, int] = {}
    lines = read_lines(path, problems=problems) or []
    if lines and lines[0][1].lower().startswith("imageid"):
        lines = lines[1:]
    for lineno, line in lines:
        stem, _, prediction = line.partition(",")
        tokens = prediction.split()
        if not stem or not tokens or len(tokens) % 5:
            problems.add('expected ImageId,"wnid x0 y0 x1 y1 ..."', file=path, line=lineno)
            continue
        if stem in out:
            problems.add(f"image {stem!r} is listed twice (first at line {first[stem]})", file=path, line=lineno)
            continue
        objects = []
        try:
            for k in range(0, len(tokens), 5):
                box = tuple(to_number(v, "box coordinate") for v in tokens[k + 1:k + 5])
                objects.append((tokens[k], box, lineno))
        except ValueError as exc:
            problems.add(str(exc), file=path, line=lineno)
            continue
        out[stem], first[stem] = objects, lineno  # type: ignore[assignment]
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
        CLIP_BOXES,
        HEADERS_ONLY,
    ),
    version=2,
    find_root=_image_root,
)
def convert_imagenet(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                     val_annotations: Path | None = None, imagenetv2_metadata: Path | None = None,
                     imagenetv2_root: Path | None = None, val_source: str = "auto", val_per_class: int = VAL_PER_CLASS,
                     seed: int = 0, clip_boxes: bool = False, headers_only: bool = False) -> Conversion:
    image_root = _image_root(root)
    if val_source == "auto":
        val_source = "imagenetv2" if imagenetv2_metadata is not None else "test-holdout"
    if val_source == "imagenetv2" and imagenetv2_metadata is None:
        raise ConfigError("val_source imagenetv2 needs --imagenetv2-metadata (wsolevaluation's metadata/ILSVRC/val)")
    classes = _wnids(image_root, root, problems)
    index = {w: i for i, w in enumerate(classes)}
    check = BoxCheck(problems, clip=clip_boxes)

    # train: labels only
    train_paths, train_labels = [], []
    with progress.phase("imagenet: listing train", len(classes)) as advance:
        for label, wnid in enumerate(classes):
            for path in list_images(image_root / "train" / wnid):
                train_paths.append(path)
                train_labels.append(label)
            advance(1)
    infos = probe_images(train_paths, jobs=jobs, progress=progress, what="imagenet: train image sizes")
    train_ids = [p.relative_to(image_root).as_posix() for p in train_paths]
    sizes = usable_sizes(infos, train_ids, problems)
    train = [Sample(i, str(p), lab, *sizes[i]) for i, p, lab in zip(train_ids, train_paths, train_labels)
             if i in sizes]

    test, info = _ilsvrc_val(root, image_root, index, val_annotations, problems, check, jobs=jobs,
                             progress=progress, headers_only=headers_only)

    if val_source == "imagenetv2":
        assert imagenetv2_metadata is not None
        val = _imagenetv2(Path(imagenetv2_metadata), Path(imagenetv2_root or image_root), len(classes), problems,
                          check, jobs=jobs, progress=progress, headers_only=headers_only)
        name = "imagenet/val=imagenetv2"
        info["val"] = {"source": "imagenetv2", "metadata": str(imagenetv2_metadata),
                       "images": str(imagenetv2_root or image_root)}
    else:
        groups: dict[int, list[str]] = {}
        for s in test:
            groups.setdefault(s.label, []).append(s.image_id)
        try:
            held = holdout(groups, val_per_class, seed, names=classes, what="ILSVRC val")
        except ConfigError:
            if not problems:
                raise
            held = set()  # counted over the images without problems: fix those first
        val = [s for s in test if s.image_id in held]
        test = [s for s in test if s.image_id not in held]
        name = f"imagenet/val=test-holdout-{val_per_class}pc-seed{seed}"
        info["val"] = {"source": "test-holdout", "per_class": val_per_class, "seed": seed,
                       "note": "val images are taken out of ILSVRC val (the test split): test is smaller than "
                               "the published protocol's; use ImageNetV2 to compare with published numbers"}
    info["clipped_boxes"] = check.clipped
    return Conversion(name=name, classes=classes, splits={"train": train, "val": val, "test": test}, info=info)


def _ilsvrc_val(root: Path, image_root: Path, index: dict[str, int], annotations: Path | None, problems: Problems,
                check: BoxCheck, *, jobs: int, progress: Progress, headers_only: bool) -> tuple[list[Sample], dict]:
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
    if not annotations.exists():
        raise ConfigError(f"--val-annotations {annotations} does not exist")
    csv = _read_csv(annotations, problems) if annotations.is_file() else None

    ids = [p.relative_to(image_root).as_posix() for p in images]
    objects: dict[str, list[_Object]] = {}
    sources: dict[str, Path] = {}
    xml_sizes: dict[str, tuple[int, int]] = {}
    with progress.phase("imagenet: val boxes", len(images)) as advance:
        for image_id, path in zip(ids, images):
            if csv is not None:
                if path.stem not in csv:
                    problems.add(f"no line for image {path.stem}", file=annotations, image=image_id)
                else:
                    objects[image_id], sources[image_id] = csv[path.stem], annotations
            else:
                xml = annotations / f"{path.stem}.xml"
                if not xml.is_file():
                    problems.add("the box file does not exist", file=xml, image=image_id)
                else:
                    parsed = read_voc_xml(xml, problems=problems, image=image_id)
                    if parsed is not None:
                        size, objs = parsed
                        if not objs:
                            problems.add("no <object>", file=xml, image=image_id)
                        else:
                            objects[image_id], sources[image_id] = [(o.name, o.box, None) for o in objs], xml
                            if size is not None:
                                xml_sizes[image_id] = size
            advance(1)

    have = {p.stem for p in images}
    annotated = sorted(csv) if csv is not None else sorted(p.stem for p in annotations.glob("*.xml"))
    for stem in annotated:
        if stem not in have:  # boxes without their image: the image is missing
            problems.add(f"image file {folder / stem}.JPEG does not exist (its boxes are here)",
                         file=annotations if csv is not None else annotations / f"{stem}.xml",
                         line=csv[stem][0][2] if csv is not None else None, image=f"val/{stem}.JPEG")
    infos = probe_images(images, jobs=jobs, progress=progress, decode=not headers_only,
                         what="imagenet: val " + ("image sizes" if headers_only else "images"))
    found = usable_sizes(infos, ids, problems)
    out, dropped = [], 0
    for image_id, path in zip(ids, images):
        if image_id not in objects or image_id not in found:
            continue  # already a problem
        objs, source = objects[image_id], sources[image_id]
        wnid = objs[0][0]
        if wnid not in index:
            problems.add(f"class {wnid!r} is not a train folder", file=source, line=objs[0][2], image=image_id)
            continue
        width, height = xml_sizes.get(image_id, found[image_id])  # the XML's size: the frame of its boxes
        boxes: list[Box | None] = []
        for name, box, line in objs:
            if name != wnid:
                dropped += 1
                continue
            boxes.append(check(box, width, height, file=source, line=line, image=image_id,
                               written=f"{name} box {fmt_box(box)}"))
        if all(b is not None for b in boxes):
            out.append(Sample(image_id, str(path), index[wnid], width, height, tuple(boxes)))  # type: ignore[arg-type]
    info = {"test": {"source": "ilsvrc-val", "annotations": str(annotations)},
            "dropped_other_class_boxes": dropped}
    return out, info


def _imagenetv2(metadata: Path, image_root: Path, num_classes: int, problems: Problems, check: BoxCheck, *,
                jobs: int, progress: Progress, headers_only: bool) -> list[Sample]:
    split = read_metadata_split(metadata, problems=problems)
    if split.kind != "boxes":
        problems.add("the ImageNetV2 metadata must list boxes", file=metadata / LOCALIZATION)
        return []
    samples = list(split)
    infos = probe_images([image_root / s.image_id for s in samples], jobs=jobs, progress=progress,
                         decode=not headers_only,
                         what="imagenet: ImageNetV2 " + ("image sizes" if headers_only else "images"))
    found = usable_sizes(infos, [s.image_id for s in samples], problems, listed=metadata / IMAGE_IDS,
                         lines=[s.line for s in samples])
    out = []
    for s in samples:
        if not s.labels or s.size is None or s.image_id not in found:
            continue  # already a problem
        if s.labels[0] >= num_classes:
            problems.add(f"label {s.labels[0]} is beyond the {num_classes} classes", file=metadata / CLASS_LABELS,
                         image=s.image_id)
            continue
        boxes = [check(b, *s.size, file=metadata / LOCALIZATION, line=line, image=s.image_id)
                 for b, line in zip(s.boxes, s.box_lines)]
        if all(b is not None for b in boxes):
            out.append(Sample(s.image_id, str(image_root / s.image_id), s.labels[0], s.size[0], s.size[1],
                              tuple(boxes)))  # type: ignore[arg-type]
    return out
