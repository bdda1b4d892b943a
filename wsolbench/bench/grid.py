"""Expanding one base config into the runs of a bench: methods x objectives, all else identical."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from wsolbench.config import BENCH_OBJECTIVES, RunConfig, build_axis
from wsolbench.config.axes import parameters
from wsolbench.errors import ConfigError


def _axis_params(kind: str, names: Sequence[str], given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """For each class in ``names``, the parameters of ``given`` it has; a parameter no class has is an error."""
    owned = {name: set(parameters(kind, name)) for name in names}
    orphans = sorted(k for k in given if not any(k in own for own in owned.values()))
    if orphans:
        raise ConfigError(f"{kind}.{orphans[0]} is a parameter of none of the {kind}s in this bench "
                          f"({', '.join(names)})")
    return {name: {k: v for k, v in given.items() if k in owned[name]} for name in names}


def _unique(kind: str, names: Sequence[str]) -> None:
    if not names:
        raise ConfigError(f"a bench needs at least one {kind}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{kind}s repeat: {', '.join(names)}")


def bench_configs(base: RunConfig, objectives: Sequence[str] = BENCH_OBJECTIVES, *,
                  methods: Sequence[str] | None = None, objective_params: Mapping[str, Any] | None = None,
                  method_params: Mapping[str, Any] | None = None) -> list[RunConfig]:
    """One config per (method, objective), identical in everything else (seed, data, model, schedule).

    ``objective_params`` / ``method_params`` (e.g. ``{"lam": 1.0}``) go to every class that has them; a
    parameter that none of the bench's classes has is refused. A class not given a parameter keeps the
    value of ``base`` when ``base`` is that class, else its published default. Run names are
    ``<method>-<objective>[-params]``; the run folder adds the config hash.
    """
    methods = list(methods) if methods else [base.method.name]
    _unique("objective", objectives)
    _unique("method", methods)
    per_objective = _axis_params("objective", objectives, objective_params or {})
    per_method = _axis_params("method", methods, method_params or {})
    configs = []
    for m in methods:
        method = build_axis("method", {**(base.method.to_dict() if base.method.name == m else {"name": m}),
                                       **per_method[m]})
        for o in objectives:
            start = base.objective.to_dict() if base.objective.name == o else {"name": o}
            objective = build_axis("objective", {**start, **per_objective[o]})
            configs.append(dataclasses.replace(base, method=method, objective=objective, name="").with_name())
    return configs
