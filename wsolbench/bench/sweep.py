"""A strength sweep as a grid: each regularizer through its strengths, the baseline, every seed.

A sweep is one or more *lines*: an objective class, optional fixed parameters (``kl_uniform`` with
``normalize_loss_scale=true`` is a line of its own, so the loss-scale confound with label smoothing shows),
its strength parameter (the class's declared strength unless named) and the values it takes. The runs are
the baseline objective plus every line's values, each with every seed (and every method given), on one
base config; runs shared by two lines (the same config) run once. Choosing the strength happens on val
afterwards (:mod:`wsolbench.report.sweep`), never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from wsolbench.bench.grid import expand_grid
from wsolbench.config import RunConfig, build_axis
from wsolbench.config.axes import strength_of
from wsolbench.errors import ConfigError


@dataclass(frozen=True)
class SweepLine:
    objective: str  # class name, e.g. kl_uniform
    values: tuple[float, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)  # other parameters, e.g. normalize_loss_scale=True
    param: str | None = None  # the swept parameter (None: the class's strength)

    def strength(self) -> str:
        """The swept parameter, checked against the class (ConfigError when it has no such parameter)."""
        axis = build_axis("objective", {"name": self.objective, **self.fixed})
        name = self.param or strength_of(axis)
        if name is None:
            raise ConfigError(f"objective {self.objective!r} has no strength to sweep; name one with objective.KEY")
        if name not in axis.to_dict():
            raise ConfigError(f"objective {self.objective!r} has no parameter {name!r} "
                              f"(it has: {', '.join(k for k in axis.to_dict() if k != 'name') or 'none'})")
        return name


def parse_objective(text: str) -> tuple[str, dict[str, Any]]:
    """``kl_uniform`` or ``kl_uniform(normalize_loss_scale=true)`` -> name and fixed parameters (YAML values);
    ConfigError on a malformed spec."""
    text = text.strip()
    name, sep, rest = text.partition("(")
    params: dict[str, Any] = {}
    if sep:
        if not rest.endswith(")"):
            raise ConfigError(f"objective {text!r}: expected NAME or NAME(key=value, ...)")
        for item in filter(None, (p.strip() for p in rest[:-1].split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"objective {text!r}: {item!r} is not key=value")
            params[key.strip()] = yaml.safe_load(value)
    if not name.strip():
        raise ConfigError(f"objective {text!r}: no name")
    return name.strip(), params


def parse_values(text: str, where: str) -> tuple[float, ...]:
    """``1e-4,1e-3,0.01`` -> floats (ConfigError naming ``where`` on a bad or empty list)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = tuple(float(t) for t in items)
    except ValueError:
        raise ConfigError(f"{where}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{where}: no values")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}: values repeat: {text}")
    return values


def lines_from_flags(objectives: Sequence[str], values: Sequence[str]) -> tuple[SweepLine, ...]:
    """``--objective`` / ``--values`` pairs, matched by order (the same number of each)."""
    if not objectives:
        raise ConfigError("a sweep needs --objective NAME --values V1,V2,... (or a sweep preset)")
    if len(objectives) != len(values):
        raise ConfigError(f"{len(objectives)} --objective but {len(values)} --values: give one --values per "
                          "--objective, in the same order")
    lines = []
    for spec, text in zip(objectives, values):
        name, fixed = parse_objective(spec)
        lines.append(SweepLine(name, parse_values(text, f"--values for {spec}"), fixed))
    return tuple(lines)


def sweep_configs(base: RunConfig, lines: Sequence[SweepLine], *, seeds: Sequence[int], baseline: str = "ce",
                  axes: Mapping[str, Sequence[Any]] | None = None) -> list[RunConfig]:
    """The runs of a sweep: the baseline and each line's strengths, x seeds x ``axes`` (e.g. methods),
    deduplicated by config hash, in order (baseline first)."""
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    extra = {k: list(v) for k, v in (axes or {}).items()}
    common = {**extra, "seed": list(seeds)}
    name, fixed = parse_objective(baseline)
    configs = expand_grid(base, {**common, "objective.name": [name],
                                 **{f"objective.{k}": [v] for k, v in fixed.items()}})
    for line in lines:
        param = line.strength()
        configs += expand_grid(base, {**common, "objective.name": [line.objective],
                                      f"objective.{param}": list(line.values),
                                      **{f"objective.{k}": [v] for k, v in line.fixed.items()}})
    unique, seen = [], set()
    for cfg in configs:
        digest = cfg.config_hash()
        if digest not in seen:
            seen.add(digest)
            unique.append(cfg)
    return unique


def with_fixed(lines: Sequence[SweepLine], params: Mapping[str, Any]) -> tuple[SweepLine, ...]:
    """``--set objective.KEY=V`` on a sweep: each line whose class has ``KEY`` gets it as a fixed parameter
    (a line's own spec wins); ConfigError when no line's class has it, or it is a line's swept parameter."""
    out = list(lines)
    for key, value in params.items():
        takers = [i for i, line in enumerate(out) if key in build_axis("objective", line.objective).to_dict()]
        if not takers:
            raise ConfigError(f"objective.{key} is a parameter of none of the swept objectives "
                              f"({', '.join(line.objective for line in out)})")
        for i in takers:
            line = out[i]
            if key == line.strength():
                raise ConfigError(f"objective.{key} is what the sweep varies for {line.objective}: use --values")
            out[i] = SweepLine(line.objective, line.values, {key: value, **line.fixed}, line.param)
    return tuple(out)


@dataclass(frozen=True)
class SweepPreset:
    """A named sweep (``wsolbench sweep --preset NAME``): run presets (one base config each, e.g. one per
    built-in dataset), the lines and the seeds."""

    name: str
    summary: str
    presets: tuple[str, ...]
    lines: tuple[SweepLine, ...]
    seeds: tuple[int, ...] = (0, 1, 2)

    def runs(self) -> int:
        """How many distinct runs the preset makes (what ``sweep_configs`` gives for each base, summed)."""
        from wsolbench.config import load_config

        return sum(len(sweep_configs(load_config(preset_name=p), self.lines, seeds=self.seeds))
                   for p in self.presets)


#: The strengths: KL-uniform's lam and, beside it, label smoothing's eps at the effective smoothing
#: lam / (1 + lam) of those lams (CE + lam KL(u || p) is (1 + lam) x label smoothing at that eps, up to a
#: constant; 0.05 stands for 0.0476), and KL-uniform again with its loss divided by (1 + lam): that line and
#: label smoothing are then the same objective, so where plain KL-uniform parts from them the difference is the
#: loss scale (the step size), not the entropy.
_LAMS = (0.05, 0.25, 1.0, 3.0)
_EPS = (0.05, 0.2, 0.5, 0.75)

SWEEP_PRESETS: dict[str, SweepPreset] = {p.name: p for p in (
    SweepPreset("entropy", "both built-in datasets (quick, quick-digits): KL-uniform lam 0.05-3, the same with "
                "normalize_loss_scale, label smoothing at the matching eps 0.05-0.75; seeds 0, 1 (52 runs; about "
                "35 min measured on 2 shared cores with --workers 2 --threads 1)",
                ("quick", "quick-digits"),
                (SweepLine("kl_uniform", _LAMS), SweepLine("kl_uniform", _LAMS, {"normalize_loss_scale": True}),
                 SweepLine("label_smoothing", _EPS)), seeds=(0, 1)),
)}
