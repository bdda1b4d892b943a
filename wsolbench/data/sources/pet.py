"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012): 37 cat and dog breeds, pixel trimaps.

Layout (``images.tar.gz`` + ``annotations.tar.gz``; card: ``data_manifests/pet.md``)::

    images/<Name>_<n>.jpg                   7,390 files (cat breeds are capitalised)
    annotations/list.txt                    "#" header lines, then "Image CLASS-ID SPECIES BREED-ID"
    annotations/trainval.txt, test.txt      the same columns: 3,680 / 3,669 images
    annotations/trimaps/<Name>_<n>.png      1 = pet, 2 = background, 3 = boundary (not classified)
    annotations/xmls/                       *head* boxes for part of trainval: not used

Conventions:

- label = ``CLASS-ID - 1`` (1..37); class names are the file-name prefixes
  (``Abyssinian``, ``american_bulldog``);
- masks: the trimap itself, ``mask_kind: trimap``: 1 foreground, 2 background,
  3 (the boundary band) ignored by PxAP;
- object box: the tight box of the trimap's foreground (value 1), inclusive
  pixels; the ``xmls`` boxes are head boxes and are not object boxes;
- every image is decoded (and converted to RGB) while converting: some files
  are PNG or CMYK despite ``.jpg`` (they are kept; images are always read as
  RGB) and a few may be unreadable (they are left out and listed in the
  manifest's ``info.bad_images``, as are images whose trimap is missing, of
  another size, or has no foreground): the real dataset ships such files, so
  they are not problems.

Faults of the annotation lists are collected in one pass (:mod:`.problems`):
lines that do not parse, images listed twice or in both lists, CLASS-IDs that
are not 1..37 without gaps or name two breeds.

Splits: ``test`` = ``test.txt`` (trimaps); ``val`` = a seeded hold-out of
``--val-per-class`` (default 10, 370 images) ``trainval`` images per class, with
trimaps; ``train`` = the rest of ``trainval``, labels only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsolbench.data.sources.common import (
    Conversion,
    Problems,
    RootLayoutError,
    SourceOption,
    foreground_box,
    format_items,
    holdout,
    probe_images,
    read_table,
    register_source,
    to_number,
)
from wsolbench.errors import DataError
from wsolbench.imageio import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, TRIMAP_IGNORE, read_index_mask
from wsolbench.manifest import Sample
from wsolbench.progress import Progress

VAL_PER_CLASS = 10
_COLUMNS = ["image", "class_id", "species", "breed_id"]


def _find_root(root: Path) -> Path:
    for candidate in (root, root / "oxford-iiit-pet"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise RootLayoutError(root, "no images/ and annotations/", "hold both (the two Oxford-IIIT Pet tarballs "
                          "extracted side by side)")


def _read_list(path: Path, problems: Problems) -> list[tuple[int, str, int]]:
    """``(lineno, image name, class id)`` of trainval.txt / test.txt / list.txt (``#`` lines skipped)."""
    rows = []
    seen: dict[str, int] = {}
    for lineno, fields in read_table(path, _COLUMNS, comment="#", problems=problems) or []:
        name = fields[0]
        if name in seen:
            problems.add(f"image {name!r} is listed twice (first at line {seen[name]})", file=path, line=lineno,
                         image=name)
            continue
        try:
            class_id = int(to_number(fields[1], "CLASS-ID", integer=True))
        except ValueError as exc:
            problems.add(str(exc), file=path, line=lineno, image=name)
            continue
        seen[name] = lineno
        rows.append((lineno, name, class_id))
    return rows


def _trimap_box(path: Path, width: int, height: int) -> tuple[tuple[float, float, float, float] | None, str | None]:
    """The foreground box of a trimap, or None and why it cannot be used."""
    try:
        values = read_index_mask(path)
    except DataError as exc:
        return None, str(exc)
    if values.shape != (height, width):
        return None, f"trimap {path} is {values.shape[1]}x{values.shape[0]}, the image {width}x{height}"
    unknown = sorted(set(np.unique(values).tolist()) - {TRIMAP_FOREGROUND, TRIMAP_BACKGROUND, TRIMAP_IGNORE})
    if unknown:
        return None, f"trimap {path} has values {unknown} (expected 1 pet, 2 background, 3 boundary)"
    box = foreground_box(values == TRIMAP_FOREGROUND)
    if box is None:
        return None, f"trimap {path} has no foreground pixel"
    return box, None


@register_source(
    "pet",
    summary="Oxford-IIIT Pet: 37 breeds; trimaps (boundary ignored) give masks and object boxes",
    options=(
        SourceOption("val_per_class", "int", "trainval images per class held out as val (with trimaps).",
                     default=VAL_PER_CLASS),
        SourceOption("seed", "int", "Seed of the val hold-out.", default=0),
    ),
    find_root=_find_root,
)
def convert_pet(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                val_per_class: int = VAL_PER_CLASS, seed: int = 0) -> Conversion:
    root = _find_root(root)
    annotations = root / "annotations"
    trainval = _read_list(annotations / "trainval.txt", problems)
    test = _read_list(annotations / "test.txt", problems)
    shared = sorted({n for _, n, _ in trainval} & {n for _, n, _ in test})
    if shared:
        problems.add(f"trainval.txt and test.txt share {len(shared)} images: {format_items(shared)}",
                     file=annotations)
        test = [row for row in test if row[1] not in set(shared)]

    names: dict[int, str] = {}
    kept: dict[str, list[tuple[int, str, int]]] = {}
    for path, rows in ((annotations / "trainval.txt", trainval), (annotations / "test.txt", test)):
        for lineno, image, class_id in rows:
            breed = image.rsplit("_", 1)[0]
            if class_id < 1:
                problems.add(f"CLASS-ID {class_id} must be >= 1", file=path, line=lineno, image=image)
                continue
            if names.setdefault(class_id, breed) != breed:
                problems.add(f"CLASS-ID {class_id} is {breed!r} here but {names[class_id]!r} elsewhere", file=path,
                             line=lineno, image=image)
                continue
            kept.setdefault(path.name, []).append((lineno, image, class_id))
    trainval, test = kept.get("trainval.txt", []), kept.get("test.txt", [])
    if sorted(names) != list(range(1, len(names) + 1)):
        problems.add(f"CLASS-IDs must be 1..{len(names)} without gaps", file=annotations)
        problems.raise_if_any(f"the pet dataset under {root}")  # the labels are unknown: nothing else to check
    classes = tuple(names[k] for k in range(1, len(names) + 1))

    everything = [(name, class_id - 1) for _, name, class_id in trainval + test]
    files = [root / "images" / f"{name}.jpg" for name, _ in everything]
    infos = dict(zip((n for n, _ in everything),
                     probe_images(files, jobs=jobs, progress=progress, what="pet: decoding images", decode=True)))
    bad: list[dict[str, str]] = [{"image": n, "reason": f"image {i.path} {i.error}"}
                                 for n, i in infos.items() if i.error]
    converted = [{"image": n, "format": i.format, "mode": i.mode} for n, i in infos.items()
                 if not i.error and (i.format != "JPEG" or i.mode != "RGB")]

    groups: dict[int, list[str]] = {}
    for _, name, class_id in trainval:
        if not infos[name].error:
            groups.setdefault(class_id - 1, []).append(name)
    held = holdout(groups, val_per_class, seed, names=classes, what="trainval")

    def sample(name: str, label: int, localized: bool) -> Sample | None:
        info = infos[name]
        if info.error:
            return None
        path = str(info.path)
        if not localized:
            return Sample(name, path, label, info.width, info.height)
        trimap = annotations / "trimaps" / f"{name}.png"
        box, reason = _trimap_box(trimap, info.width, info.height)
        if box is None:
            bad.append({"image": name, "reason": str(reason)})
            return None
        return Sample(name, path, label, info.width, info.height, (box,), str(trimap), mask_kind="trimap")

    with progress.phase("pet: trimaps", len(held) + len(test)) as advance:
        def rows(items: list[tuple[int, str, int]], keep, localized: bool) -> list[Sample]:
            out = []
            for _, name, class_id in items:
                if keep(name):
                    made = sample(name, class_id - 1, localized)
                    if localized:
                        advance(1)
                    if made is not None:
                        out.append(made)
            return out

        splits = {"train": rows(trainval, lambda n: n not in held, False),
                  "val": rows(trainval, lambda n: n in held, True),
                  "test": rows(test, lambda n: True, True)}
    if bad:
        progress.log(f"pet: left out {len(bad)} image(s): "
                     + format_items([f"{b['image']} ({b['reason']})" for b in bad], 3))
    info = {"val": {"source": "trainval-holdout", "per_class": val_per_class, "seed": seed},
            "masks": "trimap: 1 foreground, 2 background, 3 boundary = ignore",
            "boxes": "tight inclusive box of the trimap foreground (value 1)",
            "bad_images": bad, "converted_images": converted}
    return Conversion(name=f"pet/val=trainval-holdout-{val_per_class}pc-seed{seed}", classes=classes,
                      splits=splits, info=info)
