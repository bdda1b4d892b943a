"""The on-disk dataset manifest: ids, labels, sizes, boxes, mask files, ignore regions.

A manifest is a directory (spec: ``data_manifests/FORMAT.md``)::

    <dir>/manifest.json   {"format": "wsolbench-manifest", "version": 1, "name": ...,
                           "root": ..., "classes": [...], "splits": ["train", "val", "test"]}
    <dir>/<split>.jsonl   one JSON object per line, one image per line

Every problem found while loading raises a one-line :class:`ManifestError` naming
the file and line (:func:`scan_manifest` instead collects every problem, for
``wsolbench data verify``). Boxes are ``(x0, y0, x1, y1)`` in original image pixels, the
order of wsolevaluation's ``localization.txt``; the metrics use the +1
(inclusive-pixel) IoU convention on them.

Torch-free on purpose (numpy, OpenCV, Pillow and the standard library only):
records, reports and dataset converters import this module without a GPU stack.
Image and mask decoding lives beside it in :mod:`wsolbench.imageio`, whose
names are re-exported here. The atomic-write helpers of :mod:`wsolbench._io` are
re-exported too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from wsolbench._io import DIR_MODE, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)
from wsolbench.errors import ManifestError, OutputError

# Image and mask decoding lives in wsolbench.imageio; re-exported so `from wsolbench.manifest import ...` works.
from wsolbench.imageio import (  # noqa: F401  (re-exported)
    MASK_KINDS,
    SOFT_MASK_THRESHOLD,
    TRIMAP_BACKGROUND,
    TRIMAP_FOREGROUND,
    TRIMAP_IGNORE,
    decode_mask,
    load_eval_class_mask,
    load_eval_mask,
    merge_ignore,
    read_file_bytes,
    read_image,
    read_index_mask,
    read_mask,
    read_soft_mask,
)
from wsolbench.structs import MASK_IGNORE

FORMAT = "wsolbench-manifest"
VERSION = 1
MANIFEST_FILE = "manifest.json"
#: Value of an "ignore" pixel in the maps returned by :func:`load_eval_mask`; an alias of
#: :data:`wsolbench.structs.MASK_IGNORE`, kept for compatibility (new code imports that).
IGNORE_VALUE = MASK_IGNORE

_TOP_KEYS = ("format", "version", "name", "root", "classes", "splits")
_OPTIONAL_TOP_KEYS = ("mask_root", "info")
_REQUIRED_KEYS = ("id", "path", "label", "size")
_LINE_KEYS = frozenset(("id", "path", "label", "size", "boxes", "mask", "ignore", "labels", "mask_kind"))
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sample:
    """One image of a manifest.

    ``path`` is a POSIX path relative to the manifest's root, ``mask`` and
    ``ignore`` relative to its mask root (the root unless the manifest names
    another). ``boxes`` are ``(x0, y0, x1, y1)`` in original pixels (empty for
    label-only splits); ``width`` and ``height`` are the original image size.
    ``labels`` is the image's whole label set for multi-label datasets (PASCAL
    VOC; it contains ``label``), empty when the image has the one ``label``.
    ``mask_kind`` says how the mask file is read (:data:`MASK_KINDS`).
    """

    image_id: str
    path: str
    label: int
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    mask: str | None = None
    ignore: str | None = None
    labels: tuple[int, ...] = ()
    mask_kind: str = "binary"

    @property
    def label_set(self) -> tuple[int, ...]:
        """Every class of the image: ``labels``, or ``(label,)`` for a single-label image."""
        return self.labels or (self.label,)


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated manifest. Build it with :func:`load_manifest`."""

    directory: Path
    name: str
    root: Path  # resolved, absolute
    classes: tuple[str, ...]
    splits: Mapping[str, tuple[Sample, ...]]
    # sha256 of the bytes read by load_manifest; None means "hash the files on disk".
    _digest: str | None = field(default=None, repr=False, compare=False)
    #: Where ``mask`` and ``ignore`` paths are relative to (resolved); None: the root.
    mask_root: Path | None = None
    #: Free-form facts the converter recorded (source, options, val-split choice, ...).
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> tuple[Sample, ...]:
        try:
            return self.splits[name]
        except KeyError:
            known = ", ".join(self.splits) or "none"
            raise ManifestError(f"manifest {self.directory} has no split {name!r} (known: {known})") from None

    def image_path(self, sample: Sample) -> Path:
        return self.root / sample.path

    def mask_path(self, sample: Sample) -> Path | None:
        return None if sample.mask is None else (self.mask_root or self.root) / sample.mask

    def ignore_path(self, sample: Sample) -> Path | None:
        return None if sample.ignore is None else (self.mask_root or self.root) / sample.ignore

    def content_hash(self) -> str:
        """sha256 (16 hex digits) of ``manifest.json`` (without ``root``) and the split files, as loaded."""
        if self._digest is not None:
            return self._digest
        return _hash_files(Path(self.directory), list(self.splits))


# --------------------------------------------------------------------------- validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt_box(box: Any) -> str:
    if isinstance(box, list):
        return "[" + ", ".join(_fmt_num(v) for v in box) + "]"
    return json.dumps(box)


def _fmt_num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _check_rel_path(value: Any, key: str) -> str:
    """A relative POSIX path that stays under the root, or an error message (raised as ValueError)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, got {json.dumps(value)}")
    if "\\" in value:
        raise ValueError(f"{key} {value!r} contains a backslash; use '/' separators")
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{key} {value!r} is absolute; paths must be relative to the root")
    parts = PurePosixPath(value).parts
    if ".." in parts:
        raise ValueError(f"{key} {value!r} escapes the root ('..' is not allowed)")
    if value in (".", "./") or not parts:
        raise ValueError(f"{key} {value!r} is not a file path")
    return value


def _parse_sample(obj: Any, num_classes: int) -> Sample:
    """Validate one decoded line; raise ValueError with a message (no location)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - _LINE_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_LINE_KEYS))})")

    image_id = obj["id"]
    if not isinstance(image_id, str) or not image_id:
        raise ValueError(f"id must be a non-empty string, got {json.dumps(image_id)}")
    path = _check_rel_path(obj["path"], "path")

    label = obj["label"]
    if not _is_int(label):
        raise ValueError(f"label must be an integer, got {json.dumps(label)}")
    if not 0 <= label < num_classes:
        raise ValueError(f"label {label} is out of range [0, {num_classes - 1}]")

    size = obj["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        raise ValueError(f"size must be [width, height] integers, got {json.dumps(size)}")
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"size {json.dumps(size)} must be positive")

    raw_boxes = obj.get("boxes", [])
    if raw_boxes is None:
        raw_boxes = []
    if not isinstance(raw_boxes, list):
        raise ValueError(f"boxes must be a list of [x0, y0, x1, y1], got {json.dumps(raw_boxes)}")
    boxes = []
    for box in raw_boxes:
        if not isinstance(box, list) or len(box) != 4:
            raise ValueError(f"box {_fmt_box(box)} must have 4 numbers [x0, y0, x1, y1]")
        if not all(_is_number(v) for v in box):
            raise ValueError(f"box {_fmt_box(box)} must hold finite numbers")
        x0, y0, x1, y1 = (float(v) for v in box)
        if x1 < x0:
            raise ValueError(f"box {_fmt_box(box)} has x1 < x0")
        if y1 < y0:
            raise ValueError(f"box {_fmt_box(box)} has y1 < y0")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ValueError(f"box {_fmt_box(box)} lies outside the image size [{width}, {height}]")
        boxes.append((x0, y0, x1, y1))

    mask = obj.get("mask")
    if mask is not None:
        mask = _check_rel_path(mask, "mask")
    ignore = obj.get("ignore")
    if ignore is not None:
        ignore = _check_rel_path(ignore, "ignore")
        if mask is None:
            raise ValueError("ignore is given without a mask")

    raw_labels = obj.get("labels") or []
    if not (isinstance(raw_labels, list) and all(_is_int(v) for v in raw_labels)):
        raise ValueError(f"labels must be a list of integers, got {json.dumps(raw_labels)}")
    for value in raw_labels:
        if not 0 <= value < num_classes:
            raise ValueError(f"labels value {value} is out of range [0, {num_classes - 1}]")
    if len(set(raw_labels)) != len(raw_labels):
        raise ValueError(f"labels {json.dumps(raw_labels)} lists a class twice")
    if raw_labels and label not in raw_labels:
        raise ValueError(f"label {label} is not in labels {json.dumps(raw_labels)}")
    mask_kind = obj.get("mask_kind") or "binary"
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind {json.dumps(mask_kind)} is unknown (known: {', '.join(MASK_KINDS)})")
    return Sample(image_id=image_id, path=path, label=label, width=width, height=height,
                  boxes=tuple(boxes), mask=mask, ignore=ignore, labels=tuple(raw_labels), mask_kind=mask_kind)


def _sample_record(sample: Sample) -> dict[str, Any]:
    """The JSON object of one line (integral box coordinates written as integers)."""
    boxes = [[int(v) if float(v).is_integer() else float(v) for v in box] for box in sample.boxes]
    record = {"id": sample.image_id, "path": sample.path, "label": sample.label,
              "size": [sample.width, sample.height], "boxes": boxes,
              "mask": sample.mask, "ignore": sample.ignore}
    # The optional keys are written only when set, so single-label binary-mask lines stay as before.
    if sample.labels:
        record["labels"] = list(sample.labels)
    if sample.mask_kind != "binary":
        record["mask_kind"] = sample.mask_kind
    return record


def _check_header(data: Any, where: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in _TOP_KEYS if k not in data]
    if missing:
        raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}")
    if data["format"] != FORMAT:
        raise ManifestError(f"{where}: unknown format {data['format']!r} (expected {FORMAT!r})")
    if data["version"] != VERSION or not _is_int(data["version"]):
        raise ManifestError(f"{where}: unsupported version {data['version']!r} (this wsolbench reads version {VERSION})")
    name, root, classes, splits = data["name"], data["root"], data["classes"], data["splits"]
    if not isinstance(name, str):
        raise ManifestError(f"{where}: name must be a string, got {json.dumps(name)}")
    if not isinstance(root, str) or not root:
        raise ManifestError(f"{where}: root must be a non-empty string, got {json.dumps(root)}")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise ManifestError(f"{where}: classes must be a non-empty list of non-empty strings")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if classes.count(c) > 1)
        raise ManifestError(f"{where}: class {dup!r} is listed twice")
    if not (isinstance(splits, list) and splits and all(isinstance(s, str) for s in splits)):
        raise ManifestError(f"{where}: splits must be a non-empty list of names")
    for split in splits:
        if not _SPLIT_NAME.match(split):
            raise ManifestError(f"{where}: invalid split name {split!r} (letters, digits, '_', '.', '-')")
    if len(set(splits)) != len(splits):
        raise ManifestError(f"{where}: a split is listed twice: {splits}")
    mask_root = data.get("mask_root")
    if mask_root is not None and (not isinstance(mask_root, str) or not mask_root):
        raise ManifestError(f"{where}: mask_root must be a non-empty string, got {json.dumps(mask_root)}")
    if not isinstance(data.get("info", {}), dict):
        raise ManifestError(f"{where}: info must be a JSON object")
    return name, root, tuple(classes), tuple(splits)


def _hash_files(directory: Path, splits: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in [MANIFEST_FILE] + [f"{s}.jsonl" for s in splits]:
        try:
            data = (directory / name).read_bytes()
        except OSError as exc:
            raise ManifestError(f"manifest {directory / name}: cannot be read: {exc.strerror}") from None
        _update(digest, name, data)
    return digest.hexdigest()[:16]


def _update(digest: Any, name: str, data: bytes) -> None:
    # Length-prefixed, so moving bytes between files changes the hash. The header's ``root`` (where
    # the dataset lives on this machine) is left out: the same data at two paths hashes the same.
    if name == MANIFEST_FILE:
        try:
            header = json.loads(data)
            header.pop("root", None)
            data = json.dumps(header, sort_keys=True).encode()
        except ValueError:
            pass
    digest.update(f"{name}\0{len(data)}\0".encode())
    digest.update(data)


def load_manifest(directory: str | Path, *, check_files: bool = False, root: str | Path | None = None) -> Manifest:
    """Read and validate a manifest directory.

    Every line of every split is checked (keys, label range, size, boxes, paths,
    ids unique across the whole manifest). With ``check_files`` the image, mask
    and ignore files must also exist under the root (one ``stat`` each).
    ``root`` replaces the header's root (the dataset moved); a header
    ``mask_root`` stays relative to the manifest directory.
    """
    manifest, _ = _load(Path(directory), check_files=check_files, root=root, problems=None)
    return manifest


@dataclass(frozen=True)
class ManifestScan:
    """What :func:`scan_manifest` read: the valid lines, where they are, and every problem.

    ``lines[split][i]`` is the line number of ``manifest.split(split)[i]``.
    """

    manifest: Manifest
    lines: Mapping[str, tuple[int, ...]]
    problems: tuple[str, ...]


def scan_manifest(directory: str | Path, *, root: str | Path | None = None) -> ManifestScan:
    """Like :func:`load_manifest`, but collect every line problem instead of stopping at the first.

    A bad line is reported and left out; a duplicate id is reported and the later
    line left out; a missing split file is reported and the split is empty. A
    header that cannot be read still raises :class:`ManifestError` (nothing else
    can be checked without it).
    """
    problems: list[str] = []
    manifest, lines = _load(Path(directory), check_files=False, root=root, problems=problems)
    return ManifestScan(manifest=manifest, lines=MappingProxyType(lines), problems=tuple(problems))


def _load(directory: Path, *, check_files: bool, root: str | Path | None,
          problems: list[str] | None) -> tuple[Manifest, dict[str, tuple[int, ...]]]:
    """The reader behind load_manifest (``problems`` None: raise at the first) and scan_manifest."""

    def fail(message: str) -> None:
        if problems is None:
            raise ManifestError(message)
        problems.append(message)

    header = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ManifestError(f"manifest directory {directory} does not exist")
    if not header.is_file():
        raise ManifestError(f"manifest {header} does not exist")
    digest = hashlib.sha256()
    try:
        raw = header.read_bytes()
    except OSError as exc:
        raise ManifestError(f"manifest {header}: cannot be read: {exc.strerror}") from None
    _update(digest, MANIFEST_FILE, raw)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {header}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {header} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    name, root_text, classes, split_names = _check_header(data, f"manifest {header}")
    root_path = Path(root_text) if root is None else Path(root)
    root_path = (root_path if root_path.is_absolute() else directory / root_path).resolve()
    mask_root = data.get("mask_root")
    mask_root_path = None
    if mask_root is not None:
        mask_root_path = Path(mask_root)
        mask_root_path = (mask_root_path if mask_root_path.is_absolute() else directory / mask_root_path).resolve()

    seen: dict[str, str] = {}
    splits: dict[str, tuple[Sample, ...]] = {}
    line_numbers: dict[str, tuple[int, ...]] = {}
    for split in split_names:
        splits[split], line_numbers[split] = (), ()
        path = directory / f"{split}.jsonl"
        if not path.is_file():
            fail(f"manifest {path} does not exist (split {split!r} is listed in {MANIFEST_FILE})")
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            fail(f"manifest {path}: cannot be read: {exc.strerror}")
            continue
        _update(digest, path.name, raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            fail(f"manifest {path}: not UTF-8 text")
            continue
        samples, numbers = [], []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"manifest {path} line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                fail(f"{where}: invalid JSON: {exc.msg}")
                continue
            try:
                sample = _parse_sample(obj, len(classes))
            except ValueError as exc:
                fail(f"{where}: {exc}")
                continue
            if sample.image_id in seen:
                fail(f"{where}: duplicate id {sample.image_id!r} (first at {seen[sample.image_id]})")
                continue
            seen[sample.image_id] = f"{path.name} line {lineno}"
            if check_files:
                for key in ("path", "mask", "ignore"):
                    rel = getattr(sample, key)
                    base = root_path if key == "path" else (mask_root_path or root_path)
                    if rel is not None and not (base / rel).is_file():
                        fail(f"{where}: {key} file {base / rel} does not exist")
            samples.append(sample)
            numbers.append(lineno)
        splits[split], line_numbers[split] = tuple(samples), tuple(numbers)
    manifest = Manifest(directory=directory, name=name, root=root_path, classes=classes,
                        splits=MappingProxyType(splits), _digest=digest.hexdigest()[:16],
                        mask_root=mask_root_path, info=MappingProxyType(dict(data.get("info") or {})))
    return manifest, line_numbers


def write_manifest(directory: str | Path, *, name: str, root: str | Path, classes: Sequence[str],
                   splits: Mapping[str, Sequence[Sample]], mask_root: str | Path | None = None,
                   info: Mapping[str, Any] | None = None) -> Path:
    """Validate and write a manifest directory; return ``directory``.

    Each file goes to a temporary file in the same directory and is moved into
    place with ``os.replace``. An existing ``manifest.json`` is removed first and
    the new one is written last, so a reader never loads a mix of old and new
    split files. ``root`` is relative to ``directory`` (e.g. ``"."``) or absolute.
    ``mask_root`` (optional, same convention) is where ``mask`` and ``ignore``
    paths are relative to when it is not the root, e.g. ``"."`` for masks a
    converter derived into the manifest directory. ``info`` is a JSON object of
    facts about the conversion (source, options, how val was chosen).
    """
    directory = Path(directory)
    root_text = Path(root).as_posix()
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": name, "root": root_text,
                              "classes": list(classes), "splits": list(splits)}
    if mask_root is not None:
        header["mask_root"] = Path(mask_root).as_posix()
    if info:
        header["info"] = json.loads(json.dumps(dict(info)))  # a plain JSON copy (fails early if not JSON)
    _check_header(header, f"write_manifest {directory}")
    seen: dict[str, str] = {}
    bodies: dict[str, bytes] = {}
    for split, samples in splits.items():
        lines = []
        for index, sample in enumerate(samples):
            where = f"write_manifest {directory} split {split!r} sample {index}"
            if not isinstance(sample, Sample):
                raise ManifestError(f"{where}: expected a Sample, got {type(sample).__name__}")
            record = _sample_record(sample)
            try:
                _parse_sample(record, len(header["classes"]))
            except ValueError as exc:
                raise ManifestError(f"{where}: {exc}") from None
            if sample.image_id in seen:
                raise ManifestError(f"{where}: duplicate id {sample.image_id!r} (first at {seen[sample.image_id]})")
            seen[sample.image_id] = f"split {split!r} sample {index}"
            lines.append(json.dumps(record, separators=(", ", ": ")))
        bodies[split] = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write manifest {directory}: {exc.strerror}") from None
    for split, body in bodies.items():
        atomic_write_bytes(directory / f"{split}.jsonl", body)
    atomic_write_text(directory / MANIFEST_FILE, json.dumps(header, indent=2) + "\n")
    return directory
