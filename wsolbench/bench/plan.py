"""A bench's plan (``wsolbench bench --dry-run``): every run's status and an estimate of the time left; writes nothing.

Status: ``done`` (its ``record.json`` exists), ``failed`` (the store says so),
``claimed`` (another live process holds it), ``todo`` (the rest, stale claims
and interrupted runs included). The estimate is the mean ``timings.total`` of
the grid's finished runs times the runs left (one after the other, as the local
executor runs them), or unknown without a finished run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wsolbench.bench.store import STORE_FILE, ResultsStore
from wsolbench.config import RunConfig
from wsolbench.records import RECORD_FILE, load_record
from wsolbench.runner import check_config, run_dir


@dataclass(frozen=True)
class PlannedRun:
    name: str
    config_hash: str
    run_dir: Path
    status: str  # done | failed | claimed | todo
    seconds: float | None = None  # timings.total of a done run
    note: str | None = None  # the error of a failed run, the owner of a claimed one


@dataclass(frozen=True)
class Plan:
    runs: tuple[PlannedRun, ...]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.runs)

    @property
    def left(self) -> int:
        return len(self.runs) - self.count("done")

    @property
    def mean_seconds(self) -> float | None:
        timed = [r.seconds for r in self.runs if r.status == "done" and r.seconds is not None]
        return sum(timed) / len(timed) if timed else None

    @property
    def seconds_left(self) -> float | None:
        mean = self.mean_seconds
        return None if mean is None else mean * self.left


def plan_bench(configs: Sequence[RunConfig], *, output_dir: Path) -> Plan:
    """The status of every config of a bench in ``output_dir`` (read only: no folder or store is created)."""
    output_dir = Path(output_dir)
    for cfg in configs:  # the same checks as a real bench, before anything is read
        check_config(cfg)
    rows, held = {}, set()
    if (output_dir / STORE_FILE).exists():
        with ResultsStore(output_dir, create=False) as store:
            rows = store.rows(cfg.config_hash() for cfg in configs)
            held = {d for d, row in rows.items() if store.held_by_other(row)}
    runs = []
    for cfg in configs:
        cfg = cfg.with_name()
        digest, folder = cfg.config_hash(), run_dir(cfg, output_dir)
        row = rows.get(digest)
        if (folder / RECORD_FILE).exists():
            seconds = row.seconds if row is not None and row.status == "complete" else None
            if seconds is None:
                seconds = (load_record(folder / RECORD_FILE).get("timings") or {}).get("total")
            runs.append(PlannedRun(cfg.name, digest, folder, "done", seconds))
        elif row is not None and row.status == "failed":
            runs.append(PlannedRun(cfg.name, digest, folder, "failed", note=row.error))
        elif row is not None and digest in held:
            runs.append(PlannedRun(cfg.name, digest, folder, "claimed", note=str(row.owner)))
        else:
            runs.append(PlannedRun(cfg.name, digest, folder, "todo"))
    return Plan(tuple(runs))


def format_seconds(seconds: float) -> str:
    """``42.0 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def plan_lines(plan: Plan) -> list[str]:
    """The plan as text: one line per run (status, hash, name, note), then the counts and the estimate."""
    lines = [f"{r.status:<8} {r.config_hash}  {r.name}" + (f"  ({r.note})" if r.note else "") for r in plan.runs]
    counts = ", ".join(f"{plan.count(s)} {s}" for s in ("failed", "claimed", "todo"))
    lines.append(f"{plan.count('done')}/{len(plan.runs)} runs done ({counts})")
    mean, left = plan.mean_seconds, plan.seconds_left
    if plan.left == 0:
        lines.append("time left: none")
    elif mean is None or left is None:
        lines.append(f"time left: unknown (no finished run to time; {plan.left} runs left)")
    else:
        done = sum(r.status == "done" and r.seconds is not None for r in plan.runs)
        lines.append(f"time left: about {format_seconds(left)} = {left:.1f} s (mean {mean:.1f} s of {done} finished "
                     f"runs x {plan.left} runs left, one after the other)")
    return lines
