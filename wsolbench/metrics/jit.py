"""Loading the numba kernels ahead of the first batch, off the main thread.

Every kernel is compiled with ``cache=True``: after the first run on a machine
a new process loads the machine code from numba's cache (``__pycache__`` beside
the module, or numba's user cache when that is read-only) instead of
compiling. Loading still costs a few tenths of a second of Python work the
first time any kernel is used in a process: numba builds its typing and
target contexts, and its linear-algebra support imports ``scipy.linalg`` to
look for BLAS, which none of these kernels use. :func:`start_warm_up` does that
in a background thread, on tiny inputs of the dtype the maps will have, while
the caller reads files; the first real batch then finds the kernels loaded
(numba's dispatcher is thread-safe: a call that arrives while a kernel loads
waits for it).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def _without_scipy_linalg() -> Iterator[None]:
    """Hide ``scipy.linalg`` from numba's one-time BLAS probe, if nothing imported it yet.

    numba then records that it has no BLAS (``np.dot`` and friends would not
    compile in numba code in this process); wsolbench's kernels use none. Only
    for processes wsolbench owns, such as the ``evaluate-cams`` command.
    """
    if "scipy.linalg" in sys.modules:
        yield
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # makes the import fail fast
    try:
        yield
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


def warm_up(*, boxes: bool = True, masks: bool = True, dtype: type = np.float32, skip_blas: bool = False) -> None:
    """Call the box and/or mask kernels once on a 4 x 4 map of ``dtype`` (loading them from numba's cache)."""
    from wsolbench.metrics.fast_boxes import fast_best_ious_checked
    from wsolbench.metrics.masks import fast_score_histograms
    from wsolbench.metrics.protocol import cam_thresholds

    maps = np.linspace(0, 1, 16, dtype=dtype).reshape(1, 4, 4)
    with _without_scipy_linalg() if skip_blas else contextlib.nullcontext():
        if boxes:
            fast_best_ious_checked(maps, [np.array([[0, 0, 1, 1]])], cam_thresholds(0.01))
        if masks:
            fast_score_histograms(maps, np.ones(maps.shape, np.uint8), cam_thresholds(0.01))


def start_warm_up(**kwargs) -> threading.Thread:
    """:func:`warm_up` in a daemon thread (already started); a failure there is left to the real call."""

    def run() -> None:
        with contextlib.suppress(Exception):
            warm_up(**kwargs)

    thread = threading.Thread(target=run, name="wsolbench-jit", daemon=True)
    thread.start()
    return thread
