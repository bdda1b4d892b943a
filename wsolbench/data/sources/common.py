"""What every dataset converter shares: the registry, options, the result type and helpers.

A converter turns a raw dataset, laid out as its publisher ships it, into the
samples of a manifest. It is registered by name with :func:`register_source`
and declares its options (:class:`SourceOption`), so the CLI builds
``wsolbench data prepare <name> --root RAW --out DIR [options]`` from the
registry alone. :func:`wsolbench.data.sources.prepare` runs one and writes the
manifest.

A converter checks everything it reads and adds each fault to a
:class:`~.problems.Problems` collector instead of raising at the first one
(:mod:`.problems`), so one run names every problem of a dataset.

A converter returns a :class:`Conversion` whose sample paths are **absolute**;
the writer picks the manifest root (the deepest folder holding every image and
raw mask, so a val split that lives outside the main folder, e.g. CUBV2, still
fits under one root) and makes them relative. Files the converter derives
(merged masks) are written under the output folder and the manifest names that
folder as its ``mask_root``.

Torch-free: numpy, OpenCV, Pillow and the standard library only.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsolbench._registry import Registry
from wsolbench.data.sources.problems import BoxCheck, DataProblems, Problem, Problems  # noqa: F401  (re-exported)
from wsolbench.errors import DataError, ManifestError, OutputError
from wsolbench.manifest import Box, Sample
from wsolbench.progress import NullProgress, Progress

#: The option kinds a converter may declare (the CLI maps each to a click type).
OPTION_KINDS = ("path", "int", "str", "choice", "flag", "multi")
#: File name suffixes taken as images when a converter lists a folder (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Error messages list at most this many items, then a count.
LIST_MAX = 5
#: The sub-folder of a manifest folder that holds files a converter derived (merged masks).
DERIVED_DIR = "masks"
#: The option the raw folder comes from in ``wsolbench data prepare``; a run's is ``--data-root`` (data.root).
ROOT_OPTION = "--root"


class RootLayoutError(ManifestError):
    """The raw folder is not laid out as the converter expects (``found``: what is wrong, ``expected``: what
    the folder must be). The message names the option the folder came from: :data:`ROOT_OPTION` unless
    :func:`~wsolbench.data.sources.prepare` was told another (:meth:`from_option`)."""

    def __init__(self, root: Path, found: str, expected: str, option: str = ROOT_OPTION) -> None:
        super().__init__(f"{option} {root}: {found}; {option} must {expected}")
        self.root, self.found, self.expected, self.option = root, found, expected, option

    def from_option(self, option: str) -> RootLayoutError:
        """The same error, naming ``option`` as where the folder came from."""
        return RootLayoutError(self.root, self.found, self.expected, option)


@dataclass(frozen=True)
class SourceOption:
    """One dataset-specific option: ``name`` is the keyword (``cubv2_metadata`` -> ``--cubv2-metadata``)."""

    name: str
    kind: str
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option {self.name!r}: unknown kind {self.kind!r} (known: {', '.join(OPTION_KINDS)})")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Conversion:
    """A converter's result, before it is written.

    Attributes:
        name: the manifest name; says which val split was used (``cub/val=cubv2``),
            so a run record names it.
        classes: class names, index = label.
        splits: ``train``, ``val``, ``test`` samples with absolute POSIX paths.
        info: facts for the manifest header (counts, the val choice, skipped files).
        derived_masks: masks and ignore maps are files the converter wrote under
            the output folder (then the manifest's ``mask_root`` is that folder).
    """

    name: str
    classes: tuple[str, ...]
    splits: Mapping[str, Sequence[Sample]]
    info: Mapping[str, Any] = field(default_factory=dict)
    derived_masks: bool = False


@dataclass(frozen=True)
class Source:
    """A registered converter: ``convert(root, out, *, progress, jobs, problems, **options) -> Conversion``.

    ``problems`` is the :class:`~.problems.Problems` collector: the converter adds
    every fault of the raw data there and goes on checking; ``prepare`` refuses to
    write a manifest when anything was added (:class:`~.problems.DataProblems`).
    """

    name: str
    convert: Callable[..., Conversion]
    options: tuple[SourceOption, ...]
    summary: str
    #: Bump when the manifests the converter writes change; cached conversions are then redone.
    version: int = 1
    #: The raw folder's layout check (``root -> the folder the converter reads``, RootLayoutError when the layout
    #: is wrong), run before anything is written for a run; None for converters that check as they read.
    find_root: Callable[[Path], Path] | None = None

    def resolve_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every declared option, defaults filled; ConfigError names an unknown one."""
        from wsolbench.errors import ConfigError

        given = dict(options or {})
        known = {o.name for o in self.options}
        unknown = sorted(set(given) - known)
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"dataset {self.name!r}: unknown option(s) {', '.join(unknown)} (known: {names})")
        out = {}
        for opt in self.options:
            value = given.get(opt.name)
            if value is None or (opt.kind == "multi" and not value):
                value = opt.default
            if opt.kind == "choice" and value is not None and value not in opt.choices:
                raise ConfigError(f"dataset {self.name!r}: {opt.flag} must be one of {', '.join(opt.choices)}, "
                                  f"got {value!r}")
            if opt.kind == "path" and value is not None:
                value = Path(value)
            out[opt.name] = tuple(value or ()) if opt.kind == "multi" else value
        return out


SOURCES: Registry[Source] = Registry("dataset")

#: The option of every converter that reads annotated boxes: clip, rather than report, boxes outside the image.
CLIP_BOXES = SourceOption("clip_boxes", "flag", "Clip boxes that stick out of their image to it (counted in the "
                          "manifest's info.clipped_boxes) instead of reporting them as problems. A box with a "
                          "negative or zero width or height stays a problem.", default=False)
#: The option of converters that decode every image: read only the headers (sizes) instead.
HEADERS_ONLY = SourceOption("headers_only", "flag", "Read only each image's header (its size), not the whole "
                            "image: faster, but a truncated or corrupt file is then found only when it is used "
                            "(wsolbench data verify decodes every image).", default=False)


def register_source(name: str, *, summary: str, options: Sequence[SourceOption] = (), version: int = 1,
                    find_root: Callable[[Path], Path] | None = None,
                    ) -> Callable[[Callable[..., Conversion]], Callable[..., Conversion]]:
    """Register ``convert`` under ``name`` (decorator); the function itself is returned unchanged."""

    def decorator(convert: Callable[..., Conversion]) -> Callable[..., Conversion]:
        SOURCES.register(name)(Source(name=name, convert=convert, options=tuple(options), summary=summary,
                                      version=version, find_root=find_root))
        return convert

    return decorator


# --------------------------------------------------------------------------- text files


def format_items(items: Sequence[Any], limit: int = LIST_MAX) -> str:
    """``a, b, c`` or ``a, b, c, ... (+7 more)`` for a one-line message."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def read_lines(path: Path, *, comment: str | None = None,
               problems: Problems | None = None) -> list[tuple[int, str]] | None:
    """Non-blank lines ``(lineno, text)`` of a text file (UTF-8, any newline).

    A missing or unreadable file raises ManifestError, or, with ``problems``, is
    added there and the result is None (the caller then checks nothing against it).
    """
    def fail(message: str) -> None:
        if problems is None:
            raise ManifestError(f"{path} {message}" if message.startswith(("does", "cannot")) else f"{path}: {message}")
        problems.add(message, file=path)

    if not path.is_file():
        fail("does not exist")
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        fail(f"cannot be read: {exc.strerror}")
        return None
    except UnicodeDecodeError:
        fail("not UTF-8 text")
        return None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or (comment is not None and stripped.startswith(comment)):
            continue
        out.append((lineno, stripped))
    return out


def read_table(path: Path, columns: Sequence[str], *, comment: str | None = None, extra: bool = False,
               problems: Problems | None = None) -> list[tuple[int, list[str]]] | None:
    """Whitespace-separated rows with at least (``extra``) or exactly ``len(columns)`` fields.

    Without ``problems`` the first bad line raises ManifestError; with it, each
    bad line is added there and skipped (None: the file itself cannot be read).
    """
    lines = read_lines(path, comment=comment, problems=problems)
    if lines is None:
        return None
    rows = []
    for lineno, line in lines:
        fields = line.split()
        if len(fields) < len(columns) or (not extra and len(fields) > len(columns)):
            message = f"expected {' '.join(columns)}, got {line!r}"
            if problems is None:
                raise ManifestError(f"{path} line {lineno}: {message}")
            problems.add(message, file=path, line=lineno)
            continue
        rows.append((lineno, fields))
    return rows


def to_number(text: str, what: str, *, integer: bool = False) -> float:
    """``text`` as a finite number (an integer with ``integer``); ValueError with a message naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if integer and (not np.isfinite(value) or not value.is_integer()):
        raise ValueError(f"{what} {text!r} is not an integer")
    if not np.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


@dataclass(frozen=True)
class VocObject:
    name: str
    box: Box  # (xmin, ymin, xmax, ymax) exactly as written in the file
    difficult: bool


def _parse_voc_xml(path: Path) -> tuple[tuple[int, int] | None, list[VocObject]]:
    """The reader behind :func:`read_voc_xml`; ValueError with the reason (no path) when unusable."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"invalid XML: {exc}") from None
    node = tree.getroot()
    size = None
    size_node = node.find("size")
    if size_node is not None:
        try:
            width = int(float(size_node.findtext("width", "")))
            height = int(float(size_node.findtext("height", "")))
        except ValueError:
            raise ValueError("<size> must hold numeric <width> and <height>") from None
        size = (width, height) if width > 0 and height > 0 else None
    objects = []
    for index, obj in enumerate(node.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        box_node = obj.find("bndbox")
        if not name or box_node is None:
            raise ValueError(f"object {index} lacks <name> or <bndbox>")
        try:
            box = tuple(float(box_node.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ValueError(f"object {index} ({name}) has a non-numeric <bndbox>") from None
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(VocObject(name=name, box=box, difficult=difficult))  # type: ignore[arg-type]
    return size, objects


def read_voc_xml(path: Path, *, problems: Problems | None = None,
                 image: str | None = None) -> tuple[tuple[int, int] | None, list[VocObject]] | None:
    """``((width, height) or None, objects)`` of a PASCAL-VOC-style XML file (VOC, ILSVRC boxes).

    An unusable file raises ManifestError naming it, or, with ``problems``, is
    added there (with ``image``) and the result is None.
    """
    try:
        return _parse_voc_xml(path)
    except ValueError as exc:
        if problems is None:
            sep = " " if str(exc) == "does not exist" else ": "
            raise ManifestError(f"{path}{sep}{exc}") from None
        problems.add(str(exc), file=path, image=image)
        return None


# --------------------------------------------------------------------------- boxes and masks


def foreground_box(foreground: np.ndarray) -> Box | None:
    """Tight inclusive box ``(x0, y0, x1, y1)`` of the non-zero pixels (x1 = last column), None if empty."""
    rows = np.flatnonzero(foreground.any(axis=1))
    cols = np.flatnonzero(foreground.any(axis=0))
    if rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG (folders created); OutputError names the file."""
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise OutputError(f"cannot encode {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageInfo:
    """What the header (or a full decode) of one image file says; ``error`` set when unusable."""

    path: Path
    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    error: str | None = None


def _probe(path: Path, decode: bool) -> ImageInfo:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            fmt, mode = image.format or "", image.mode
            if decode:
                image.convert("RGB").load()
    except FileNotFoundError:
        return ImageInfo(path, error="does not exist")
    except Exception as exc:  # Pillow raises many types for a corrupt file
        return ImageInfo(path, error=f"cannot be decoded ({type(exc).__name__}: {exc})")
    if width <= 0 or height <= 0:
        return ImageInfo(path, error=f"has size {width}x{height}")
    return ImageInfo(path, width=width, height=height, format=fmt, mode=mode)


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], *, jobs: int, chunk: int = 2048) -> Iterator[Any]:
    """``fn`` over ``items`` in ``jobs`` threads, results in order, at most ``chunk`` in flight.

    Threads suit file reading and decoding (OpenCV and Pillow release the GIL);
    the chunking keeps memory flat for a million files.
    """
    if jobs <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for start in range(0, len(items), chunk):
            yield from pool.map(fn, items[start:start + chunk])


def probe_images(paths: Sequence[Path], *, jobs: int, progress: Progress | None = None,
                 what: str = "reading image headers", decode: bool = False) -> list[ImageInfo]:
    """Size, format and mode of each image, in order, read by ``jobs`` threads.

    Only the header is read (Pillow opens lazily: milliseconds per file) unless
    ``decode``, which decodes and converts to RGB to find corrupt files.
    """
    progress = progress or NullProgress()
    out: list[ImageInfo] = []
    with progress.phase(what, len(paths)) as advance:
        for info in parallel_map(lambda p: _probe(p, decode), paths, jobs=jobs):
            out.append(info)
            advance(1)
    return out


def usable_sizes(infos: Sequence[ImageInfo], ids: Sequence[str], problems: Problems, *,
                 listed: Path | None = None, lines: Sequence[int | None] | None = None) -> dict[str, tuple[int, int]]:
    """``{id: (w, h)}`` of the usable images; each unusable one (missing, corrupt) is a problem.

    ``listed`` (with ``lines``) is the annotation file that lists the images, so
    a problem points at the line to fix; without it the problem names the image file.
    """
    sizes = {}
    for k, (info, image_id) in enumerate(zip(infos, ids)):
        if info.error is None:
            sizes[image_id] = (info.width, info.height)
        elif listed is not None:
            problems.add(f"image file {info.path} {info.error}", file=listed,
                         line=None if lines is None else lines[k], image=image_id)
        else:
            problems.add(f"image file {info.error}", file=info.path, image=image_id)
    return sizes


def check_mask_file(path: Path, size: tuple[int, int], read: Callable[[Path], np.ndarray], *, what: str = "mask",
                    image: str | None = None) -> Problem | None:
    """The problem of one mask file (missing, unreadable, not the image's ``(w, h)``), or None."""
    if not path.is_file():
        return Problem(f"{what} does not exist", file=str(path), image=image)
    try:
        values = read(path)
    except DataError as exc:
        return Problem(str(exc), image=image)
    if values.shape[:2] != (size[1], size[0]):
        return Problem(f"{what} is {values.shape[1]}x{values.shape[0]}, the image {size[0]}x{size[1]}",
                       file=str(path), image=image)
    return None


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted by name."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise ManifestError(f"{folder} cannot be listed: {exc.strerror}") from None
    return sorted((Path(e.path) for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)),
                  key=lambda p: p.name)


def default_jobs() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# --------------------------------------------------------------------------- splits


def holdout(groups: Mapping[Any, Sequence[str]], per_group: int, seed: int, *, names: Sequence[str] = (),
            what: str = "train") -> set[str]:
    """A seeded hold-out: ``per_group`` keys of each group, chosen at random.

    Deterministic given ``seed`` and the keys: each group is sorted, then permuted by
    a generator seeded with ``(seed, crc32(group))``, so adding a group or changing
    another group's members leaves this group's choice unchanged. A group that
    would be left with no key raises ConfigError (``names[group]`` names it).
    """
    from wsolbench.errors import ConfigError

    if per_group < 1:
        raise ConfigError(f"--val-per-class must be >= 1, got {per_group}")
    small = [g for g in groups if len(groups[g]) <= per_group]
    if small:
        label = [names[g] if isinstance(g, int) and g < len(names) else str(g) for g in sorted(small, key=str)]
        fewest = min(len(groups[g]) for g in small)
        raise ConfigError(f"--val-per-class {per_group} would take every {what} image of {len(small)} class(es) "
                          f"({format_items(label)}; the smallest has {fewest}); choose a smaller value")
    chosen: set[str] = set()
    for group in sorted(groups, key=str):
        keys = sorted(groups[group])
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(str(group).encode()),)))
        chosen.update(keys[i] for i in rng.permutation(len(keys))[:per_group])
    return chosen


def holdout_count(keys: Sequence[str], count: int, seed: int) -> set[str]:
    """A seeded hold-out of ``count`` keys of one pool (sorted first, so the input order does not matter)."""
    keys = sorted(keys)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    return {keys[i] for i in rng.permutation(len(keys))[:count]}


def common_root(paths: Iterable[str]) -> Path:
    """The deepest folder that holds every path (absolute POSIX strings)."""
    folders = {os.path.dirname(p) for p in paths}
    if not folders:
        raise ManifestError("the conversion produced no image at all")
    return Path(os.path.commonpath(sorted(folders)))


def relative(path: str, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()

