"""The accumulator base: declared, mergeable state, and per-image outcomes.

An accumulator declares its state once, as a class attribute mapping each
attribute to how it starts and how it merges:

* :class:`Summed`: an int, float or numpy array, added on merge (counts,
  histograms);
* :class:`ExactSum`: a float sum kept exactly, as the non-overlapping partials
  of Shewchuk's algorithm (what ``math.fsum`` uses), so the sum, and any mean
  of it, is the correctly rounded sum of every value whatever the batching,
  the order or the merges;
* :class:`PerImage`: per-image outcomes (``per_image=True`` only), a list of
  per-batch chunks (or of ids) in update order, concatenated on merge;
* :class:`Agreed`: a value unknown (None) until the first batch fixes it, which
  merged accumulators must agree on (e.g. whether top-1 outcomes were given).

Attributes named in ``config`` (thresholds, number of classes, ``per_image``)
must be equal to merge. :meth:`Accumulator.reset` and :meth:`Accumulator.merge`
are generic; subclasses write ``update``, ``compute`` and ``outcomes`` only.
Merging validates everything before changing anything, so a refused merge
leaves both accumulators as they were.

:class:`Outcomes` is the base of the frozen per-image outcome records the
accumulators return (one row per image, in update order).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from wsolbench.errors import MetricInputError


@dataclass(frozen=True)
class Summed:
    """State added on merge; ``zero(accumulator)`` makes its empty value (0, 0.0, or zeros of a shape)."""

    zero: Callable[[Any], Any]

    def fresh(self, owner: Any) -> Any:
        return self.zero(owner)


@dataclass(frozen=True)
class ExactSum:
    """A float sum kept exactly as a list of non-overlapping partials; read it with :func:`exact_value`."""

    def fresh(self, owner: Any) -> list[float]:
        return []


@dataclass(frozen=True)
class PerImage:
    """Per-image outcomes: a list (of per-batch arrays, or of ids), concatenated on merge."""

    def fresh(self, owner: Any) -> list:
        return []


@dataclass(frozen=True)
class Agreed:
    """None until set; two accumulators merge only if they agree. ``error`` is the merge error's message."""

    error: str

    def fresh(self, owner: Any) -> None:
        return None


StateSpec = Summed | ExactSum | PerImage | Agreed


def exact_add(partials: list[float], values: Iterable[float]) -> None:
    """Add ``values`` to the exact sum ``partials``, in place (Shewchuk's grow-expansion, finite floats)."""
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]


def exact_value(partials: Sequence[float]) -> float:
    """The correctly rounded value of an exact sum (0.0 when empty)."""
    return math.fsum(partials)


def _differs(a: Any, b: Any) -> str | None:
    """None when equal, else a short account of the difference (for merge errors)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return f"{a.size} vs {b.size} values"
        unequal = a != b
        if not unequal.any():
            return None
        i = int(np.argmax(unequal.reshape(-1)))
        return f"first difference at index {i}: {a.reshape(-1)[i]:g} vs {b.reshape(-1)[i]:g}"
    return None if a == b else f"{a!r} vs {b!r}"


class Accumulator:
    """Base of the metric accumulators: ``update`` / ``merge`` / ``compute`` / ``reset`` / ``outcomes``.

    Class attributes (set by each subclass):
        label: plural name used in merge errors, e.g. "box accumulators".
        config: attribute -> phrase; attributes that must be equal to merge.
            ``per_image`` is always one of them.
        state: attribute -> :class:`Summed` / :class:`ExactSum` / :class:`PerImage`
            / :class:`Agreed`; every attribute :meth:`reset` sets and :meth:`merge` combines.

    Subclasses set their config attributes and ``self.per_image`` in ``__init__``,
    then call :meth:`reset`.
    """

    label: ClassVar[str] = "accumulators"
    config: ClassVar[dict[str, str]] = {}
    state: ClassVar[dict[str, StateSpec]] = {}

    per_image: bool

    def reset(self) -> None:
        """Forget every image (and every per-image outcome)."""
        for name, spec in self.state.items():
            setattr(self, name, spec.fresh(self))

    def _check_mergeable(self, other: Accumulator) -> None:
        if not isinstance(other, type(self)):
            raise ValueError(f"cannot merge a {type(self).__name__} with {type(other).__name__}")
        if other is self:
            raise ValueError(f"cannot merge a {type(self).__name__} with itself")
        for name, phrase in {**self.config, "per_image": "per_image settings"}.items():
            why = _differs(getattr(self, name), getattr(other, name))
            if why is not None:
                raise ValueError(f"cannot merge {self.label} with different {phrase} ({why})")
        for name, spec in self.state.items():
            if isinstance(spec, Agreed):
                mine, theirs = getattr(self, name), getattr(other, name)
                if mine is not None and theirs is not None and mine != theirs:
                    raise ValueError(spec.error)

    def merge(self, other: Accumulator) -> Accumulator:
        """Add the state of ``other`` (same config) to this one; returns self.

        Per-image outcomes of ``other`` come after this one's.
        """
        self._check_mergeable(other)
        for name, spec in self.state.items():
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(spec, Summed):
                setattr(self, name, mine + theirs)
            elif isinstance(spec, ExactSum):
                exact_add(mine, theirs)
            elif isinstance(spec, PerImage):
                setattr(self, name, mine + theirs)
            elif theirs is not None:
                setattr(self, name, theirs)
        return self

    def _require_per_image(self) -> None:
        if not self.per_image:
            raise MetricInputError(
                f"per-image outcomes were not kept: create the {type(self).__name__} with per_image=True"
            )


def concat(chunks: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    """Per-batch chunks joined along the first axis; ``empty`` when there are none."""
    return np.concatenate(chunks) if chunks else empty


def frozen(array: Any, dtype: Any = None) -> np.ndarray:
    """A read-only numpy copy."""
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Base of the per-image outcome records: frozen, numpy arrays, one row per image in update order.

    Class attributes (set by each subclass):
        kind: the name of the record kind, the prefix of its keys in
            :func:`wsolbench.metrics.outcomes.to_arrays`.
        rows: the per-image fields (first axis ``N``), ``image_ids`` first; the
            others describe the whole record (thresholds, ...).
        optional: the row fields that may be None (absent).
    """

    kind: ClassVar[str] = ""
    rows: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        n = len(self.image_ids)  # type: ignore[attr-defined]
        for name in self.rows:
            value = getattr(self, name)
            if value is None:
                if name not in self.optional:
                    raise MetricInputError(f"{self.kind} outcomes: {name} is missing")
                continue
            value = frozen(value, dtype=str if name == "image_ids" else None)
            if value.ndim == 0 or value.shape[0] != n:
                raise MetricInputError(
                    f"{self.kind} outcomes: {name} has shape {value.shape}, expected {n} rows like image_ids"
                )
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        """Subclass checks of shapes against the record's config (raise MetricInputError)."""

    def __len__(self) -> int:
        return len(self.image_ids)  # type: ignore[attr-defined]

    def select(self, index: Any) -> Outcomes:
        """The outcomes of a subset of images, as a fresh accumulator fed only them would keep.

        Args:
            index: int positions (repeats allowed, e.g. a bootstrap resample)
                or a bool mask ``(N,)``.
        """
        index = np.asarray(index)
        if index.dtype == np.bool_:
            if index.shape != (len(self),):
                raise MetricInputError(f"a bool subset must have shape ({len(self)},), got {index.shape}")
        elif index.size == 0:
            index = index.astype(np.int64)
        elif not np.issubdtype(index.dtype, np.integer):
            raise MetricInputError(f"a subset is int positions or a bool mask, got dtype {index.dtype}")
        changes = {name: None if getattr(self, name) is None else getattr(self, name)[index] for name in self.rows}
        return dataclasses.replace(self, **changes)
