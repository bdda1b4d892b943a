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
id,x0,y0,x1,y1``), or, when :func:`read_metadata_split` is given a
:class:`~wsolbench.data.sources.problems.Problems` collector (the dataset
converters), is added there and the bad line skipped, so every problem of every
file is found in one pass; unreadable mask files raise
:class:`~wsolbench.errors.DataError`; a mask split read without a mask root
raises :class:`~wsolbench.errors.ConfigError` when a mask is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from wsolbench.data.sources.problems import Problem, Problems
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
        line: the line of ``image_ids.txt`` that lists the image (for messages).
        box_lines: the line of ``localization.txt`` of each box (for messages).
    """

    image_id: str
    labels: tuple[int, ...] = ()
    size: tuple[int, int] | None = None
    boxes: tuple[Box, ...] = ()
    masks: tuple[str, ...] = ()
    ignore: str | None = None
    line: int | None = field(default=None, compare=False)
    box_lines: tuple[int, ...] = field(default=(), compare=False)

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


class _Report:
    """Raise the first problem as ManifestError (``problems`` None), or add each to ``problems``."""

    def __init__(self, problems: Problems | None) -> None:
        self.problems = problems

    def __call__(self, message: str, *, file: Path, line: int | None = None, image: str | None = None) -> None:
        if self.problems is None:
            raise ManifestError(str(Problem(message, file=str(file), line=line)))
        self.problems.add(message, file=file, line=line, image=image)

    @property
    def collecting(self) -> bool:
        return self.problems is not None


def _lines(path: Path, *, required: bool, report: _Report | None = None) -> list[tuple[int, str]] | None:
    """Non-blank lines ``(lineno, text)`` of a metadata file; None when absent and not required.

    With a collecting ``report``, a required file that is missing, or any file
    that cannot be read, is a problem and the result is None.
    """
    def fail(message: str) -> None:
        if report is None or not report.collecting:
            raise ManifestError(f"{path} {message}" if message.startswith(("does", "cannot")) else f"{path}: {message}")
        report(message, file=path)

    if not path.is_file():
        if required:
            fail("does not exist")
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"cannot be read: {exc.strerror}")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail("not UTF-8 text")
        return None
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


def _known(image_id: str, known: dict[str, int], report: _Report, path: Path, lineno: int) -> bool:
    if not image_id:
        report("empty image id", file=path, line=lineno)
        return False
    if image_id not in known:
        report(f"image {image_id!r} is not listed in {IMAGE_IDS}", file=path, line=lineno)
        return False
    return True


def _read_image_ids(path: Path, report: _Report) -> dict[str, int]:
    ids: dict[str, int] = {}
    for lineno, line in _lines(path, required=True, report=report) or []:
        image_id = line.strip()
        if image_id in ids:
            report(f"duplicate image {image_id!r} (first at line {ids[image_id]})", file=path, line=lineno,
                   image=image_id)
            continue
        ids[image_id] = lineno
    return ids


def _read_labels(path: Path, known: dict[str, int], report: _Report) -> tuple[dict[str, list[int]], set[str]] | None:
    """``(labels, ids with a line)``, None when the file is absent."""
    lines = _lines(path, required=False, report=report)
    if lines is None:
        return None
    labels: dict[str, list[int]] = {}
    mentioned: set[str] = set()
    for lineno, line in lines:
        parts = line.rsplit(",", 1)
        if len(parts) != 2:
            report("expected id,label", file=path, line=lineno)
            continue
        image_id, text = parts[0].strip(), parts[1].strip()
        if not _known(image_id, known, report, path, lineno):
            continue
        mentioned.add(image_id)
        try:
            label = _label(text)
        except ValueError:
            report(f"label {text!r} is not a non-negative integer", file=path, line=lineno, image=image_id)
            continue
        seen = labels.setdefault(image_id, [])
        if label in seen:
            report(f"label {label} of image {image_id!r} is listed twice", file=path, line=lineno, image=image_id)
            continue
        seen.append(label)
    return labels, mentioned


def _read_sizes(path: Path, known: dict[str, int], report: _Report) -> tuple[dict[str, tuple[int, int]], set[str]]:
    sizes: dict[str, tuple[int, int]] = {}
    first: dict[str, int] = {}
    mentioned: set[str] = set()
    for lineno, line in _lines(path, required=False, report=report) or []:
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            report("expected id,w,h", file=path, line=lineno)
            continue
        image_id = parts[0].strip()
        if not _known(image_id, known, report, path, lineno):
            continue
        mentioned.add(image_id)
        try:
            size = (_positive_int(parts[1]), _positive_int(parts[2]))
        except ValueError:
            report(f"size {parts[1].strip()},{parts[2].strip()} must be positive integers", file=path, line=lineno,
                   image=image_id)
            continue
        if image_id in sizes:
            report(f"duplicate size of image {image_id!r} (first at line {first[image_id]})", file=path,
                   line=lineno, image=image_id)
            continue
        sizes[image_id] = size
        first[image_id] = lineno
    return sizes, mentioned


def _fmt_box(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@dataclass
class _Localization:
    kind: str | None = None
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    box_lines: dict[str, list[int]] = field(default_factory=dict)
    masks: dict[str, list[str]] = field(default_factory=dict)
    ignore: dict[str, str] = field(default_factory=dict)
    mentioned: set[str] = field(default_factory=set)


def _read_localization(path: Path, known: dict[str, int], report: _Report) -> _Localization:
    """Boxes (with their lines) or masks and ignore files per image id; kind None when absent or empty."""
    lines = _lines(path, required=False, report=report)
    out = _Localization()
    if not lines:
        return out
    width = len(_fields(lines[0][1]))
    if width == 5:
        kind, expected = "boxes", BOX_FORMAT
    elif width == 3:
        kind, expected = "masks", MASK_FORMAT
    else:
        report(f"expected {BOX_FORMAT} (boxes) or {MASK_FORMAT} (masks), got {width} comma-separated fields",
               file=path, line=lines[0][0])
        return out
    out.kind = kind
    ignore_line: dict[str, int] = {}
    for lineno, line in lines:
        parts = _fields(line)
        if len(parts) != width:
            report(f"expected {expected}", file=path, line=lineno)
            continue
        image_id = parts[0]
        if not _known(image_id, known, report, path, lineno):
            continue
        out.mentioned.add(image_id)
        if kind == "boxes":
            try:
                x0, y0, x1, y1 = (_number(v) for v in parts[1:])
            except ValueError:
                report(f"expected {expected} with numbers, got {line.strip()!r}", file=path, line=lineno,
                       image=image_id)
                continue
            if x1 < x0:
                report(f"box {_fmt_box((x0, y0, x1, y1))} has x1 < x0", file=path, line=lineno, image=image_id)
                continue
            if y1 < y0:
                report(f"box {_fmt_box((x0, y0, x1, y1))} has y1 < y0", file=path, line=lineno, image=image_id)
                continue
            out.boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
            out.box_lines.setdefault(image_id, []).append(lineno)
        else:
            mask, ignore_rel = parts[1], parts[2]
            if not mask:
                report(f"empty mask path (expected {expected})", file=path, line=lineno, image=image_id)
                continue
            if ignore_rel:
                if image_id in out.ignore and out.ignore[image_id] != ignore_rel:
                    report(f"image {image_id!r} already has ignore file {out.ignore[image_id]!r} "
                           f"(line {ignore_line[image_id]}); later instance lines leave it empty or repeat it",
                           file=path, line=lineno, image=image_id)
                    continue
                out.ignore[image_id] = ignore_rel
                ignore_line.setdefault(image_id, lineno)
            out.masks.setdefault(image_id, []).append(mask)
    return out


def _missing(report: _Report, path: Path, ids: list[str], have: set[str], what: str, why: str = "") -> None:
    """Images of ``ids`` not in ``have``: one message listing them, or one problem each when collecting."""
    absent = [i for i in ids if i not in have]
    if not absent:
        return
    if report.problems is None:
        raise ManifestError(f"{path}: no {what} for {len(absent)} of {len(ids)} images{why}: {format_ids(absent)}")
    for image_id in absent:
        report(f"no {what} for the image{why}", file=path, image=image_id)


def read_metadata_split(split_dir: str | Path, *, mask_root: str | Path | None = None,
                        problems: Problems | None = None) -> MetadataSplit:
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
        problems: collect every problem there (each bad line is skipped) instead
            of raising ManifestError at the first. A missing folder still raises.
    """
    directory = Path(split_dir)
    if not directory.is_dir():
        raise ManifestError(f"metadata folder {directory} does not exist")
    report = _Report(problems)
    known = _read_image_ids(directory / IMAGE_IDS, report)
    read_labels = _read_labels(directory / CLASS_LABELS, known, report)
    sizes, sized = _read_sizes(directory / IMAGE_SIZES, known, report)
    loc = _read_localization(directory / LOCALIZATION, known, report)

    ids = list(known)
    labels = None
    if read_labels is not None:
        labels, labelled = read_labels
        _missing(report, directory / CLASS_LABELS, ids, labelled, "label")
    if loc.kind is not None:
        _missing(report, directory / LOCALIZATION, ids, loc.mentioned, loc.kind)
    if loc.kind == "boxes":
        _missing(report, directory / IMAGE_SIZES, ids, sized, "size", " (boxes are rescaled with it)")

    samples = tuple(
        MetadataSample(
            image_id=i,
            labels=tuple(labels.get(i, ())) if labels is not None else (),
            size=sizes.get(i),
            boxes=tuple(loc.boxes.get(i, ())),
            masks=tuple(loc.masks.get(i, ())),
            ignore=loc.ignore.get(i),
            line=known[i],
            box_lines=tuple(loc.box_lines.get(i, ())),
        )
        for i in ids
    )
    return MetadataSplit(directory=directory, kind=loc.kind, samples=samples,
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
