"""Grid files and grid flags: where a grid's axes come from, checked at the edge with one-line errors.

A grid file is YAML (or JSON)::

    preset: smoke                 # optional starting configuration
    set:                          # optional: dotted keys -> one value each (as --set)
      optim.epochs: 2
      objective.lam: 1.0          # a class parameter goes to each class of the grid that has it
    axes:                         # dotted keys -> lists of values, crossed
      method.name: [cam, adl]
      objective.name: [ce, kl_uniform]
      objective.lam: [0.01, 0.1, 1]
      seed: [0, 1, 2]

A ``set:`` entry is an axis of one value. Flags give the same axes
(``--method a,b``, ``--objective``, ``--cam``, ``--backbone``, ``--seeds 0,1,2``,
``--set KEY=v1,v2``): a comma list in ``--set`` is an axis, a repeated flag adds
values, YAML list syntax (``--set key=[a,b]``) stays one value. For an axis given
both by the file and by flags, the flags win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsolbench.bench.grid import GridAxisError, canonical_key, expand_grid
from wsolbench.config import RunConfig, read_config_file
from wsolbench.errors import ConfigError

GRID_KEYS = ("preset", "set", "axes")


@dataclass(frozen=True)
class GridFile:
    """A parsed grid file: its path, its preset (or None) and its axes (``set:`` entries as one-value axes)."""

    path: Path
    preset: str | None = None
    axes: dict[str, list[Any]] = field(default_factory=dict)


def read_grid_file(path: Path) -> GridFile:
    """Read and check a grid file; ConfigError ``grid file PATH: ...`` naming the key on any problem."""
    path = Path(path)
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config file", "grid file", 1)) from None
    where = f"grid file {path}"
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(GRID_KEYS)})")
    preset = data.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{where}: preset must be a preset name, got {preset!r}")
    axes: dict[str, list[Any]] = {}
    for section in ("set", "axes"):
        entries = data.get(section) or {}
        if not isinstance(entries, Mapping):
            raise ConfigError(f"{where}: {section} must map dotted config keys to values, got {entries!r}")
        for key, value in entries.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"{where}: {section} key {key!r} is not a dotted config key")
            if section == "axes" and (not isinstance(value, list) or not value):
                raise ConfigError(f"{where}: axes.{key} must be a non-empty list of values, got {value!r}")
            axes[canonical_key(key)] = list(value) if section == "axes" else [value]
    return GridFile(path=path, preset=preset, axes=axes)


def split_values(raw: str) -> list[str]:
    """``"0.1,1,[a,b]"`` -> ``["0.1", "1", "[a,b]"]``: split at commas outside brackets, braces and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
    parts.append(raw[start:])
    return parts


def _value(text: str) -> Any:
    import yaml

    if not text.strip():
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def axes_from_sets(items: Iterable[str]) -> dict[str, list[Any]]:
    """``--set`` items as axes: ``key=v1,v2`` is an axis of two values, a repeated key adds its values."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        axes.setdefault(canonical_key(key), []).extend(_value(part) for part in split_values(raw))
    return axes


def axes_from_lists(**flags: Sequence[Any] | None) -> dict[str, list[Any]]:
    """Flag axes by config key: ``axes_from_lists(**{"seed": [0, 1]})``; empty or None flags give none."""
    return {canonical_key(key): list(values) for key, values in flags.items() if values}


def grid_configs(base: RunConfig, *, grid: GridFile | None, flag_axes: Mapping[str, Sequence[Any]],
                 default_axes: Mapping[str, Sequence[Any]] | None = None) -> list[RunConfig]:
    """The runs of ``base`` x (default axes <- the grid file's axes <- flag axes, later winning per key).

    An error attributable to an axis of the grid file names the file.
    """
    axes: dict[str, list[Any]] = {}
    for layer in (default_axes or {}, grid.axes if grid else {}, flag_axes):
        axes.update({canonical_key(key): list(values) for key, values in layer.items()})
    try:
        return expand_grid(base, axes)
    except GridAxisError as exc:
        from_file = grid is not None and exc.key is not None and exc.key in grid.axes and exc.key not in flag_axes
        if from_file:
            raise ConfigError(f"grid file {grid.path}: {exc}") from None  # type: ignore[union-attr]
        raise
