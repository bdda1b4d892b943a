"""Expanding one base config into the runs of a bench."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from wsolbench.config import BENCH_OBJECTIVES, RunConfig
from wsolbench.errors import ConfigError


def bench_configs(base: RunConfig, objectives: Sequence[str] = BENCH_OBJECTIVES) -> list[RunConfig]:
    """One config per objective, identical in everything else (seed, data, model, schedule).

    Each objective keeps the hyperparameter of ``base.objective`` (eps, beta, lam).
    """
    if not objectives:
        raise ConfigError("a bench needs at least one objective")
    if len(set(objectives)) != len(objectives):
        raise ConfigError(f"objectives repeat: {', '.join(objectives)}")
    configs = []
    for name in objectives:
        objective = dataclasses.replace(base.objective, name=name)
        configs.append(dataclasses.replace(base, objective=objective, name=f"{base.name}{name}" if base.name else name))
    return configs
