"""Readers and converters of real dataset layouts, one module per layout, and their registry.

``SOURCES`` maps a dataset name to its converter (:class:`~.common.Source`):

========================  =========================================================
``cub``                   CUB-200-2011 (+ CUBV2 val, + segmentations)  ``cub.py``
``imagenet``              ILSVRC 2012 (+ ImageNetV2 val)               ``imagenet.py``
``openimages``            OpenImages30k (community metadata + masks)   ``openimages.py``
``voc``                   PASCAL VOC 2012 segmentation (multi-label)   ``voc.py``
``pet``                   Oxford-IIIT Pet (trimaps)                     ``pet.py``
``wsolevaluation``        any split folders of the community metadata  ``metadata.py``
========================  =========================================================

:func:`prepare` runs one converter and writes its manifest (what ``wsolbench data
prepare`` calls); :func:`prepare_source` does it once per (dataset, root, options)
under a data folder and reuses the result (what a run with ``data.dataset: cub``
calls). A converter collects every problem of the raw data in one pass
(:mod:`.problems`); when there is any, :class:`DataProblems` (exit code 2) lists
them all and no manifest is written. ``data_manifests/<name>.md`` documents
each dataset: source, layout, counts, split roles, licence.

Torch-free: each module needs only numpy, OpenCV, Pillow and the standard
library, so evaluation of saved score maps (``wsolbench evaluate-cams``) runs
without a GPU stack. ``wsolbench.data.sources.wsolevaluation`` is the reader of
the community's plain-text metadata that several converters build on.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from wsolbench.data.sources.common import (
    DERIVED_DIR,
    ROOT_OPTION,
    SOURCES,
    Conversion,
    RootLayoutError,
    Source,
    SourceOption,
    common_root,
    default_jobs,
    register_source,
    relative,
)
from wsolbench.data.sources.problems import DataProblems, Problem, Problems
from wsolbench.errors import ConfigError, DataError, ManifestError, OutputError
from wsolbench.manifest import MANIFEST_FILE, Manifest, Sample, load_manifest, write_manifest
from wsolbench.progress import NullProgress, Progress

# Importing the converter modules registers them.
from wsolbench.data.sources import cub, imagenet, metadata, openimages, pet, voc  # noqa: E402,F401  isort: skip

__all__ = ["SOURCES", "Conversion", "DataProblems", "Problem", "Problems", "RootLayoutError", "Source", "SourceOption",
           "register_source", "prepare", "prepare_source", "check_source_root", "split_summary", "class_counts"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _source_key(source: Source, root: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    return {"dataset": source.name, "version": source.version, "root": str(root),
            "options": _jsonable(dict(sorted(options.items())))}


def _check_out(out: Path) -> None:
    """``out`` must be new, empty or an earlier manifest folder: never write into someone's files."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise ConfigError(f"--out {out} is not empty and holds no {MANIFEST_FILE}; choose a new or empty folder "
                          "for the manifest")


def prepare(dataset: str, *, root: str | Path, out: str | Path, options: Mapping[str, Any] | None = None,
            progress: Progress | None = None, jobs: int | None = None, root_option: str = ROOT_OPTION) -> Manifest:
    """Convert the raw dataset under ``root`` with converter ``dataset``; write the manifest to ``out``.

    ``options`` are the converter's own (``SOURCES.get(dataset).options``), by
    keyword name; unset ones take their defaults. The manifest's ``info`` records
    the source, its options and what the converter chose (e.g. how val was made).
    Files are written atomically (``write_manifest``); derived masks first, the
    manifest last. Returns the loaded manifest.

    The converter checks every file in one pass (:mod:`.problems`): when it found
    any problem, :class:`~.problems.DataProblems` lists them all and nothing is
    written (``out`` keeps an earlier manifest and its derived masks as they were).

    ``root_option``: the option ``root`` came from, named in the errors about it (``--root`` for ``data
    prepare``, ``--data-root`` for a run's ``data.root``).
    """
    source = SOURCES.get(dataset)
    opts = source.resolve_options(options)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise _not_a_folder(root_option, root, dataset)
    out = Path(out).expanduser().absolute()
    _check_out(out)
    progress = progress or NullProgress()
    problems = Problems()
    with _derived_masks_replaced(out):
        try:
            conversion = source.convert(root, out, progress=progress, jobs=jobs or default_jobs(),
                                        problems=problems, **opts)
        except RootLayoutError as exc:
            raise exc.from_option(root_option) from None
        except (ConfigError, ManifestError, DataError) as exc:
            if not problems or isinstance(exc, DataProblems):
                raise
            problems.add_error(exc)  # a fault that stopped the pass: reported after those found before it
        problems.raise_if_any(f"the {dataset} dataset under {root}")
        info = {"source": _source_key(source, root, opts), **_jsonable(dict(conversion.info)),
                "counts": {split: len(samples) for split, samples in conversion.splits.items()}}
        return write_conversion(conversion, out, info=info)


@contextlib.contextmanager
def _derived_masks_replaced(out: Path) -> Iterator[None]:
    """Masks an earlier conversion derived into ``out`` are set aside while converting: dropped when the
    new manifest is written, put back (and the new ones removed) when the conversion fails."""
    derived = out / DERIVED_DIR
    kept = out / f".{DERIVED_DIR}.previous"
    existed = out.exists()
    if kept.is_dir():  # left by a process that was killed while converting
        if derived.is_dir():
            shutil.rmtree(derived)
        kept.rename(derived)
    if derived.is_dir() and (out / MANIFEST_FILE).is_file():
        derived.rename(kept)
    try:
        yield
    except BaseException:
        shutil.rmtree(derived, ignore_errors=True)  # only this conversion's: the earlier ones are in `kept`
        if kept.is_dir():
            kept.rename(derived)
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave no trace of a conversion that wrote nothing
        raise
    else:
        shutil.rmtree(kept, ignore_errors=True)


def write_conversion(conversion: Conversion, out: Path, *, info: Mapping[str, Any]) -> Manifest:
    """Make the conversion's absolute paths relative (root = deepest common folder) and write it."""
    samples = [s for split in conversion.splits.values() for s in split]
    raw = [s.path for s in samples]
    if not conversion.derived_masks:
        raw += [p for s in samples for p in (s.mask, s.ignore) if p is not None]
    root = common_root(raw)
    mask_base = out if conversion.derived_masks else root

    def rel(sample: Sample) -> Sample:
        return Sample(image_id=sample.image_id, path=relative(sample.path, root), label=sample.label,
                      width=sample.width, height=sample.height, boxes=sample.boxes,
                      mask=None if sample.mask is None else relative(sample.mask, mask_base),
                      ignore=None if sample.ignore is None else relative(sample.ignore, mask_base),
                      labels=sample.labels, mask_kind=sample.mask_kind)

    splits = {split: [rel(s) for s in items] for split, items in conversion.splits.items()}
    write_manifest(out, name=conversion.name, root=root, classes=conversion.classes, splits=splits,
                   mask_root="." if conversion.derived_masks else None, info=info)
    return load_manifest(out)


def prepare_source(dataset: str, *, root: str | Path, data_dir: str | Path,
                   options: Mapping[str, Any] | None = None, progress: Progress | None = None,
                   root_option: str = "--data-root") -> Path:
    """The manifest folder of ``dataset`` under ``data_dir``: converted once, then reused.

    The folder is ``<data_dir>/<dataset>-<hash>``, the hash of (dataset, converter
    version, resolved root, options). A folder whose manifest records exactly that
    source is reused as is; anything else is converted again. Raw files edited
    after a conversion are not noticed: run ``wsolbench data prepare`` (or delete
    the folder) to redo it. ``root_option``: as in :func:`prepare` (a run's root is its ``data.root``,
    ``--data-root`` on the command line).
    """
    out, reusable, opts = _converted(dataset, root=root, data_dir=data_dir, options=options)
    if reusable:
        return out
    root_path = Path(root).expanduser().resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out.parent}: {exc.strerror}") from None
    prepare(dataset, root=root_path, out=out, options=opts, progress=progress, root_option=root_option)
    return out


def _converted(dataset: str, *, root: str | Path, data_dir: str | Path,
               options: Mapping[str, Any] | None) -> tuple[Path, bool, dict[str, Any]]:
    """``(folder, reusable, resolved options)``: where :func:`prepare_source` keeps the conversion of ``root``
    under ``data_dir``, and whether a manifest there records exactly that source."""
    from wsolbench.config import stable_hash

    source = SOURCES.get(dataset)
    opts = source.resolve_options(options)
    key = _source_key(source, Path(root).expanduser().resolve(), opts)
    out = Path(data_dir) / f"{dataset}-{stable_hash(key, 8)}"
    if (out / MANIFEST_FILE).is_file():
        try:
            return out, dict(load_manifest(out).info).get("source") == json.loads(json.dumps(key)), opts
        except ManifestError:
            pass
    return out, False, opts


def check_source_root(dataset: str, *, root: str | Path, data_dir: str | Path,
                      options: Mapping[str, Any] | None = None, root_option: str = "--data-root") -> None:
    """What :func:`prepare_source` would refuse first, found before anything is written, unless an earlier
    conversion of ``root`` under ``data_dir`` can be reused: ConfigError when ``root`` is not a folder,
    RootLayoutError (naming ``root_option``) when it is not laid out as the converter reads it."""
    if _converted(dataset, root=root, data_dir=data_dir, options=options)[1]:
        return
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise _not_a_folder(root_option, folder, dataset)
    find_root = SOURCES.get(dataset).find_root
    if find_root is not None:
        try:
            find_root(folder)
        except RootLayoutError as exc:
            raise exc.from_option(root_option) from None


def _not_a_folder(root_option: str, root: Path, dataset: str) -> ConfigError:
    return ConfigError(f"{root_option} {root} is not a folder (the raw {dataset} dataset, as its publisher ships it)")


# --------------------------------------------------------------------------- summaries


def class_counts(manifest: Manifest) -> dict[str, list[int]]:
    """Images per class, per split: ``{split: [n_class_0, n_class_1, ...]}`` (by ``label``)."""
    out = {}
    for split, samples in manifest.splits.items():
        counts = [0] * manifest.num_classes
        for s in samples:
            counts[s.label] += 1
        out[split] = counts
    return out


def split_summary(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per split: images, classes present, images per class (min / median / max),
    images with boxes, with masks, with several labels."""
    rows = []
    for split, counts in class_counts(manifest).items():
        samples = manifest.split(split)
        present = [c for c in counts if c]
        rows.append({
            "split": split,
            "images": len(samples),
            "classes": len(present),
            "per_class_min": min(present, default=0),
            "per_class_median": statistics.median(present) if present else 0,
            "per_class_max": max(present, default=0),
            "boxes": sum(1 for s in samples if s.boxes),
            "masks": sum(1 for s in samples if s.mask),
            "multi_label": sum(1 for s in samples if len(s.label_set) > 1),
        })
    return rows
