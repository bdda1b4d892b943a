"""The versioned run record: one JSON file per run, the only input of leaderboards.

A record holds its schema version, the resolved config and its hash, the
manifest's name and hash, the code version (package version, git sha, dirty
flag), library versions, device, per-epoch history, val and test metrics with
their whole curves, the model-selection choices (checkpoint, CAM threshold, the
CAM extractor and the other evaluation conventions), and timings. It is written
atomically and never silently overwritten. Beside it, ``outcomes-<split>.npz``
holds the split's per-image outcomes (:mod:`wsolbench.metrics.outcomes` documents
the arrays), from which any subset's GT-known Loc, Top-1 Loc, MaxBoxAcc(V2) and
PxAP can be recomputed. Torch-free: leaderboards rebuild without a GPU stack.

Schema version 2 (this one): ``method`` and ``objective`` are sections with a name
and that class's parameters; the summary carries ``method``, ``objective``,
``backbone`` and ``cam``; per-image outcomes beside the record.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import io
import json
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wsolbench import __version__
import numpy as np

from wsolbench._io import atomic_write_bytes, atomic_write_text
from wsolbench.errors import DataError, OutputError

SCHEMA_VERSION = 2
RECORD_KIND = "wsolbench-run"
RECORD_FILE = "record.json"
PARTIAL_RECORD_FILE = "record.partial.json"  # a failed run's record: its history and one-line error
GALLERY_FILE = "gallery-test.npz"  # score maps of a few test images, for reports

_LIBRARIES = ("torch", "torchvision", "torchcam", "numpy", "opencv-python-headless", "pandas", "scikit-learn")


def code_version() -> dict[str, Any]:
    """The package version and, when run from a git checkout, its sha and whether it is dirty."""
    here = Path(__file__).resolve().parent.parent
    version: dict[str, Any] = {"wsolbench": __version__, "git_sha": None, "dirty": None}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=5, check=True).stdout
        version.update(git_sha=sha, dirty=bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def code_version_label(version: dict[str, Any]) -> str:
    """``0.1.0+g1a2b3c4`` (``.dirty`` appended when the tree had changes)."""
    label = str(version.get("wsolbench"))
    if version.get("git_sha"):
        label += f"+g{version['git_sha'][:7]}"
        if version.get("dirty"):
            label += ".dirty"
    return label


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_record(**fields: Any) -> dict[str, Any]:
    """A record dict with the schema header first, then ``fields``."""
    return {"schema_version": SCHEMA_VERSION, "kind": RECORD_KIND, "created": now_iso(), **fields}


def write_record(path: Path, record: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Write ``record`` atomically; an existing record is replaced only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"run record {path} already exists (pass --rerun to replace it)")
    return atomic_write_text(path, json.dumps(record, indent=1, sort_keys=False, allow_nan=False) + "\n")


def load_record(path: Path) -> dict[str, Any]:
    """Read and check one record; DataError names the file on any problem."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"run record {path} cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"run record {path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
        raise DataError(f"run record {path}: not a wsolbench run record")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"run record {path}: schema version {record.get('schema_version')!r}, "
                        f"this wsolbench reads {SCHEMA_VERSION}")
    for key in ("name", "config", "config_hash", "summary"):
        if key not in record:
            raise DataError(f"run record {path}: missing key {key!r}")
    return record


def find_records(root: Path) -> list[Path]:
    """Every ``record.json`` under ``root``, sorted."""
    return sorted(Path(root).rglob(RECORD_FILE))


def failed_runs(root: Path) -> list[tuple[str, Path, str]]:
    """``(run name, folder, one-line error)`` of every failed run under ``root`` (a ``record.partial.json``
    with no ``record.json`` beside it); an unreadable partial record says so as its error."""
    out = []
    for path in sorted(Path(root).rglob(PARTIAL_RECORD_FILE)):
        if (path.parent / RECORD_FILE).exists():
            continue
        try:
            partial = json.loads(path.read_text())
            out.append((str(partial.get("name", path.parent.name)), path.parent, str(partial.get("error", "?"))))
        except (OSError, ValueError) as exc:
            out.append((path.parent.name, path.parent, f"unreadable {path.name}: {exc}"))
    return out


def load_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [load_record(p) for p in paths]


def outcomes_path(run_dir: Path, split: str) -> Path:
    return Path(run_dir) / f"outcomes-{split}.npz"


def _write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def write_outcomes(run_dir: Path, split: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write one split's per-image outcome arrays (``np.savez_compressed``) atomically beside the record."""
    return _write_arrays(outcomes_path(run_dir, split), arrays)


def write_gallery(run_dir: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the test gallery (arrays of :mod:`wsolbench.engine.gallery`) atomically beside the record."""
    return _write_arrays(Path(run_dir) / GALLERY_FILE, arrays)


def load_gallery(run_dir: Path) -> list[dict[str, Any]]:
    """The kept test images of a run, one dict each: image_id, role (sample / best / worst), label,
    predicted, map (R, R) float32 in [0, 1] (8-bit levels), image (R, R, 3) uint8 RGB, boxes (b, 4) at
    R x R, and mask / ignore (R, R) bool when the split has masks. DataError when the file is missing."""
    import cv2

    path = Path(run_dir) / GALLERY_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DataError(f"gallery {path} does not exist (the run kept no score maps: eval.gallery = 0, "
                        "or it was made before galleries existed)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"gallery {path} cannot be read: {exc}") from None
    res = int(arrays["resolution"])
    out = []
    for i, image_id in enumerate(arrays["image_ids"]):
        lo, hi = arrays["image_offsets"][i], arrays["image_offsets"][i + 1]
        b0, b1 = arrays["box_offsets"][i], arrays["box_offsets"][i + 1]
        item = {"image_id": str(image_id), "role": str(arrays["role"][i]), "label": int(arrays["label"][i]),
                "predicted": int(arrays["predicted"][i]), "map": arrays["maps"][i].astype(np.float32) / 255.0,
                "image": cv2.cvtColor(cv2.imdecode(arrays["images"][lo:hi], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
                "boxes": arrays["boxes"][b0:b1], "threshold": float(arrays["threshold"])}
        for key, name in (("masks", "mask"), ("mask_ignore", "ignore")):
            if key in arrays:
                item[name] = np.unpackbits(arrays[key][i])[: res * res].reshape(res, res).astype(bool)
        out.append(item)
    return out


def load_outcomes(run_dir: Path, split: str) -> dict[str, np.ndarray]:
    """The per-image outcome arrays of ``split``; DataError names the file when it is missing or unreadable."""
    path = outcomes_path(run_dir, split)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DataError(f"per-image outcomes {path} do not exist (runs made before schema version 2 have none)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"per-image outcomes {path} cannot be read: {exc}") from None
