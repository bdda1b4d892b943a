"""Expanding one base config into the runs of a grid: the cross product of named axes, deduplicated by hash.

An axis is a dotted config key and its list of values: ``method.name``,
``objective.name`` (a name, or a mapping with the class's own parameters,
``{name: adl, drop_rate: 0.5}``), ``seed``, ``eval.cam``, ``model.backbone``, ``data.dataset``,
any other config key (``optim.lr``, ``data.synthetic.rho``), or a parameter of
a method or objective class (``objective.lam``, ``method.drop_rate``). A class
parameter goes to each class of its axis that has it and is ignored by the
others; one that none of the grid's classes has is refused. The cross product
is taken in a fixed axis order (:data:`AXIS_ORDER`, then the other keys as
given), so ``ce`` crossed with three ``lam`` values is three equal configs:
runs are deduplicated by config hash, keeping the first.

Run names are ``<method>-<objective>`` with each class's strength and
non-default parameters (``cam-kl_uniform-lam0.3``), then one part per other
axis that has several values in the grid, in axis order: the dataset, the
backbone, the CAM extractor, ``<key>V`` for any other key (``lr0.01``), and
``s<seed>`` last. A single seed, even a non-default one, adds nothing: the run
folder adds the config hash, so names need not be unique.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any, get_type_hints

from wsolbench.config import BENCH_OBJECTIVES, RunConfig, build_section, merge_dicts, to_dict
from wsolbench.config.axes import AxisConfig, parameters
from wsolbench.errors import ConfigError

CLASS_AXES = ("method", "objective")

#: The order axes are crossed in (outermost first); keys not listed follow in the order given, with a class
#: parameter right after its class's axis. Seed outermost: a partial grid already holds whole seeds.
AXIS_ORDER = ("seed", "data.dataset", "model.backbone", "method.name", "method.*", "objective.name", "objective.*",
              "eval.cam")

#: The name part of an axis with several values (other keys: ``<last key part><value>``).
_NAME_PARTS = {"data.dataset": "{}", "model.backbone": "{}", "eval.cam": "{}", "seed": "s{}"}


class GridAxisError(ConfigError):
    """A grid problem attributable to one axis (``key``), so a caller can name the file or flag it came from."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def expand_grid(base: RunConfig, axes: Mapping[str, Sequence[Any]]) -> list[RunConfig]:
    """One config per point of the cross product of ``axes`` on ``base``, deduplicated by config hash.

    ``axes`` maps dotted config keys to lists of values (see the module docstring); ``method`` and
    ``objective`` stand for ``method.name`` / ``objective.name``. A class named by an axis starts from
    ``base``'s section when ``base`` is that class (keeping its parameters), else from its published
    defaults. Every config is named (``name`` of ``base`` is not kept). ConfigError (a
    :class:`GridAxisError` naming the key where it can) on an unknown key, an empty or repeating axis, a
    class parameter none of the grid's classes has, or a value the config refuses.
    """
    axes = _normalized(axes)
    keys = sorted(axes, key=_rank(list(axes)))
    classes = {kind: list(dict.fromkeys(_class_name(v) for v in axes.get(f"{kind}.name", [getattr(base, kind).name])))
               for kind in CLASS_AXES}
    owned = _route(axes, classes)
    base_dict = to_dict(base)
    varying = [k for k in keys if len(axes[k]) > 1 and k.split(".", 1)[0] not in CLASS_AXES]
    configs, seen = [], set()
    for point in itertools.product(*(axes[k] for k in keys)):
        assign = dict(zip(keys, point))
        cfg = _build(base, base_dict, assign, owned)
        digest = cfg.config_hash()
        if digest in seen:
            continue
        seen.add(digest)
        configs.append(dataclasses.replace(cfg, name=_run_name(cfg, assign, varying)))
    return configs


def name_by_dataset(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """``configs`` with the dataset before each run name (``digits-ce``): for runs of several datasets made
    under one name scheme, so that their names do not collide."""
    return [dataclasses.replace(c, name=f"{c.data.dataset}-{c.name}") for c in configs]


def bench_configs(base: RunConfig, objectives: Sequence[str] = BENCH_OBJECTIVES, *,
                  methods: Sequence[str] | None = None, objective_params: Mapping[str, Any] | None = None,
                  method_params: Mapping[str, Any] | None = None) -> list[RunConfig]:
    """One config per (method, objective), identical in everything else: :func:`expand_grid` with one value
    per parameter (``objective_params={"lam": 1.0}`` goes to every objective that has ``lam``)."""
    axes: dict[str, list[Any]] = {"method.name": list(methods) if methods else [base.method.name],
                                  "objective.name": list(objectives)}
    axes.update({f"method.{k}": [v] for k, v in (method_params or {}).items()})
    axes.update({f"objective.{k}": [v] for k, v in (objective_params or {}).items()})
    return expand_grid(base, axes)


def canonical_key(key: str) -> str:
    """``method`` / ``objective`` -> ``method.name`` / ``objective.name``; other keys as they are."""
    key = str(key).strip()
    return f"{key}.name" if key in CLASS_AXES else key


def _normalized(axes: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Keys checked and aliased (``method`` -> ``method.name``), values checked: a non-empty list, no repeats."""
    out: dict[str, list[Any]] = {}
    for raw_key, values in axes.items():
        key = canonical_key(raw_key)
        check_key(key)
        if key in out:
            raise GridAxisError(f"grid axis {key} is given twice", key)
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
            raise GridAxisError(f"grid axis {key} must be a list of values, got {values!r}", key)
        values = list(values)
        if not values:
            raise GridAxisError(f"grid axis {key} has no values", key)
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        repeated = next((v for v, t in zip(values, texts) if texts.count(t) > 1), None)
        if repeated is not None:
            raise GridAxisError(f"grid axis {key} repeats {repeated!r}", key)
        out[key] = values
    return out


def check_key(key: str) -> None:
    """A dotted key of :class:`RunConfig` (a class parameter ``method.X`` / ``objective.X`` is checked when the
    grid's classes are known); GridAxisError naming the key and what is known there otherwise."""
    parts = key.split(".")
    if not all(parts):
        raise GridAxisError(f"grid axis {key!r} is not a dotted config key", key)
    if parts[0] == "name":
        raise GridAxisError("'name' cannot be a grid axis: a grid names its runs", key)
    if parts[0] in CLASS_AXES:
        if len(parts) != 2:
            raise GridAxisError(f"grid axis {key}: a {parts[0]} section holds name and parameters, not sections",
                                key)
        return
    cls: Any = RunConfig
    for depth, part in enumerate(parts):
        known = {f.name for f in fields(cls)}
        if part not in known:
            where = ".".join(parts[:depth]) or "the config"
            raise GridAxisError(f"unknown config key {key} ({where} has: {', '.join(sorted(known))})", key)
        hint = get_type_hints(cls)[part]
        if depth < len(parts) - 1:
            if not is_dataclass(hint):
                raise GridAxisError(f"unknown config key {key} ({'.'.join(parts[:depth + 1])} is a value)", key)
            cls = hint


def _rank(given: list[str]) -> Any:
    def rank(key: str) -> tuple[int, int]:
        if key in AXIS_ORDER:
            return AXIS_ORDER.index(key), 0
        kind = key.split(".", 1)[0]
        if kind in CLASS_AXES:
            return AXIS_ORDER.index(f"{kind}.*"), given.index(key)
        return len(AXIS_ORDER), given.index(key)
    return rank


def _route(axes: Mapping[str, list[Any]], classes: Mapping[str, list[str]]) -> dict[str, dict[str, set[str]]]:
    """For each class of the grid, the parameter axes it takes; a parameter no class of its axis has is refused."""
    owned: dict[str, dict[str, set[str]]] = {}
    for kind, names in classes.items():
        try:
            have = {name: set(parameters(kind, name)) for name in names}
        except ConfigError as exc:
            raise GridAxisError(str(exc), f"{kind}.name") from None
        for key in axes:
            section, _, param = key.partition(".")
            if section == kind and param != "name" and not any(param in own for own in have.values()):
                raise GridAxisError(f"{key} is a parameter of none of the {kind}s in this grid ({', '.join(names)})",
                                    key)
        owned[kind] = have
    return owned


def _class_name(value: Any) -> str:
    """The class of a ``method.name`` / ``objective.name`` value: a name, or a mapping with ``name``."""
    return str(value.get("name")) if isinstance(value, Mapping) else str(value)


def _nested(key: str, value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def _build(base: RunConfig, base_dict: dict[str, Any], assign: Mapping[str, Any],
           owned: Mapping[str, Mapping[str, set[str]]]) -> RunConfig:
    data = dict(base_dict)
    for key, value in assign.items():
        if key.split(".", 1)[0] not in CLASS_AXES:
            data = merge_dicts(data, _nested(key, value))
    for kind in CLASS_AXES:
        start: AxisConfig = getattr(base, kind)
        chosen = assign.get(f"{kind}.name", start.name)
        name = _class_name(chosen)
        section = start.to_dict() if name == start.name else {"name": name}
        if isinstance(chosen, Mapping):  # a class with its own parameters: {name: adl, drop_rate: 0.5}
            section.update(chosen)
        for key, value in assign.items():
            section_kind, _, param = key.partition(".")
            if section_kind == kind and param != "name" and param in owned[kind][name]:
                section[param] = value
        data[kind] = section
    data["name"] = ""
    try:
        return build_section(RunConfig, data)
    except ConfigError as exc:
        message = str(exc)
        blamed = next((k for k in sorted(assign, key=len, reverse=True)
                       if k in message or re.search(rf"\b{re.escape(k.rsplit('.', 1)[-1])}\b", message)), None)
        raise GridAxisError(message, blamed) from None


def _slug(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = "+".join(_slug(v) for v in value)
    elif isinstance(value, Mapping):
        text = str(next((value[k] for k in ("dataset", "name", "backbone") if k in value), "x"))
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def _run_name(cfg: RunConfig, assign: Mapping[str, Any], varying: Sequence[str]) -> str:
    parts = [cfg.with_name().name]
    for key in [k for k in varying if k != "seed"] + [k for k in varying if k == "seed"]:
        pattern = _NAME_PARTS.get(key, key.rsplit(".", 1)[-1] + "{}")
        parts.append(pattern.format(_slug(assign[key])))
    return "-".join(parts)
