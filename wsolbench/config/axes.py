"""Axis sections: ``method`` and ``objective`` hold a registered name and *that* class's parameters.

Each method and objective class declares a frozen ``Config`` dataclass (its
parameters with their published defaults, validated in ``__post_init__``). The
registries publish these classes here when a class registers
(:func:`register_schema`), so this module stays torch-free: a leaderboard
rebuilds without the GPU stack, while building a run config, which needs the
registries anyway, loads them on demand (:data:`PLUGINS`).

An :class:`AxisConfig` is the resolved section: the name, and an instance of the
class's ``Config`` with every default filled in. Its dict form is flat,
``{"name": "kl_uniform", "lam": 0.3, "normalize_loss_scale": false}``, and that
is what enters the config hash, so a parameter the chosen class does not have
can neither change the hash nor be given at all (``ConfigError``, exit 2).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from wsolbench.errors import ConfigError

#: The package whose import registers every class of an axis (a plugin discovery, not a static import:
#: this module must stay torch-free).
PLUGINS = {"method": "wsolbench.methods", "objective": "wsolbench.objectives"}

_SCHEMAS: dict[str, dict[str, type]] = {kind: {} for kind in PLUGINS}


def register_schema(kind: str, name: str, config_cls: type) -> None:
    """Publish the ``Config`` dataclass of the ``kind`` class registered as ``name``."""
    if not is_dataclass(config_cls) or not config_cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{kind} {name!r}: its Config must be a frozen dataclass")
    _SCHEMAS[kind][name] = config_cls


def _load(kind: str) -> dict[str, type]:
    if kind not in _SCHEMAS:
        raise ConfigError(f"unknown config axis {kind!r} (known: {', '.join(sorted(_SCHEMAS))})")
    importlib.import_module(PLUGINS[kind])
    return _SCHEMAS[kind]


def schema(kind: str, name: str) -> type:
    """The ``Config`` class of ``kind`` ``name``; ConfigError naming the known ones otherwise."""
    schemas = _load(kind)
    if name not in schemas:
        raise ConfigError(f"unknown {kind} {name!r} (known: {', '.join(sorted(schemas)) or 'none'})")
    return schemas[name]


def names(kind: str) -> list[str]:
    return sorted(_load(kind))


def parameters(kind: str, name: str) -> tuple[str, ...]:
    """The parameter names of ``kind`` ``name``, in declaration order."""
    return tuple(f.name for f in fields(schema(kind, name)))


@dataclass(frozen=True)
class AxisConfig:
    """A resolved ``method`` or ``objective`` section: ``name`` and ``params`` (an instance of its Config).

    Attribute access falls through to ``params`` (``cfg.objective.lam``).
    """

    kind: str
    name: str
    params: Any

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") or key in ("kind", "name", "params"):
            raise AttributeError(key)
        try:
            return getattr(self.params, key)
        except AttributeError:
            raise AttributeError(f"{self.kind} {self.name!r} has no parameter {key!r}") from None

    def to_dict(self) -> dict[str, Any]:
        from wsolbench.config.sections import to_dict

        return {"name": self.name, **to_dict(self.params)}

    def defaults(self) -> dict[str, Any]:
        """The parameters that differ from the class's published defaults."""
        from wsolbench.config.sections import to_dict

        own, base = to_dict(self.params), to_dict(schema(self.kind, self.name)())
        return {k: v for k, v in own.items() if base.get(k) != v}

    def replace(self, **params: Any) -> AxisConfig:
        return build_axis(self.kind, {**self.to_dict(), **params})


def build_axis(kind: str, value: Any, where: str | None = None) -> AxisConfig:
    """``"kl_uniform"`` or ``{"name": "kl_uniform", "lam": 1.0}`` -> a validated :class:`AxisConfig`."""
    from wsolbench.config.sections import coerce_fields

    where = where or kind
    if isinstance(value, AxisConfig):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a name or a mapping with 'name', got {value!r}")
    data = dict(value)
    name = data.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name must be a registered {kind} name, got {name!r}")
    cls = schema(kind, name)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        has = ", ".join(sorted(known)) or "no parameters"
        raise ConfigError(f"{kind} {name!r} has no parameter(s) {', '.join(unknown)} (it has: {has})")
    params = cls(**coerce_fields(cls, data, where))
    return AxisConfig(kind=kind, name=name, params=params)


def merge_axis(base: Any, update: Any) -> Any:
    """Merge an axis section of a preset with an override: a new ``name`` drops the old class's parameters."""
    if isinstance(update, str):
        update = {"name": update}
    if isinstance(base, str):
        base = {"name": base}
    if not isinstance(update, Mapping) or not isinstance(base, Mapping):
        return update
    if "name" in update and update["name"] != base.get("name"):
        return dict(update)
    return {**base, **update}


def strength_of(axis: AxisConfig) -> str | None:
    """The parameter a class declares as its strength (``Config.STRENGTH``, a ClassVar), e.g. ``lam``."""
    return getattr(type(axis.params), "STRENGTH", None)


def axis_label(axis: AxisConfig) -> str:
    """``kl_uniform(lam=0.3)``: the name, its strength parameter, and any other non-default parameter."""
    strength = strength_of(axis)
    params = dataclasses.asdict(axis.params)
    shown = []
    if strength is not None and strength in params:
        shown.append(f"{strength}={_fmt(params[strength])}")
    for key, value in axis.defaults().items():
        if key != strength:
            shown.append(key if value is True else f"{key}={_fmt(value)}")
    return axis.name + (f"({', '.join(shown)})" if shown else "")


def axis_slug(axis: AxisConfig) -> str:
    """The run-name part of an axis: ``kl_uniform-lam0.3``, ``has-grid4``, ``cam`` (strength, then non-defaults)."""
    strength = strength_of(axis)
    params = dataclasses.asdict(axis.params)
    parts = [axis.name]
    if strength is not None and strength in params:
        parts.append(f"{strength}{_fmt(params[strength])}")
    for key, value in axis.defaults().items():
        if key != strength:
            parts.append(key if value is True else f"{key}{_fmt(value)}")
    return "-".join(parts)


def _fmt(value: Any) -> str:
    """A parameter value for labels and run names: ``0.3``, ``4``, lists as ``0+16+32``."""
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
