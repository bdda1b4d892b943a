"""The in-process executor: runs a bench's configs one after the other, keeping partial results.

A run that fails (diverged loss, bad image) is reported and the others go on;
each finished run's record is already on disk, so nothing computed is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wsolbench.config import RunConfig
from wsolbench.errors import WsolbenchError
from wsolbench.progress import NullProgress, Progress
from wsolbench.runner import RunResult, check_config, train_and_evaluate


@dataclass
class BenchOutcome:
    results: list[RunResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run name, one-line error)


def run_bench(configs: Sequence[RunConfig], *, output_dir: Path, progress: Progress | None = None,
              rerun: bool = False, resume: bool = False) -> BenchOutcome:
    progress = progress or NullProgress()
    for cfg in configs:  # every name is checked before the first run starts
        check_config(cfg)
    outcome = BenchOutcome()
    for cfg in configs:
        try:
            outcome.results.append(train_and_evaluate(cfg, output_dir=output_dir, progress=progress, rerun=rerun,
                                                       resume=resume))
        except WsolbenchError as exc:
            if exc.exit_code == 2:  # a usage problem applies to every run: stop now
                raise
            outcome.failures.append((cfg.with_name().name, str(exc)))
            progress.log(f"{cfg.with_name().name}: failed: {exc}")
    return outcome
