"""Benches: expanding a grid of axes into runs, the results store with run claims, and executors (local, Ray).

The names below load their module on first use (PEP 562), so that the grid and sweep definitions the CLI
reads when it starts (``wsolbench.bench.sweep``) do not import the executor, hence the runner and torch:
``wsolbench evaluate-cams`` and ``wsolbench leaderboard`` start without them.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "EXECUTORS": "executor", "BenchOutcome": "executor", "grid_records": "executor", "report_lock": "executor",
    "run_bench": "executor",
    "bench_configs": "grid", "expand_grid": "grid", "name_by_dataset": "grid",
    "GridFile": "gridfile", "axes_from_sets": "gridfile", "grid_configs": "gridfile", "read_grid_file": "gridfile",
    "Plan": "plan", "plan_bench": "plan", "plan_lines": "plan",
    "ResultsStore": "store",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
