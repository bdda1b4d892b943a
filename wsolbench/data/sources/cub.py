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
  (wsolevaluation's ``metadata/CUB``) writes it; clipped to the image;
- image id = the path under ``images/`` (wsolevaluation's CUB ids), so score
  maps named ``<id>.npy`` line up with the community's;
- segmentations are ``soft`` masks: foreground where the greyscale value >= 128.

Splits: ``train`` = the train half, labels only; ``test`` = the test half with
boxes (and masks). ``val``: CUBV2 (``--cubv2`` images + ``--cubv2-metadata``,
the community's 1,000 images with boxes) when given; otherwise a seeded hold-out
of ``--val-per-class`` (default 5, so 1,000 images like CUBV2) train images per
class, with their boxes (and masks), removed from train. The manifest name says
which: ``cub/val=cubv2`` or ``cub/val=train-holdout-5pc-seed0``.
"""

from __future__ import annotations

from pathlib import Path

from wsolbench.data.sources.common import (
    Conversion,
    SourceOption,
    clip_box,
    format_items,
    holdout,
    parse_float,
    parse_int,
    probe_images,
    read_table,
    register_source,
    sizes_or_fail,
)
from wsolbench.data.sources.wsolevaluation import read_metadata_split
from wsolbench.errors import ConfigError, ManifestError
from wsolbench.manifest import Sample
from wsolbench.progress import Progress

VAL_PER_CLASS = 5


def _find_root(root: Path) -> Path:
    """``root`` itself, or its ``CUB_200_2011`` child (the tarball's top folder)."""
    if (root / "images.txt").is_file():
        return root
    if (root / "CUB_200_2011" / "images.txt").is_file():
        return root / "CUB_200_2011"
    raise ManifestError(f"{root}: no images.txt; --root must be the CUB_200_2011 folder (images.txt, "
                        "image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, classes.txt, images/)")


def _by_id(path: Path, columns: list[str], known: dict[int, str] | None) -> dict[int, tuple[int, list[str]]]:
    """Rows keyed by their 1-based image (or class) id; each id once, and known when ``known`` is given."""
    rows: dict[int, tuple[int, list[str]]] = {}
    for lineno, fields in read_table(path, columns):
        key = parse_int(fields[0], path, lineno, columns[0])
        if key in rows:
            raise ManifestError(f"{path} line {lineno}: {columns[0]} {key} is listed twice (first at line "
                                f"{rows[key][0]})")
        if known is not None and key not in known:
            raise ManifestError(f"{path} line {lineno}: image_id {key} is not in images.txt")
        rows[key] = (lineno, fields[1:])
    if known is not None:
        missing = sorted(set(known) - set(rows))
        if missing:
            raise ManifestError(f"{path}: no line for {len(missing)} image id(s): {format_items(missing)}")
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
    ),
)
def convert_cub(root: Path, out: Path, *, progress: Progress, jobs: int, cubv2: Path | None = None,
                cubv2_metadata: Path | None = None, segmentations: Path | None = None,
                val_per_class: int = VAL_PER_CLASS, seed: int = 0) -> Conversion:
    root = _find_root(root)
    images_path = root / "images.txt"
    relpaths: dict[int, str] = {}
    for lineno, fields in read_table(images_path, ["image_id", "relpath"]):
        image_id = parse_int(fields[0], images_path, lineno, "image_id")
        if image_id in relpaths:
            raise ManifestError(f"{images_path} line {lineno}: image_id {image_id} is listed twice")
        relpaths[image_id] = fields[1]

    classes_path = root / "classes.txt"
    class_rows = _by_id(classes_path, ["class_id", "name"], None)
    if sorted(class_rows) != list(range(1, len(class_rows) + 1)):
        raise ManifestError(f"{classes_path}: class ids must be 1..{len(class_rows)} without gaps")
    classes = tuple(class_rows[k][1][0] for k in range(1, len(class_rows) + 1))

    label_path = root / "image_class_labels.txt"
    labels = {}
    for image_id, (lineno, fields) in _by_id(label_path, ["image_id", "class_id"], relpaths).items():
        class_id = parse_int(fields[0], label_path, lineno, "class_id")
        if not 1 <= class_id <= len(classes):
            raise ManifestError(f"{label_path} line {lineno}: class_id {class_id} is not in 1..{len(classes)} "
                                "(classes.txt)")
        labels[image_id] = class_id - 1

    split_path = root / "train_test_split.txt"
    is_train = {}
    for image_id, (lineno, fields) in _by_id(split_path, ["image_id", "is_training_image"], relpaths).items():
        if fields[0] not in ("0", "1"):
            raise ManifestError(f"{split_path} line {lineno}: is_training_image must be 0 or 1, got {fields[0]!r}")
        is_train[image_id] = fields[0] == "1"

    box_path = root / "bounding_boxes.txt"
    xywh = {}
    for image_id, (lineno, fields) in _by_id(box_path, ["image_id", "x", "y", "width", "height"],
                                             relpaths).items():
        x, y, w, h = (parse_float(v, box_path, lineno, name) for v, name in zip(fields, "xywh"))
        if w < 0 or h < 0:
            raise ManifestError(f"{box_path} line {lineno}: negative width or height ({w:g}, {h:g})")
        xywh[image_id] = (x, y, w, h)

    if segmentations is None:
        for candidate in (root / "segmentations", root.parent / "segmentations"):
            if candidate.is_dir():
                segmentations = candidate
                break
    elif not Path(segmentations).is_dir():
        raise ConfigError(f"--segmentations {segmentations} is not a folder")

    ids = sorted(relpaths)
    infos = probe_images([root / "images" / relpaths[i] for i in ids], jobs=jobs, progress=progress,
                         what="cub: image sizes")
    sizes = dict(zip(ids, sizes_or_fail(infos, "CUB")))

    def mask_of(image_id: int) -> str | None:
        if segmentations is None:
            return None
        return str(Path(segmentations) / Path(relpaths[image_id]).with_suffix(".png"))

    clipped = 0

    def sample(image_id: int, localized: bool) -> Sample:
        nonlocal clipped
        width, height = sizes[image_id]
        path = str(root / "images" / relpaths[image_id])
        if not localized:
            return Sample(relpaths[image_id], path, labels[image_id], width, height)
        x, y, w, h = xywh[image_id]
        box, changed = clip_box((x, y, x + w, y + h), width, height)
        clipped += changed
        mask = mask_of(image_id)
        return Sample(relpaths[image_id], path, labels[image_id], width, height, (box,), mask,
                      mask_kind="soft" if mask else "binary")

    train_ids = [i for i in ids if is_train[i]]
    test_ids = [i for i in ids if not is_train[i]]
    info: dict = {}
    if cubv2 is not None:
        val = _cubv2(Path(cubv2), Path(cubv2_metadata or cubv2), classes)
        name, held = "cub/val=cubv2", set()
        info["val"] = {"source": "cubv2", "images": str(cubv2), "metadata": str(cubv2_metadata or cubv2)}
    else:
        if cubv2_metadata is not None:
            raise ConfigError("--cubv2-metadata needs --cubv2 (the CUBV2 image folder)")
        groups: dict[int, list[str]] = {}
        for i in train_ids:
            groups.setdefault(labels[i], []).append(str(i))
        held = {int(k) for k in holdout(groups, val_per_class, seed, names=classes)}
        val = [sample(i, True) for i in train_ids if i in held]
        name = f"cub/val=train-holdout-{val_per_class}pc-seed{seed}"
        info["val"] = {"source": "train-holdout", "per_class": val_per_class, "seed": seed,
                       "note": "val images are taken out of the train split, with their boxes"}
    if segmentations is not None:
        wanted = [mask_of(i) for i in test_ids + sorted(held)]
        missing = [m for m in wanted if m is not None and not Path(m).is_file()]
        if missing:
            raise ManifestError(f"{len(missing)} segmentation mask(s) are missing under {segmentations}: "
                                f"{format_items(missing, 3)}")
        info["segmentations"] = {"folder": str(segmentations), "kind": "soft", "foreground": ">= 128"}
    splits = {"train": [sample(i, False) for i in train_ids if i not in held], "val": val,
              "test": [sample(i, True) for i in test_ids]}
    info["clipped_boxes"] = clipped
    return Conversion(name=name, classes=classes, splits=splits, info=info)


def _cubv2(images: Path, metadata: Path, classes: tuple[str, ...]) -> list[Sample]:
    """CUBV2 samples: ids, labels, sizes and boxes from the community metadata; images under ``images``."""
    if not images.is_dir():
        raise ConfigError(f"--cubv2 {images} is not a folder")
    split = read_metadata_split(metadata)
    if split.kind != "boxes":
        raise ManifestError(f"{metadata}: CUBV2 metadata must list boxes in localization.txt")
    out = []
    for s in split:
        folder = s.image_id.split("/")[-2] if "/" in s.image_id else None
        label = s.label
        if label >= len(classes):
            raise ManifestError(f"{metadata / 'class_labels.txt'}: image {s.image_id!r} has label {label}, "
                                f"but CUB has {len(classes)} classes")
        if folder is not None and folder != classes[label]:
            raise ManifestError(f"{metadata / 'class_labels.txt'}: image {s.image_id!r} has label {label} "
                                f"({classes[label]}), which disagrees with its folder {folder!r}")
        assert s.size is not None  # read_metadata_split requires sizes for box splits
        boxes = tuple(clip_box(b, *s.size)[0] for b in s.boxes)
        out.append(Sample(s.image_id, str(images / s.image_id), label, s.size[0], s.size[1], boxes))
    return out
