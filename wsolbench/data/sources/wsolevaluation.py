"""Reader of the plain-text split metadata of the community's WSOL evaluation code.

Source of the format: Choe et al., "Evaluating Weakly Supervised Object
Localization Methods Right" (CVPR 2020), whose reference code keeps one folder
per split, ``metadata/<dataset>/<split>/``, of comma-separated text files
(``notes/datasets.md``, "wsolevaluation metadata")::

    image_ids.txt      <image_id>                        one line per image
    class_labels.txt   <image_id>,<label>                0-based class index
    image_sizes.txt    <image_id>,<w>,<h>                original size (empty for OpenImages)
    localization.txt   <image_id>,<x0>,<y0>,<x1>,<y1>    boxes: one line per box, original pixels
                   or  <image_id>,<mask_path>,<ignore_path>
                                                     masks: one line per instance; paths are
                                                     relative to a mask root; a later line of
                                                     the same image may leave ignore empty

Image ids are relative paths with their extension (``test/001/x.jpg``). Files
may lack a trailing newline; blank lines are skipped but counted, so line
numbers match an editor's. Whether ``localization.txt`` holds boxes or masks is
read from its first non-blank line (5 fields: boxes, 3 fields: masks).

Multi-label splits (PASCAL VOC style) repeat ``class_labels.txt`` lines:
``<image_id>,<label>`` once per class present in the image.

Masks follow the reference ``get_mask``: each file is read as OpenCV greyscale
(``cv2.IMREAD_GRAYSCALE``: colour is converted by luma, alpha dropped),
nearest-resized to the evaluation resolution, foreground = any non-zero pixel,
instances OR-ed; the ignore map (non-zero pixels) minus the foreground is
encoded as 255.

Every problem raises a one-line :class:`~wsolbench.errors.ManifestError`
naming the file and line (``metadata/test/localization.txt line 12: expected
id,x0,y0,x1,y1``); unreadable mask files raise
:class:`~wsolbench.errors.DataError`; a mask split read without a mask root
raises :class:`~wsolbench.errors.ConfigError` when a mask is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wsolbench.errors import ConfigError, DataError, ManifestError
from wsolbench.imageio import read_file_bytes
from wsolbench.manifest import Box, Sample
from wsolbench.structs import MASK_IGNORE

IMAGE_IDS = "image_ids.txt"
CLASS_LABELS = "class_labels.txt"
IMAGE_SIZES = "image_sizes.txt"
LOCALIZATION = "localization.txt"

#: Error messages list at most this many ids, then a count.
_LIST_MAX = 5

BOX_FORMAT = "id,x0,y0,x1,y1"
MASK_FORMAT = "id,mask_path,ignore_path"


@dataclass(frozen=True)
class MetadataSample:
    """One image of a metadata split.

    Attributes:
        image_id: the relative path of ``image_ids.txt`` (``test/001/x.jpg``).
        labels: class indices from ``class_labels.txt`` in file order (one for
            single-label datasets; empty when the split has no labels file).
        size: original ``(w, h)``, or None when ``image_sizes.txt`` has no line.
        boxes: ``(x0, y0, x1, y1)`` in original pixels, file order.
        masks: instance mask files, relative to the mask root, file order.
        ignore: the ignore-region file relative to the mask root, or None.
    """

    image_id: str
    labels: tuple[int, ...] = ()
    size: tuple[int, int] | None = None
    boxes: tuple[Box, ...] = ()
    masks: tuple[str, ...] = ()
    ignore: str | None = None

    @property
    def label(self) -> int:
        """The single class label; ManifestError when the image has none or several."""
        if len(self.labels) != 1:
            raise ManifestError(
                f"image {self.image_id!r} has {len(self.labels)} labels in {CLASS_LABELS}; expected exactly one"
            )
        return self.labels[0]


@dataclass(frozen=True)
class MetadataSplit:
    """One split folder, read and cross-checked. Build it with :func:`read_metadata_split`.

    Attributes:
        directory: the split folder as given (used in messages).
        kind: ``"boxes"``, ``"masks"`` or None (no ``localization.txt``, e.g. train).
        samples: one per line of ``image_ids.txt``, in that order.
        mask_root: folder the mask paths are relative to, or None.
        has_labels: whether ``class_labels.txt`` exists (then every image has >= 1 label).
    """

    directory: Path
    kind: str | None
    samples: tuple[MetadataSample, ...]
    mask_root: Path | None = None
    has_labels: bool = True

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[MetadataSample]:
        return iter(self.samples)

    @property
    def image_ids(self) -> tuple[str, ...]:
        return tuple(s.image_id for s in self.samples)

    @property
    def num_classes(self) -> int:
        """``1 + the largest label`` (0 without labels)."""
        return 1 + max((max(s.labels) for s in self.samples if s.labels), default=-1)

    def _root(self) -> Path:
        if self.mask_root is None:
            raise ConfigError(
                f"{self.directory / LOCALIZATION} lists mask files; pass the folder they are relative to "
                "(--mask-root)"
            )
        return self.mask_root

    def mask_paths(self, sample: MetadataSample) -> list[Path]:
        """Absolute-or-relative paths of the instance masks of ``sample`` under the mask root."""
        root = self._root()
        return [root / rel for rel in sample.masks]

    def ignore_path(self, sample: MetadataSample) -> Path | None:
        return None if sample.ignore is None else self._root() / sample.ignore

    def to_samples(self, *, image_prefix: str = "", mask_prefix: str = "") -> list[Sample]:
        """wsolbench manifest :class:`~wsolbench.manifest.Sample` objects, for ``write_manifest``.

        ``path`` is ``image_prefix + image_id`` and mask paths are
        ``mask_prefix + path`` (both relative to the manifest's root). A
        manifest holds one label, one size and one mask file per image, so an
        image with several labels, no size or several mask instances raises
        ManifestError (a converter unions instance masks into one file first).
        ``write_manifest`` validates the result (e.g. boxes inside the image).
        """
        out = []
        for s in self.samples:
            if s.size is None:
                raise ManifestError(f"{self.directory / IMAGE_SIZES}: no size for image {s.image_id!r}; "
                                    "a manifest needs every image's size")
            if len(s.masks) > 1:
                raise ManifestError(f"{self.directory / LOCALIZATION}: image {s.image_id!r} has {len(s.masks)} "
                                    "mask instances; a manifest takes one mask file per image (union them first)")
            mask = mask_prefix + s.masks[0] if s.masks else None
            ignore = mask_prefix + s.ignore if s.ignore is not None and mask is not None else None
            out.append(Sample(image_id=s.image_id, path=image_prefix + s.image_id, label=s.label,
                              width=s.size[0], height=s.size[1], boxes=s.boxes, mask=mask, ignore=ignore))
        return out


# --------------------------------------------------------------------------- parsing


def format_ids(ids: Sequence[str], limit: int = _LIST_MAX) -> str:
    """``a, b, c`` or ``a, b, c, ... (+7 more)``: the first few of a list for a one-line message."""
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... (+{len(ids) - limit} more)" if len(ids) > limit else "")


def _lines(path: Path, *, required: bool) -> list[tuple[int, str]] | None:
    """Non-blank lines ``(lineno, text)`` of a metadata file; None when absent and not required."""
    if not path.is_file():
        if required:
            raise ManifestError(f"{path} does not exist")
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    # splitlines: "\n", "\r\n" and a missing final newline all read the same.
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(",")]


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _positive_int(text: str) -> int:
    value = _number(text)
    if not value.is_integer() or value <= 0:
        raise ValueError(text)
    return int(value)


def _label(text: str) -> int:
    value = _number(text)
    if not value.is_integer() or value < 0:
        raise ValueError(text)
    return int(value)


def _check_known(image_id: str, known: dict[str, int], where: str) -> None:
    if not image_id:
        raise ManifestError(f"{where}: empty image id")
    if image_id not in known:
        raise ManifestError(f"{where}: image {image_id!r} is not listed in {IMAGE_IDS}")


def _read_image_ids(path: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    for lineno, line in _lines(path, required=True) or []:
        image_id = line.strip()
        if image_id in ids:
            raise ManifestError(f"{path} line {lineno}: duplicate image {image_id!r} (first at line {ids[image_id]})")
        ids[image_id] = lineno
    return ids


def _read_labels(path: Path, known: dict[str, int]) -> dict[str, list[int]] | None:
    lines = _lines(path, required=False)
    if lines is None:
        return None
    labels: dict[str, list[int]] = {}
    for lineno, line in lines:
        where = f"{path} line {lineno}"
        parts = line.rsplit(",", 1)
        if len(parts) != 2:
            raise ManifestError(f"{where}: expected id,label")
        image_id, text = parts[0].strip(), parts[1].strip()
        _check_known(image_id, known, where)
        try:
            label = _label(text)
        except ValueError:
            raise ManifestError(f"{where}: label {text!r} is not a non-negative integer") from None
        seen = labels.setdefault(image_id, [])
        if label in seen:
            raise ManifestError(f"{where}: label {label} of image {image_id!r} is listed twice")
        seen.append(label)
    return labels


def _read_sizes(path: Path, known: dict[str, int]) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    first: dict[str, int] = {}
    for lineno, line in _lines(path, required=False) or []:
        where = f"{path} line {lineno}"
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            raise ManifestError(f"{where}: expected id,w,h")
        image_id = parts[0].strip()
        _check_known(image_id, known, where)
        try:
            size = (_positive_int(parts[1]), _positive_int(parts[2]))
        except ValueError:
            raise ManifestError(f"{where}: size {parts[1].strip()},{parts[2].strip()} must be positive integers") \
                from None
        if image_id in sizes:
            raise ManifestError(f"{where}: duplicate size of image {image_id!r} (first at line {first[image_id]})")
        sizes[image_id] = size
        first[image_id] = lineno
    return sizes


def _fmt_box(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _read_localization(
    path: Path, known: dict[str, int]
) -> tuple[str | None, dict[str, list[Box]], dict[str, list[str]], dict[str, str]]:
    """``(kind, boxes, masks, ignore)`` per image id; kind None when the file is absent or empty."""
    lines = _lines(path, required=False)
    boxes: dict[str, list[Box]] = {}
    masks: dict[str, list[str]] = {}
    ignore: dict[str, str] = {}
    if not lines:
        return None, boxes, masks, ignore
    width = len(_fields(lines[0][1]))
    if width == 5:
        kind, expected = "boxes", BOX_FORMAT
    elif width == 3:
        kind, expected = "masks", MASK_FORMAT
    else:
        raise ManifestError(f"{path} line {lines[0][0]}: expected {BOX_FORMAT} (boxes) or {MASK_FORMAT} (masks), "
                            f"got {width} comma-separated fields")
    ignore_line: dict[str, int] = {}
    for lineno, line in lines:
        where = f"{path} line {lineno}"
        parts = _fields(line)
        if len(parts) != width:
            raise ManifestError(f"{where}: expected {expected}")
        image_id = parts[0]
        _check_known(image_id, known, where)
        if kind == "boxes":
            try:
                x0, y0, x1, y1 = (_number(v) for v in parts[1:])
            except ValueError:
                raise ManifestError(f"{where}: expected {expected} with numbers, got {line.strip()!r}") from None
            if x1 < x0:
                raise ManifestError(f"{where}: box {_fmt_box((x0, y0, x1, y1))} has x1 < x0")
            if y1 < y0:
                raise ManifestError(f"{where}: box {_fmt_box((x0, y0, x1, y1))} has y1 < y0")
            boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
        else:
            mask, ignore_rel = parts[1], parts[2]
            if not mask:
                raise ManifestError(f"{where}: empty mask path (expected {expected})")
            masks.setdefault(image_id, []).append(mask)
            if ignore_rel:
                if image_id in ignore and ignore[image_id] != ignore_rel:
                    raise ManifestError(
                        f"{where}: image {image_id!r} already has ignore file {ignore[image_id]!r} "
                        f"(line {ignore_line[image_id]}); later instance lines leave it empty or repeat it"
                    )
                ignore[image_id] = ignore_rel
                ignore_line.setdefault(image_id, lineno)
    return kind, boxes, masks, ignore


def read_metadata_split(split_dir: str | Path, *, mask_root: str | Path | None = None) -> MetadataSplit:
    """Read and cross-check one metadata split folder (e.g. ``metadata/CUB/test``).

    ``image_ids.txt`` is required; ``class_labels.txt``, ``image_sizes.txt``
    and ``localization.txt`` are optional, but when present every id they name
    must be in ``image_ids.txt``, and every image needs a label (if the labels
    file exists) and at least one localization line (if that file exists).
    Box splits also need every image's size (the boxes are rescaled with it).

    Args:
        split_dir: the split folder.
        mask_root: the folder mask paths of ``localization.txt`` are relative to
            (needed to read masks, not to read the metadata).
    """
    directory = Path(split_dir)
    if not directory.is_dir():
        raise ManifestError(f"metadata folder {directory} does not exist")
    known = _read_image_ids(directory / IMAGE_IDS)
    labels = _read_labels(directory / CLASS_LABELS, known)
    sizes = _read_sizes(directory / IMAGE_SIZES, known)
    kind, boxes, masks, ignore = _read_localization(directory / LOCALIZATION, known)

    ids = list(known)
    if labels is not None:
        unlabelled = [i for i in ids if i not in labels]
        if unlabelled:
            raise ManifestError(f"{directory / CLASS_LABELS}: no label for {len(unlabelled)} of {len(ids)} "
                                f"images: {format_ids(unlabelled)}")
    if kind is not None:
        have = boxes if kind == "boxes" else masks
        unlocalized = [i for i in ids if i not in have]
        if unlocalized:
            raise ManifestError(f"{directory / LOCALIZATION}: no {kind} for {len(unlocalized)} of {len(ids)} "
                                f"images: {format_ids(unlocalized)}")
    if kind == "boxes":
        unsized = [i for i in ids if i not in sizes]
        if unsized:
            raise ManifestError(f"{directory / IMAGE_SIZES}: no size for {len(unsized)} of {len(ids)} images "
                                f"(boxes are rescaled with it): {format_ids(unsized)}")

    samples = tuple(
        MetadataSample(
            image_id=i,
            labels=tuple(labels.get(i, ())) if labels is not None else (),
            size=sizes.get(i),
            boxes=tuple(boxes.get(i, ())),
            masks=tuple(masks.get(i, ())),
            ignore=ignore.get(i),
        )
        for i in ids
    )
    return MetadataSplit(directory=directory, kind=kind, samples=samples,
                         mask_root=None if mask_root is None else Path(mask_root),
                         has_labels=labels is not None)


# --------------------------------------------------------------------------- masks


def read_grayscale_nonzero(path: str | Path, what: str = "mask") -> np.ndarray:
    """``(H, W)`` bool: non-zero pixels of a file read as ``cv2.IMREAD_GRAYSCALE``.

    Greyscale reading converts colour by luma (a pure-blue level-1 pixel reads
    as 0) and drops alpha, exactly as the reference code reads masks.
    """
    path = Path(path)
    data = read_file_bytes(path, what)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise DataError(f"{what} {path} cannot be decoded")
    return image != 0


def load_eval_mask(split: MetadataSplit, sample: MetadataSample, resolution: int) -> np.ndarray:
    """Ground truth of a mask sample at ``(resolution, resolution)``: uint8 0 / 1 / 255 (ignore).

    Each instance and the ignore map are nearest-resized (``cv2.INTER_NEAREST``),
    then the instances are OR-ed and ignore pixels outside the foreground set to 255.
    """
    if not sample.masks:
        raise DataError(f"image {sample.image_id!r} has no mask in {split.directory / LOCALIZATION}")
    size = (int(resolution), int(resolution))
    foreground = np.zeros(size[::-1], dtype=bool)
    for path in split.mask_paths(sample):
        instance = read_grayscale_nonzero(path).astype(np.uint8)
        foreground |= cv2.resize(instance, size, interpolation=cv2.INTER_NEAREST) != 0
    out = foreground.astype(np.uint8)
    ignore_path = split.ignore_path(sample)
    if ignore_path is not None:
        ignore = read_grayscale_nonzero(ignore_path, "ignore map").astype(np.uint8)
        ignore = cv2.resize(ignore, size, interpolation=cv2.INTER_NEAREST) != 0
        out[ignore & ~foreground] = MASK_IGNORE
    return out
