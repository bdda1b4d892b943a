"""Local worker processes for a bench: ``--workers N`` starts N - 1 more processes of the same command.

They share the output folder, and the results store (:mod:`wsolbench.bench.store`) gives each run to one
of them, exactly as when a user starts the same bench in several terminals; a run is the same whichever
process trains it (its seed fixes initialisation, data order and augmentation; use one torch thread per
worker on CPU). Each worker's stderr goes to ``<output>/workers/worker-<i>.log``; the parent waits for them
before it writes the reports, so the leaderboard has every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from wsolbench.errors import ConfigError

#: Set in a worker's environment: it does not start workers of its own.
WORKER_ENV = "WSOLBENCH_WORKER"


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) is not None


def check_workers(workers: int, executor: str) -> None:
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and executor != "local":
        raise ConfigError(f"--workers is for the local executor; with --executor {executor} the cluster "
                          "decides where runs go")


def start_workers(count: int, args: Sequence[str], output_dir: Path) -> list[tuple[subprocess.Popen, Path]]:
    """``count`` processes of ``python -m wsolbench <args> --workers 1`` (stdout discarded, stderr to a log
    each); returns them with their log paths."""
    logs = Path(output_dir) / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for i in range(1, count + 1):
        log = logs / f"worker-{i}.log"
        with open(log, "w") as stream:
            process = subprocess.Popen([sys.executable, "-m", "wsolbench", *args, "--workers", "1"],
                                       stdout=subprocess.DEVNULL, stderr=stream,
                                       env={**os.environ, WORKER_ENV: str(i)})
        started.append((process, log))
    return started


def wait_workers(started: Sequence[tuple[subprocess.Popen, Path]]) -> list[str]:
    """Wait for every worker; one message per worker that failed (its exit code and log)."""
    failed = []
    for process, log in started:
        code = process.wait()
        if code != 0:
            failed.append(f"worker {process.pid} exited with {code}; see {log}")
    return failed
