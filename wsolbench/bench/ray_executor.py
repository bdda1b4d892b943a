"""The Ray executor: each run of a bench is one Ray task; this process (the driver) claims runs and writes the store.

Each task calls :func:`wsolbench.runner.train_and_evaluate` in a Ray worker
with the CPUs and GPUs of the run's ``resources`` section
(:func:`task_resources`). Workers write the run folders themselves, so on a
cluster of several nodes the output folder must be on a filesystem every node
mounts at the same path; only the driver touches the results store. A task that
fails is stored as failed with its one-line error and the others go on; a usage
error (exit code 2) cancels the rest and stops the bench, as in the local
executor. Ray is an optional extra (``pip install -e ".[ray]"``), imported only
here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsolbench.bench.executor import BenchContext, claim_run, resume_flag, run_complete, run_failed
from wsolbench.bench.store import Heartbeat, one_line
from wsolbench.config import RunConfig
from wsolbench.errors import ConfigError, WsolbenchError
from wsolbench.runner import RunResult


def import_ray() -> Any:
    """The ``ray`` module; a one-line ConfigError telling how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--executor ray needs Ray, an optional extra: pip install -e ".[ray]" '
                          '(or pip install "ray>=2.9")') from None
    return ray


def task_resources(cfg: RunConfig, cluster_gpus: float) -> dict[str, float]:
    """``num_cpus`` / ``num_gpus`` of one run's task: the config's ``resources`` where given, else 1 CPU (``threads``
    when set) and 1 GPU when the device is CUDA, or ``auto`` on a cluster with GPUs."""
    res = cfg.resources
    cpus = res.num_cpus if res.num_cpus is not None else float(cfg.threads or 1)
    if res.num_gpus is not None:
        gpus = res.num_gpus
    else:
        gpus = 1.0 if cfg.device.startswith("cuda") or (cfg.device == "auto" and cluster_gpus > 0) else 0.0
    return {"num_cpus": cpus, "num_gpus": gpus}


def _train_task(config: dict[str, Any], output_dir: str, rerun: bool, resume: bool,
                command: str | None = None) -> dict[str, Any]:
    """One run inside a Ray worker (a module-level function, so workers import it by name)."""
    from wsolbench.config import config_from_dict
    from wsolbench.runner import train_and_evaluate

    result = train_and_evaluate(config_from_dict(config), output_dir=Path(output_dir), rerun=rerun, resume=resume,
                                command=command)
    return {"record": result.record, "path": str(result.path), "reused": result.reused}


def _cause(exc: BaseException) -> BaseException:
    """The worker's own exception inside a RayTaskError (``cause``), else ``exc``."""
    return getattr(exc, "cause", None) or exc


def _message(exc: BaseException) -> str:
    cause = _cause(exc)
    if isinstance(cause, WsolbenchError):
        return one_line(cause)
    return f"{type(cause).__name__}: {one_line(cause)}"


def _check_feasible(configs: Sequence[RunConfig], cluster: dict[str, float]) -> None:
    """A task asking more CPUs or GPUs than the whole cluster has would wait forever: refuse it up front."""
    for cfg in configs:
        asked = task_resources(cfg, cluster.get("GPU", 0.0))
        for key, kind in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            if asked[key] > cluster.get(kind, 0.0):
                raise ConfigError(f"run {cfg.name} asks for {asked[key]:g} {kind}(s) but the Ray cluster has "
                                  f"{cluster.get(kind, 0.0):g} (set resources.{key}, or --device cpu)")


def run_on_ray(configs: Sequence[RunConfig], ctx: BenchContext, *, address: str | None = None) -> None:
    """Submit every claimable run as a Ray task, wait for all, and store each outcome (see the module docstring).

    Joins ``address`` (``auto``: the cluster of ``ray start`` on this machine), or an already initialised Ray, or
    starts a local Ray (shut down at the end).
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot start or join Ray (--ray-address {address or 'none: local'}): "
                              f"{one_line(exc)}") from None
    try:
        cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
        _check_feasible(configs, cluster)
        _submit_and_wait(ray, configs, ctx, cluster)
    finally:
        if started:
            ray.shutdown()


def _submit_and_wait(ray: Any, configs: Sequence[RunConfig], ctx: BenchContext, cluster: dict[str, float]) -> None:
    task = ray.remote(_train_task)
    pending: dict[Any, RunConfig] = {}
    with Heartbeat(ctx.store) as beat:
        try:
            for cfg in configs:
                if not claim_run(cfg, ctx):
                    continue
                options = task_resources(cfg, cluster.get("GPU", 0.0))
                ref = task.options(**options, max_retries=0, name=f"wsolbench:{cfg.name}").remote(
                    cfg.to_dict(), str(Path(ctx.output_dir).resolve()), ctx.rerun, resume_flag(cfg, ctx), ctx.command)
                pending[ref] = cfg
                beat.add(cfg.config_hash())
            ctx.progress.log(f"ray: {len(pending)} run(s) submitted")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    cfg = pending.pop(ref)
                    beat.discard(cfg.config_hash())
                    _collect(ray, ref, cfg, ctx)
        except BaseException:
            for ref, cfg in pending.items():  # stopped early: nobody will finish these here
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone: nothing to cancel
                    pass
                ctx.store.release(cfg.config_hash(), "cancelled")
            raise


def _collect(ray: Any, ref: Any, cfg: RunConfig, ctx: BenchContext) -> None:
    try:
        out = ray.get(ref)
    except Exception as exc:  # the task's error (RayTaskError wrapping the worker's), or a lost worker
        run_failed(cfg, ctx, _message(exc))
        cause = _cause(exc)
        if isinstance(cause, WsolbenchError) and cause.exit_code == 2:
            raise cause from None
        return
    result = RunResult(out["record"], Path(out["path"]), reused=out["reused"])
    run_complete(cfg, ctx, result)
    ctx.progress.log(f"{cfg.name}: {'reused' if result.reused else 'done'} ({result.path})")
