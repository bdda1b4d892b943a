"""Loading a run config: preset <- YAML/JSON file <- ``--set`` overrides, applied once at the edge."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wsolbench.config.axes import PLUGINS, merge_axis
from wsolbench.config.presets import preset
from wsolbench.config.sections import RunConfig, build_section, to_dict
from wsolbench.errors import ConfigError


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` merged into ``base``, recursively; an axis section (``method``, ``objective``) that names
    another class drops the old class's parameters (:func:`~wsolbench.config.axes.merge_axis`)."""
    out = dict(base)
    for key, value in update.items():
        if key in PLUGINS and key in out:
            out[key] = merge_axis(out[key], value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["optim.lr=0.1", "objective.name=kl_uniform"]`` -> nested dict of strings."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict, with one-line errors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: the top level must be a mapping, got {type(data).__name__}")
    return dict(data)


def load_config(*, preset_name: str | None = "quick", path: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Resolve preset <- file <- overrides into one validated :class:`RunConfig`.

    A file may name its own starting point with a top-level ``preset:`` key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = read_config_file(path)
        preset_name = data.pop("preset", preset_name)
        where = f"config file {path}"
    else:
        where = "config"
    base = to_dict(preset(preset_name)) if preset_name else to_dict(RunConfig())
    merged = merge_dicts(base, data)
    if overrides:
        merged = merge_dicts(merged, overrides)
    try:
        return build_section(RunConfig, merged)
    except ConfigError as exc:
        if path is not None and not str(exc).startswith("config file"):
            raise ConfigError(f"{where}: {exc}") from None
        raise


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Rebuild a config saved in a run record."""
    return build_section(RunConfig, data)
