"""Executing a bench's runs: claim each in the results store, train it (here or on Ray), store the outcome.

For each config, in order: a run whose ``record.json`` exists is done (reused,
and mirrored into the store when the store lacks it); otherwise it is claimed
(:meth:`~wsolbench.bench.store.ResultsStore.claim`), and a run another live
process holds is left to it. A claimed run trains with ``resume=True`` when an
interrupted checkpoint exists (its previous owner is gone, or the claim would
not have been granted), and ends ``complete`` or ``failed`` with its one-line
error. A failed run does not stop the others; a usage error (exit code 2, e.g.
a missing dataset folder) applies to every run and stops the bench. So several
bench processes on one output folder share its grid, each run trained once,
and a rerun retries only the failed and missing runs.

Executors: ``local`` (in this process, one run after the other) and ``ray``
(:mod:`wsolbench.bench.ray_executor`: one Ray task per run, this process claims
and writes the store).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsolbench._io import ensure_writable_dir
from wsolbench.bench.store import Heartbeat, ResultsStore, one_line
from wsolbench.config import RunConfig
from wsolbench.errors import ConfigError, WsolbenchError
from wsolbench.progress import NullProgress, Progress
from wsolbench.records import RECORD_FILE, load_record
from wsolbench.runner import CHECKPOINT_FILE, RunResult, check_config, check_data, run_dir, train_and_evaluate

EXECUTORS = ("local", "ray")


@dataclass
class BenchOutcome:
    """What one bench process saw: ``results``, the complete runs of the bench in config order (``reused``: done
    earlier or by another process); ``failures``, the runs this process ran that failed (name, one-line error);
    ``held``, runs another live process still held at the end; ``failed_elsewhere``, runs that failed in another
    process during this bench."""

    results: list[RunResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    failed_elsewhere: list[tuple[str, str]] = field(default_factory=list)

    @property
    def trained(self) -> list[RunResult]:
        return [r for r in self.results if not r.reused]

    @property
    def reused(self) -> list[RunResult]:
        return [r for r in self.results if r.reused]


@dataclass
class BenchContext:
    """What every run of one bench shares (built by :func:`run_bench`, read by the executors)."""

    store: ResultsStore
    output_dir: Path
    progress: Progress
    rerun: bool
    resume: bool
    since: float  # when this bench started: failures (and, with rerun, completions) before it are retried
    command: str | None = None  # the command line of the bench, kept in every record it makes
    outcome: BenchOutcome = field(default_factory=BenchOutcome)
    held: list[RunConfig] = field(default_factory=list)  # runs another live process held when this one passed


def run_bench(configs: Sequence[RunConfig], *, output_dir: Path, progress: Progress | None = None,
              rerun: bool = False, resume: bool = False, executor: str = "local",
              ray_address: str | None = None, command: str | None = None) -> BenchOutcome:
    """Run every config of a bench not done yet (see the module docstring); returns what this process saw.

    Every config's registry names, and with the local executor the data folders of every run still to train,
    are checked before the first run starts and before anything is written. ``rerun``: train again runs
    finished before this bench started. ``resume``: as ``train --resume`` (a bench resumes an interrupted
    run anyway). ``ray_address``: a Ray cluster to join (``auto``, ``ray://host:10001``); default: start a
    local one. ``command``: the bench's command line, kept in the record of every run it trains.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
    configs = [cfg.with_name() for cfg in configs]
    for cfg in configs:
        check_config(cfg)
    for cfg in configs:  # the data of every run still to train, before the folder and the store are made
        if executor == "local" and (rerun or not (run_dir(cfg, output_dir) / RECORD_FILE).exists()):
            check_data(cfg, output_dir)  # (on Ray the data folders need only exist where the runs train)
    output_dir = ensure_writable_dir(output_dir)
    with ResultsStore(output_dir) as store:
        ctx = BenchContext(store=store, output_dir=output_dir, progress=progress or NullProgress(), rerun=rerun,
                           resume=resume, since=time.time(), command=command)
        if executor == "ray":
            from wsolbench.bench.ray_executor import run_on_ray

            run_on_ray(configs, ctx, address=ray_address)
        else:
            _run_local(configs, ctx)
        _settle(configs, ctx)
    return ctx.outcome


def _run_local(configs: Sequence[RunConfig], ctx: BenchContext) -> None:
    with Heartbeat(ctx.store) as beat:
        for cfg in configs:
            if not claim_run(cfg, ctx):
                continue
            digest = cfg.config_hash()
            beat.add(digest)
            try:
                result = train_and_evaluate(cfg, output_dir=ctx.output_dir, progress=ctx.progress,
                                            rerun=ctx.rerun, resume=resume_flag(cfg, ctx), command=ctx.command)
            except WsolbenchError as exc:
                run_failed(cfg, ctx, str(exc))
                if exc.exit_code == 2:  # a usage problem applies to every run: stop now
                    raise
                continue
            except Exception as exc:  # a bug: stored as failed, then shown with its traceback
                run_failed(cfg, ctx, f"{type(exc).__name__}: {one_line(exc)}")
                raise
            except BaseException:  # interrupted (Ctrl-C): the run is free again, its checkpoint kept
                ctx.store.release(digest, "interrupted")
                raise
            finally:
                beat.discard(digest)
            run_complete(cfg, ctx, result)


def claim_run(cfg: RunConfig, ctx: BenchContext) -> bool:
    """True when this process is to run ``cfg`` now (claimed); otherwise ``cfg`` is accounted for in the outcome
    (done, held by another process, or failed there during this bench)."""
    folder = run_dir(cfg, ctx.output_dir)
    record_path = folder / RECORD_FILE
    if not ctx.rerun and record_path.exists():
        _reuse(cfg, ctx, folder)
        return False
    digest = cfg.config_hash()
    claim = ctx.store.claim(digest, name=cfg.name, run_dir=folder.name, config=cfg.to_dict(), since=ctx.since,
                            rerun=ctx.rerun)
    if not claim.ok and claim.reason == "complete" and not record_path.exists():  # the store outlived the record
        claim = ctx.store.claim(digest, name=cfg.name, run_dir=folder.name, config=cfg.to_dict(), rerun=True)
    if claim.ok:
        if claim.reason == "stale" and claim.before is not None:
            ctx.progress.log(f"{cfg.name}: taking over the stale claim of {claim.before.owner}")
        return True
    if claim.reason == "complete":
        _reuse(cfg, ctx, folder)
    elif claim.reason == "held":
        ctx.held.append(cfg)
        ctx.progress.log(f"{cfg.name}: held by {claim.before.owner if claim.before else 'another process'}")
    else:
        ctx.outcome.failed_elsewhere.append((cfg.name, (claim.before.error if claim.before else None) or "failed"))
    return False


def resume_flag(cfg: RunConfig, ctx: BenchContext) -> bool:
    """Resume when asked to, or when an interrupted checkpoint exists (a claimed run has no other live owner)."""
    return ctx.resume or (not ctx.rerun and (run_dir(cfg, ctx.output_dir) / CHECKPOINT_FILE).exists())


def run_complete(cfg: RunConfig, ctx: BenchContext, result: RunResult) -> None:
    ctx.store.complete(cfg.config_hash(), result.record, run_dir=run_dir(cfg, ctx.output_dir).name,
                       trained=not result.reused)
    ctx.outcome.results.append(result)


def run_failed(cfg: RunConfig, ctx: BenchContext, error: str) -> None:
    error = one_line(error)
    ctx.store.fail(cfg.config_hash(), error, name=cfg.name, run_dir=run_dir(cfg, ctx.output_dir).name)
    ctx.outcome.failures.append((cfg.name, error))
    ctx.progress.log(f"{cfg.name}: failed: {error}")


def _reuse(cfg: RunConfig, ctx: BenchContext, folder: Path) -> None:
    record_path = folder / RECORD_FILE
    record = load_record(record_path)
    if ctx.store.mirror(cfg.config_hash(), record, run_dir=folder.name):
        ctx.progress.log(f"{cfg.name}: stored {record_path} (the results store lacked it)")
    else:
        ctx.progress.log(f"{cfg.name}: reusing {record_path}")
    ctx.outcome.results.append(RunResult(record, record_path, reused=True))


def _settle(configs: Sequence[RunConfig], ctx: BenchContext) -> None:
    """At the end: runs held by others that finished meanwhile join the results; results in config order."""
    outcome = ctx.outcome
    for cfg in ctx.held:
        folder = run_dir(cfg, ctx.output_dir)
        row = ctx.store.row(cfg.config_hash())
        if (folder / RECORD_FILE).exists() and not ctx.store.held_by_other(row):
            record_path = folder / RECORD_FILE
            outcome.results.append(RunResult(load_record(record_path), record_path, reused=True))
        elif row is not None and row.status == "failed":
            outcome.failed_elsewhere.append((cfg.name, row.error or "failed"))
        else:
            outcome.held.append(cfg.name)
    order = {cfg.config_hash(): i for i, cfg in enumerate(configs)}
    outcome.results.sort(key=lambda r: order.get(r.record.get("config_hash", ""), len(order)))


def grid_records(configs: Sequence[RunConfig], output_dir: Path) -> list[tuple[dict[str, Any], Path]]:
    """``(record, run folder)`` of every run of ``configs`` finished so far, by whichever process (read from
    the record files)."""
    paths = [run_dir(cfg, output_dir) / RECORD_FILE for cfg in configs]
    return [(load_record(p), p.parent) for p in paths if p.exists()]


@contextlib.contextmanager
def report_lock(output_dir: Path) -> Iterator[None]:
    """One bench process at a time writes the leaderboards of ``output_dir`` (an exclusive ``flock``): a process
    that reads the finished runs inside the lock and writes cannot overwrite a fuller leaderboard written by a
    process that finished later."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(Path(output_dir) / ".report.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
