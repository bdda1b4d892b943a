"""CUB-200-2011 (Wah et al., Caltech-UCSD Birds, 2011): 200 species, one box per image.

Layout (the ``CUB_200_2011/`` folder of the tarball; card: ``data_manifests/cub.md``)::

    images.txt               <image_id> <relpath>            1-based ids, relpath under images/
    image_class_labels.txt   <image_id> <class_id>           class_id 1..200
    classes.txt              <class_id> <NNN.Name>
    train_test_split.txt     <image_id> <1 train | 0 test>   5,994 / 5,794
    bounding_boxes.txt       <image_id> <x> <y> <w> <h>      floats
    images/<NNN.Name>/<file>.jpg
    segmentations/<NNN.Name>/<file>.png   (optional, a separate download; soft 0-255 masks)

Conventions:

- label = ``class_id - 1``; class names are ``classes.txt``'s (``001.Black_footed_Albatross``);
- box ``(x, y, w, h)`` -> ``(x, y, x + w, y + h)``, as the community metadata
  (wsolevaluation's ``metadata/CUB``) writes it; ``x + w`` may equal the image
  width (an edge on the border is inside); a box that sticks out is a problem,
  unless ``--clip-boxes`` clips it (counted in ``info.clipped_boxes``);
- image id = the path under ``images/`` (wsolevaluation's CUB ids), so score
  maps named ``<id>.npy`` line up with the community's;
- segmentations are ``soft`` masks: foreground where the greyscale value >= 128.

Splits: ``train`` = the train half, labels only; ``test`` = the test half with
boxes (and masks). ``val``: CUBV2 (``--cubv2`` images + ``--cubv2-metadata``,
the community's 1,000 images with boxes) when given; otherwise a seeded hold-out
of ``--val-per-class`` (default 5, so 1,000 images like CUBV2) train images per
class, with their boxes (and masks), removed from train. The manifest name says
which: ``cub/val=cubv2`` or ``cub/val=train-holdout-5pc-seed0``.

Every file is checked in one pass and every fault is collected
(:mod:`.problems`): lines that do not parse, ids listed twice or unknown to
``images.txt``, images without a line, class ids outside ``classes.txt``,
images that are missing or do not decode (every image is decoded unless
``--headers-only``), boxes with a negative or zero size or outside their image,
segmentation masks that are missing, unreadable or not the image's size. Only
a missing ``images.txt`` stops at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wsolbench.data.sources.common import (
    CLIP_BOXES,
    HEADERS_ONLY,
    BoxCheck,
    Conversion,
    DataProblems,
    Problem,
    Problems,
    RootLayoutError,
    SourceOption,
    check_mask_file,
    holdout,
    parallel_map,
    probe_images,
    read_table,
    register_source,
    to_number,
    usable_sizes,
)
from wsolbench.data.sources.wsolevaluation import CLASS_LABELS, IMAGE_IDS, read_metadata_split
from wsolbench.errors import ConfigError
from wsolbench.imageio import read_soft_mask
from wsolbench.manifest import Sample
from wsolbench.progress import Progress

VAL_PER_CLASS = 5


def _find_root(root: Path) -> Path:
    """``root`` itself, or its ``CUB_200_2011`` child (the tarball's top folder)."""
    if (root / "images.txt").is_file():
        return root
    if (root / "CUB_200_2011" / "images.txt").is_file():
        return root / "CUB_200_2011"
    raise RootLayoutError(root, "no images.txt", "be the CUB_200_2011 folder (images.txt, image_class_labels.txt, "
                          "train_test_split.txt, bounding_boxes.txt, classes.txt, images/) or hold it")


def _by_id(path: Path, columns: list[str], problems: Problems, *, parse: Callable[[list[str], str | None], Any],
           known: set[int] | None = None, names: dict[int, str] | None = None) -> dict[int, tuple[int, Any]] | None:
    """``{id: (line, parse(fields, image))}`` of a file of rows keyed by a 1-based image (or class) id.

    Each bad line is a problem and is skipped: fields that do not parse
    (``parse`` raises ValueError with the message), an id listed twice, an image
    id that ``images.txt`` does not list (``known``). With ``names`` (id -> image
    id), each image without a line is a problem too. None: the file cannot be
    read at all (one problem).
    """
    table = read_table(path, columns, problems=problems)
    if table is None:
        return None
    rows: dict[int, tuple[int, Any]] = {}
    lines: dict[int, int] = {}
    for lineno, fields in table:
        try:
            key = int(to_number(fields[0], columns[0], integer=True))
        except ValueError as exc:
            problems.add(str(exc), file=path, line=lineno)
            continue
        image = names.get(key) if names is not None else None
        if key in lines:
            problems.add(f"{columns[0]} {key} is listed twice (first at line {lines[key]})", file=path,
                         line=lineno, image=image)
            continue
        if known is not None and key not in known:
            problems.add(f"image_id {key} is not in images.txt", file=path, line=lineno)
            continue
        lines[key] = lineno
        try:
            rows[key] = (lineno, parse(fields[1:], image))
        except ValueError as exc:
            problems.add(str(exc), file=path, line=lineno, image=image)
    if names is not None:
        for key in sorted(set(names) - set(lines)):
            problems.add(f"no line for image_id {key}", file=path, image=names[key])
    return rows


@register_source(
    "cub",
    summary="CUB-200-2011: 200 bird species; boxes; optional segmentations (PxAP); val = CUBV2 or a hold-out",
    options=(
        SourceOption("cubv2", "path", "The CUBV2 image folder (<NNN.Class>/<file>.jpg): the community's val "
                     "split. Without it, val is a seeded hold-out of train."),
        SourceOption("cubv2_metadata", "path", "CUBV2's metadata folder (image_ids.txt, class_labels.txt, "
                     "image_sizes.txt, localization.txt; wsolevaluation's metadata/CUB/val). Default: --cubv2 "
                     "itself."),
        SourceOption("segmentations", "path", "The segmentations/ folder (soft masks, >= 128 is foreground) for "
                     "PxAP. Default: ROOT/segmentations or its sibling, when present."),
        SourceOption("val_per_class", "int", "Without CUBV2: train images per class held out as val.",
                     default=VAL_PER_CLASS),
        SourceOption("seed", "int", "Seed of the val hold-out.", default=0),
        CLIP_BOXES,
        HEADERS_ONLY,
    ),
    version=2,
    find_root=_find_root,
)
def convert_cub(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                cubv2: Path | None = None, cubv2_metadata: Path | None = None, segmentations: Path | None = None,
                val_per_class: int = VAL_PER_CLASS, seed: int = 0, clip_boxes: bool = False,
                headers_only: bool = False) -> Conversion:
    root = _find_root(root)
    if segmentations is None:
        for candidate in (root / "segmentations", root.parent / "segmentations"):
            if candidate.is_dir():
                segmentations = candidate
                break
    elif not Path(segmentations).is_dir():
        raise ConfigError(f"--segmentations {segmentations} is not a folder")
    if cubv2 is None and cubv2_metadata is not None:
        raise ConfigError("--cubv2-metadata needs --cubv2 (the CUBV2 image folder)")

    # images.txt: the ids everything else refers to (the one file without which nothing can be checked)
    images_path = root / "images.txt"
    image_rows = _by_id(images_path, ["image_id", "relpath"], problems, parse=lambda fields, _: fields[0])
    if image_rows is None:  # unreadable (the problem is added): without the ids nothing else can be checked
        raise DataProblems(problems.items, what=f"the cub dataset under {root}")
    relpaths: dict[int, str] = {}
    listed: dict[int, int] = {}
    first: dict[str, int] = {}
    for image_id, (lineno, rel) in image_rows.items():
        if rel in first:
            problems.add(f"path {rel} is listed twice (first at line {first[rel]})", file=images_path, line=lineno)
            continue
        first[rel] = lineno
        relpaths[image_id], listed[image_id] = rel, lineno
    known = set(image_rows)

    classes_path = root / "classes.txt"
    classes: tuple[str, ...] | None = None
    class_rows = _by_id(classes_path, ["class_id", "name"], problems, parse=lambda fields, _: fields[0])
    if class_rows and sorted(class_rows) == list(range(1, len(class_rows) + 1)):
        classes = tuple(class_rows[k][1] for k in range(1, len(class_rows) + 1))
    elif class_rows is not None:
        problems.add(f"class ids must be 1..{len(class_rows)} without gaps", file=classes_path)

    def label_of(fields: list[str], image: str | None) -> int:
        class_id = int(to_number(fields[0], "class_id", integer=True))
        if classes is not None and not 1 <= class_id <= len(classes):
            raise ValueError(f"class_id {class_id} is not in 1..{len(classes)} (classes.txt)")
        return class_id - 1

    def split_of(fields: list[str], image: str | None) -> bool:
        if fields[0] not in ("0", "1"):
            raise ValueError(f"is_training_image must be 0 or 1, got {fields[0]!r}")
        return fields[0] == "1"

    def xywh_of(fields: list[str], image: str | None) -> tuple[float, ...]:
        return tuple(to_number(v, name) for v, name in zip(fields, "xywh"))

    label_path, split_path, box_path = (root / f for f in ("image_class_labels.txt", "train_test_split.txt",
                                                            "bounding_boxes.txt"))
    label_rows = _by_id(label_path, ["image_id", "class_id"], problems, parse=label_of, known=known,
                        names=relpaths)
    split_rows = _by_id(split_path, ["image_id", "is_training_image"], problems, parse=split_of, known=known,
                        names=relpaths)
    xywh = _by_id(box_path, ["image_id", "x", "y", "width", "height"], problems, parse=xywh_of, known=known,
                  names=relpaths) or {}
    labels = {k: v for k, (_, v) in (label_rows or {}).items()}
    is_train = {k: v for k, (_, v) in (split_rows or {}).items()}

    ids = sorted(relpaths)
    infos = probe_images([root / "images" / relpaths[i] for i in ids], jobs=jobs, progress=progress,
                         what="cub: " + ("image sizes" if headers_only else "decoding images"),
                         decode=not headers_only)
    found = usable_sizes(infos, [relpaths[i] for i in ids], problems, listed=images_path,
                         lines=[listed[i] for i in ids])
    sizes = {i: found[relpaths[i]] for i in ids if relpaths[i] in found}

    check = BoxCheck(problems, clip=clip_boxes)
    boxes = {}
    for image_id, (lineno, (x, y, w, h)) in xywh.items():
        size = sizes.get(image_id)
        if size is None or image_id not in relpaths:
            continue  # the image is already a problem
        box = check((x, y, x + w, y + h), *size, file=box_path, line=lineno, image=relpaths[image_id],
                    written=f"box (x, y, w, h) = ({x:g}, {y:g}, {w:g}, {h:g})")
        if box is not None:
            boxes[image_id] = box

    def mask_of(image_id: int) -> str | None:
        if segmentations is None:
            return None
        return str(Path(segmentations) / Path(relpaths[image_id]).with_suffix(".png"))

    train_ids = [i for i in ids if is_train.get(i) is True]
    test_ids = [i for i in ids if is_train.get(i) is False]
    info: dict = {}
    if cubv2 is not None:
        val = _cubv2(Path(cubv2), Path(cubv2_metadata or cubv2), classes, problems, check, jobs=jobs,
                     progress=progress, headers_only=headers_only)
        name, held = "cub/val=cubv2", set()
        info["val"] = {"source": "cubv2", "images": str(cubv2), "metadata": str(cubv2_metadata or cubv2)}
    else:
        groups: dict[int, list[str]] = {}
        for i in train_ids:
            if i in labels:
                groups.setdefault(labels[i], []).append(str(i))
        try:
            held = {int(k) for k in holdout(groups, val_per_class, seed, names=classes or ())}
        except ConfigError:
            if not problems:
                raise
            held = set()  # counted over the images without problems: fix those first
        name = f"cub/val=train-holdout-{val_per_class}pc-seed{seed}"
        info["val"] = {"source": "train-holdout", "per_class": val_per_class, "seed": seed,
                       "note": "val images are taken out of the train split, with their boxes"}
    localized = [i for i in test_ids + sorted(held) if i in sizes]
    if segmentations is not None:
        def check_mask(i: int) -> Problem | None:
            return check_mask_file(Path(str(mask_of(i))), sizes[i], read_soft_mask, what="segmentation mask",
                                   image=relpaths[i])

        with progress.phase("cub: segmentation masks", len(localized)) as advance:
            for problem in parallel_map(check_mask, localized, jobs=jobs):
                if problem is not None:  # added here, in order (the checks run in threads)
                    problems.append(problem)
                advance(1)
        info["segmentations"] = {"folder": str(segmentations), "kind": "soft", "foreground": ">= 128"}

    def sample(image_id: int, localized: bool) -> Sample | None:
        if image_id not in sizes or image_id not in labels or (localized and image_id not in boxes):
            return None  # a problem was reported: no manifest is written
        width, height = sizes[image_id]
        path = str(root / "images" / relpaths[image_id])
        if not localized:
            return Sample(relpaths[image_id], path, labels[image_id], width, height)
        mask = mask_of(image_id)
        return Sample(relpaths[image_id], path, labels[image_id], width, height, (boxes[image_id],), mask,
                      mask_kind="soft" if mask else "binary")

    def rows(items: list[int], localized: bool) -> list[Sample]:
        return [s for s in (sample(i, localized) for i in items) if s is not None]

    if cubv2 is None:
        val = rows([i for i in train_ids if i in held], True)
    splits = {"train": rows([i for i in train_ids if i not in held], False), "val": val,
              "test": rows(test_ids, True)}
    info["clipped_boxes"] = check.clipped
    return Conversion(name=name, classes=classes or (), splits=splits, info=info)


def _cubv2(images: Path, metadata: Path, classes: tuple[str, ...] | None, problems: Problems, check: BoxCheck, *,
           jobs: int, progress: Progress, headers_only: bool) -> list[Sample]:
    """CUBV2 samples: ids, labels, sizes and boxes from the community metadata; images under ``images``.

    Each image must exist (and decode), have a label of CUB's classes that
    agrees with its folder, and boxes inside the size ``image_sizes.txt`` gives.
    """
    if not images.is_dir():
        raise ConfigError(f"--cubv2 {images} is not a folder")
    split = read_metadata_split(metadata, problems=problems)
    if split.kind != "boxes":
        problems.add("CUBV2 metadata must list boxes in localization.txt", file=metadata / "localization.txt")
        return []
    labels_file, ids_file = metadata / CLASS_LABELS, metadata / IMAGE_IDS
    samples = list(split)
    infos = probe_images([images / s.image_id for s in samples], jobs=jobs, progress=progress,
                         what="cub: CUBV2 " + ("image sizes" if headers_only else "images"), decode=not headers_only)
    found = usable_sizes(infos, [s.image_id for s in samples], problems, listed=ids_file,
                         lines=[s.line for s in samples])
    out = []
    for s in samples:
        if not s.labels or s.size is None or s.image_id not in found:
            continue  # already a problem
        folder = s.image_id.split("/")[-2] if "/" in s.image_id else None
        label = s.labels[0]
        if classes is not None and label >= len(classes):
            problems.add(f"label {label} is beyond CUB's {len(classes)} classes", file=labels_file, image=s.image_id)
            continue
        if classes is not None and folder is not None and folder != classes[label]:
            problems.add(f"label {label} ({classes[label]}) disagrees with the image's folder {folder!r}",
                         file=labels_file, image=s.image_id)
            continue
        boxes = [check(b, *s.size, file=metadata / "localization.txt", line=line, image=s.image_id)
                 for b, line in zip(s.boxes, s.box_lines)]
        if all(b is not None for b in boxes):
            out.append(Sample(s.image_id, str(images / s.image_id), label, s.size[0], s.size[1], tuple(boxes)))
    return out
