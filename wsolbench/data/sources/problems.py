"""Every problem of a raw dataset, collected in one pass and reported together.

A converter does not stop at the first fault of a dataset: it adds each one to
a :class:`Problems` collector (file, line, image id, a one-line message), skips
what the fault makes unusable, and goes on checking every other file.
:func:`wsolbench.data.sources.prepare` raises :class:`DataProblems` after the
pass when anything was collected, and no manifest is written; ``wsolbench data
prepare`` prints each problem (``--max-problems`` caps how many) and exits 2.

A fault that makes further checking impossible (no ``images.txt`` at all: the
image ids are unknown) may still raise at once; ``prepare`` then reports it
after the problems found before it.

Also here, the checks every converter that reads boxes shares
(:class:`BoxCheck`): a box outside its image is a problem reported with the
image size, unless the user asked to clip (``--clip-boxes``), which clips it and
counts it; a box with a negative or zero width or height is a problem either way.

The manifest's box limits are ``[0, width] x [0, height]`` (``data_manifests/FORMAT.md``):
an edge *on* the border (``x1 == width``, the exclusive right edge the community
metadata writes for CUB's ``x + w``) is inside, not a problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wsolbench.errors import DataError, WsolbenchError
from wsolbench.manifest import Box

#: Problems quoted in the one-line error message (``str(DataProblems)``); the CLI prints them all.
QUOTED = 3


@dataclass(frozen=True)
class Problem:
    """One fault of a raw dataset.

    Attributes:
        message: one line saying what is wrong (no location: that is the other fields).
        file: the file the fault is in (an annotation file, or the image or mask itself), if any.
        line: the 1-based line of ``file``, when the fault has one.
        image: the image id (the manifest's id, e.g. CUB's path under ``images/``), when known.
    """

    message: str
    file: str | None = None
    line: int | None = None
    image: str | None = None

    def __str__(self) -> str:
        """``FILE line N: image ID: message`` (parts that are unknown are left out)."""
        parts = []
        if self.file is not None:
            parts.append(self.file + (f" line {self.line}" if self.line is not None else ""))
        if self.image is not None:
            parts.append(f"image {self.image}")
        return ": ".join([*parts, self.message])


class Problems:
    """The collector a converter adds its problems to, in the order it finds them."""

    def __init__(self) -> None:
        self._items: list[Problem] = []

    def add(self, message: str, *, file: str | Path | None = None, line: int | None = None,
            image: str | None = None) -> None:
        self._items.append(Problem(message=message, file=None if file is None else str(file), line=line,
                                   image=image))

    def append(self, problem: Problem) -> None:
        self._items.append(problem)

    def add_error(self, exc: WsolbenchError, *, image: str | None = None) -> None:
        """A library error whose message already names its file (e.g. a mask reader's DataError)."""
        self._items.append(Problem(message=str(exc), image=image))

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(tuple(self._items))

    @property
    def items(self) -> tuple[Problem, ...]:
        return tuple(self._items)

    def raise_if_any(self, what: str) -> None:
        """Raise :class:`DataProblems` about ``what`` (e.g. ``the cub dataset under /raw``) when any was added."""
        if self._items:
            raise DataProblems(self._items, what=what)


class DataProblems(DataError):
    """Every problem a converter found in a raw dataset; no manifest was written (exit code 2).

    A :class:`~wsolbench.errors.DataError` (exit code 2, like every fault of the
    user's data or annotations) that carries the whole list: ``problems``;
    ``summary`` is the count and what was checked; ``str()`` adds the first few,
    for callers that print one line (a run that prepares its dataset).
    """

    def __init__(self, problems: Sequence[Problem], *, what: str) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        self.summary = f"{count} problem{'s' if count != 1 else ''} in {what}; no manifest written"
        shown = "; ".join(str(p) for p in self.problems[:QUOTED])
        rest = f"; and {count - QUOTED} more (wsolbench data prepare lists them all)" if count > QUOTED else ""
        super().__init__(f"{self.summary}: {shown}{rest}")


def format_problems(problems: Sequence[Problem], limit: int | None) -> list[str]:
    """One line per problem, at most ``limit`` (None or 0: all), then ``... and N more`` for the rest."""
    if not limit or len(problems) <= limit:
        return [str(p) for p in problems]
    rest = len(problems) - limit
    return [str(p) for p in problems[:limit]] + [f"... and {rest} more problem{'s' if rest != 1 else ''} "
                                                 "(--max-problems 0 prints all)"]


# --------------------------------------------------------------------------- boxes


def fmt_box(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


class BoxCheck:
    """Checks ``(x0, y0, x1, y1)`` boxes against their image; clips them when asked, and counts.

    ``__call__`` returns the box to keep, or None after adding a problem:

    - a non-finite coordinate, ``x1 < x0`` or ``y1 < y0`` (negative width or
      height) or ``x1 == x0`` / ``y1 == y0`` (zero): a problem, with or without clipping;
    - outside ``[0, width] x [0, height]``: a problem naming the image size, or,
      with ``clip``, the box clipped to the image (``clipped`` counts them);
      a box that clipping would leave empty (entirely outside) stays a problem.

    ``written`` is the box as the source file writes it (CUB's ``x, y, w, h``), for the message.
    """

    def __init__(self, problems: Problems, *, clip: bool) -> None:
        self.problems, self.clip = problems, clip
        self.clipped = 0

    def __call__(self, box: Sequence[float], width: int, height: int, *, file: str | Path | None = None,
                 line: int | None = None, image: str | None = None, written: str | None = None) -> Box | None:
        x0, y0, x1, y1 = (float(v) for v in box)
        shown = written or f"box {fmt_box((x0, y0, x1, y1))}"

        def problem(message: str) -> None:
            self.problems.add(f"{shown} {message}", file=file, line=line, image=image)

        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            problem("has a coordinate that is not a finite number")
            return None
        for name, low, high in (("width", x0, x1), ("height", y0, y1)):
            if high < low:
                problem(f"has a negative {name} ({high - low:g})")
                return None
            if high == low:
                problem(f"has zero {name}")
                return None
        if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
            return (x0, y0, x1, y1)
        if not self.clip:
            problem(f"lies outside the image ({width}x{height}); fix it, or clip it with --clip-boxes")
            return None
        clipped = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            problem(f"lies entirely outside the image ({width}x{height}): clipping leaves nothing")
            return None
        self.clipped += 1
        return clipped
