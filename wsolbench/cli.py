"""The ``wsolbench`` command line: parse, call one library function, print.

Results go to stdout, progress and messages to stderr. A user error prints one
line ``error: ...`` and exits with 2 (usage) or 1 (a check or run failed); a
traceback only with ``--debug`` (before that line; the exit code stays). Ctrl-C
prints one line saying what was kept and how to continue, and exits with 130.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from wsolbench import __version__
from wsolbench.cli_support import INTERRUPTED_EXIT_CODE, INVOKED_KEY, interrupted_message, lift_debug
from wsolbench.config import (BENCH_OBJECTIVES, DEFAULT_BENCH, DEFAULT_SEEDS, PRESETS, RunConfig, load_config,
                              merge_dicts, parse_overrides)
from wsolbench.errors import ConfigError, WsolbenchError


def _registry(kind: str) -> Any:
    """The registry of ``kind``, imported when first needed (so ``--help`` of other commands stays fast)."""
    if kind == "method":
        from wsolbench.methods import METHODS

        return METHODS
    if kind == "objective":
        from wsolbench.objectives import OBJECTIVES

        return OBJECTIVES
    from wsolbench.cams import CAMS

    return CAMS


class RegistryName(click.ParamType):
    """A registered name (or, with ``many``, a comma-separated list of them): choices and help read the
    registry; an unknown name is a usage error listing the known ones."""

    def __init__(self, kind: str, many: bool = False) -> None:
        self.kind, self.many = kind, many
        self.name = kind

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        names = "|".join(_registry(self.kind).names())
        return f"[{names}]" + (",..." if self.many else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (tuple, list)):
            return value
        names = [v.strip() for v in str(value).split(",")] if self.many else [str(value)]
        registry = _registry(self.kind)
        for name in names:
            if not name or name not in registry:
                known = ", ".join(registry.names())
                raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})")
        return tuple(names) if self.many else names[0]


class _Command(click.Command):
    """A subcommand that leaves its name and parsed parameters to the group (``ctx.meta`` is shared), which
    names its output folder when it is interrupted."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[INVOKED_KEY] = (ctx.info_name, dict(ctx.params))
        return super().invoke(ctx)


class _Group(click.Group):
    """Turns wsolbench's user-facing errors and a Ctrl-C into one line and an exit code (after the traceback
    with ``--debug``, which is accepted anywhere before a bare ``--``)."""

    command_class = _Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift_debug(args))

    def invoke(self, ctx: click.Context) -> Any:
        global _INVOKED_ARGS
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        _INVOKED_ARGS = [*protected, *ctx.args]
        try:
            return super().invoke(ctx)
        except WsolbenchError as exc:
            _fail(ctx, f"error: {exc}", exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            command, params = ctx.meta.get(INVOKED_KEY, (None, {}))
            _fail(ctx, interrupted_message(command, params), INTERRUPTED_EXIT_CODE)


def _fail(ctx: click.Context, line: str, exit_code: int) -> None:
    """The traceback of the exception being handled (with ``--debug``), then ``line``; exit with ``exit_code``."""
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exc(file=sys.stderr)
    click.echo(line, err=True)
    ctx.exit(exit_code)


class RichProgress:
    """The library's progress protocol on a rich progress bar (stderr)."""

    def __init__(self, enabled: bool) -> None:
        import os

        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and os.environ.get("RANK", "0") == "0"  # one bar under torchrun

    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Any]:
        if not self.enabled:
            yield lambda n: None
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False, soft_wrap=True)  # one line, as given


#: The subcommand and its arguments as given (set when the group dispatches; also under click's test runner).
_INVOKED_ARGS: list[str] = []


def _command_line() -> str:
    """The command line as a user would type it again: ``wsolbench <subcommand> <arguments>``."""
    argv = sys.argv
    if argv and Path(argv[0]).name == "wsolbench":
        return shlex.join(["wsolbench", *argv[1:]])
    if _INVOKED_ARGS:
        return shlex.join(["wsolbench", *_INVOKED_ARGS])
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx else "wsolbench"


def _run_options(func: Any, *, presets: tuple[str, ...] = (),
                 preset_help: str = "Starting configuration (default: quick, or the config file's own 'preset:').") -> Any:
    options = [
        click.option("--preset", type=click.Choice(sorted(presets or PRESETS)), default=None, help=preset_help),
        click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
                     help="A YAML or JSON config file (sections: data, model, method, objective, optim, eval, train)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override one config value, e.g. --set optim.lr=0.01 (repeatable)."),
        click.option("--output-dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
                     help="Where run folders, leaderboards and plots are written."),
        click.option("--dataset", default=None,
                     help="synthetic or digits (built in), manifest (--set data.manifest=DIR) or a real dataset: "
                          "cub, imagenet, openimages, voc, pet, wsolevaluation."),
        click.option("--data-root", type=click.Path(path_type=Path), default=None,
                     help="The raw dataset folder, laid out as its publisher ships it."),
        click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: auto)."),
        click.option("--seed", type=int, default=None, help="Seed for initialisation, data order and augmentation."),
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."),
        click.option("--rerun", is_flag=True, help="Run again even when a finished run of the same config exists."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _resolve(preset: str | None, config_path: Path | None, sets: tuple[str, ...], *, dataset: str | None = None,
             data_root: Path | None = None, **flags: Any) -> RunConfig:
    overrides = parse_overrides(sets)
    data = {k: v for k, v in (("dataset", dataset), ("root", str(data_root) if data_root else None)) if v}
    if data:
        overrides = merge_dicts(overrides, {"data": data})
    top = {k: v for k, v in flags.items() if v is not None}
    if top:
        overrides = merge_dicts(overrides, top)
    if config_path is None and preset is None:
        preset = "quick"
    return load_config(preset_name=preset, path=config_path, overrides=overrides)


def _print_leaderboard(frame: Any, *, sort_by: str = "MaxBoxAccV2", baseline: str | None = "ce") -> None:
    """The compact aggregated leaderboard (the tables of leaderboard.md) on the console, narrowed to fit it."""
    from wsolbench.report.terminal import print_leaderboard

    print_leaderboard(frame, sort_by=sort_by, baseline=baseline)


def _write_reports(records: list[Any], output_dir: Path, command: str, *, baseline: str | None = "ce",
                   sort_by: str = "MaxBoxAccV2", n_resamples: int = 1000, published: Any = None) -> Any:
    """runs.csv, leaderboard.csv / .md (aggregated over seeds, intervals against ``baseline``) and the plot;
    ``records`` are ``(record, run_dir)`` pairs, or records whose run folders are found under ``output_dir``."""
    from wsolbench.report import leaderboard_frame, plot_entropy_vs_accuracy, plot_threshold_sweeps, write_leaderboard
    from wsolbench.report.leaderboard import localization_metric, runs_frame, with_run_dirs, write_runs

    pairs = with_run_dirs(records, output_dir)
    runs = runs_frame(pairs)
    frame = leaderboard_frame(runs, baseline=baseline, sort_by=sort_by, n_resamples=n_resamples)
    csv_path, md_path = write_leaderboard(frame, output_dir, command=command, sort_by=sort_by, baseline=baseline,
                                          n_resamples=n_resamples, published=published)
    outputs = [write_runs(runs, output_dir), csv_path, md_path]
    metric = localization_metric(frame, sort_by)
    if not frame.empty and "entropy_norm" in frame and metric is not None:
        outputs.append(plot_entropy_vs_accuracy(frame, output_dir / "entropy_vs_accuracy.png", metric=metric))
    plain = [record for record, _ in pairs]
    if any((r.get("test") or {}).get("boxes") or (r.get("test") or {}).get("masks") for r in plain):
        outputs.append(plot_threshold_sweeps(plain, output_dir / "threshold_sweeps.png"))
    for path in outputs:
        click.echo(f"wrote {path}", err=True)
    return frame


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsolbench")
@click.option("--debug", is_flag=True,
              help="Show the traceback of an error (then its one line and exit code). Accepted anywhere before a "
                   "bare '--': wsolbench bench --debug ... works too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """wsolbench: benchmark weakly supervised object localization (WSOL) objectives and methods."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _flatten(values: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    return tuple(name for group in values for name in group)


def _int_list(text: str | None) -> list[int]:
    """``--seeds 0,1,2`` -> ``[0, 1, 2]`` (a usage error names the bad item)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {text!r}") from None


def _report_bench(outcome: Any, total: int, *, workers: int = 1) -> None:
    """Who did what: the runs this process trained, those done earlier or by others, those others still hold
    (with ``workers`` > 1: those this bench's workers were training when this process ran out of runs)."""
    parts = [f"{len(outcome.trained)} trained here", f"{len(outcome.reused)} done earlier or by other processes"]
    if outcome.failures:
        parts.append(f"{len(outcome.failures)} failed here")
    if outcome.failed_elsewhere:
        parts.append(f"{len(outcome.failed_elsewhere)} failed in other processes")
    if outcome.held and workers > 1:
        parts.append(f"{len(outcome.held)} finished by its {workers - 1} worker process(es) after this one's")
    elif outcome.held:
        parts.append(f"{len(outcome.held)} still held by other processes ({', '.join(outcome.held)})")
    click.echo(f"bench: {total} runs: " + ", ".join(parts), err=True)
    for name, message in outcome.failed_elsewhere:
        click.echo(f"warning: run {name} failed in another process: {message}", err=True)


@cli.command()
@_run_options
@click.option("--grid", "grid_path", type=click.Path(path_type=Path), default=None,
              help="A grid file (YAML: preset, set, axes); flags add axes and win over the file's.")
@click.option("--method", "methods", multiple=True, type=RegistryName("method", many=True),
              help="WSOL methods to compare (comma-separated or repeated; default: the config's, cam).")
@click.option("--objective", "objectives", multiple=True, type=RegistryName("objective", many=True),
              help=f"Objectives to compare (comma-separated or repeated; default without --grid: "
                   f"{', '.join(BENCH_OBJECTIVES)}).")
@click.option("--cam", "cams", multiple=True, type=RegistryName("cam", many=True),
              help="CAM extractors the runs are evaluated with (comma-separated or repeated; default: cam).")
@click.option("--backbone", "backbones", multiple=True,
              help="Backbones (comma-separated or repeated; default: the config's).")
@click.option("--seeds", default=None, help="Seeds as an axis, e.g. 0,1,2 (--seed sets the one seed of every run).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one run after the other in this process; ray: one Ray task per run.")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (auto: the one 'ray start' made on this machine); default: a local Ray.")
@click.option("--workers", type=int, default=None,
              help="Local processes training runs side by side (default: 1; the default bench: 2 on a machine with "
                   "2 or more cores, each with one torch thread).")
@click.option("--dry-run", is_flag=True, help="Print the runs, how many are done and the time left; train nothing.")
def bench(preset: str | None, config_path: Path | None, sets: tuple[str, ...], output_dir: Path,
          dataset: str | None, data_root: Path | None, device: str | None, seed: int | None,
          threads: int | None, rerun: bool, resume: bool, progress: bool, grid_path: Path | None,
          methods: tuple[tuple[str, ...], ...], objectives: tuple[tuple[str, ...], ...],
          cams: tuple[tuple[str, ...], ...], backbones: tuple[str, ...], seeds: str | None, executor: str,
          ray_address: str | None, workers: int | None, dry_run: bool) -> None:
    """Train and evaluate a grid of runs under one identical protocol; write a leaderboard and a plot.

    Axes: methods x objectives (x strengths, seeds, CAM extractors, backbones, any config key), from a
    grid file and flags. '--set objective.lam=0.1,1' is an axis that goes to every objective of the grid
    that has 'lam' (likewise 'method.*'); a parameter none of them has is refused. Finished runs are
    reused, interrupted ones resumed, failed ones retried; several bench processes may share one
    --output-dir (results.sqlite claims each run for one of them). Without --preset, --config, --grid or
    --dataset it is the default bench: both built-in datasets (presets quick and quick-digits) x the four
    objectives x seeds 0,1,2, one torch thread per run (deterministic: it reproduces
    leaderboards/default-bench) and two worker processes where there are two cores.
    """
    from wsolbench.bench import axes_from_sets, grid_configs, name_by_dataset, read_grid_file

    grid = read_grid_file(grid_path) if grid_path is not None else None
    flag_axes = axes_from_sets(sets)
    named = {"method.name": _flatten(methods), "objective.name": _flatten(objectives), "eval.cam": _flatten(cams),
             "model.backbone": tuple(b.strip() for group in backbones for b in group.split(",") if b.strip()),
             "seed": _int_list(seeds)}
    flag_axes.update({key: list(values) for key, values in named.items() if values})
    default_axes = {} if grid is not None else {"objective.name": list(BENCH_OBJECTIVES)}
    default_bench = preset is None and config_path is None and grid is None and dataset is None
    if default_bench and "seed" not in flag_axes and seed is None:
        flag_axes["seed"] = list(DEFAULT_SEEDS)
    if default_bench:
        import os

        threads = 1 if threads is None else threads
        workers = min(2, os.cpu_count() or 1) if workers is None else workers
    configs = []
    for name in DEFAULT_BENCH if default_bench else (preset or (grid.preset if grid else None),):
        base = _resolve(name, config_path, (), dataset=dataset, data_root=data_root, device=device, seed=seed,
                        threads=threads)
        expanded = grid_configs(base, grid=grid, flag_axes=flag_axes, default_axes=default_axes)
        if default_bench:  # two datasets under one name scheme: say which in the run name
            expanded = name_by_dataset(expanded)
        configs += expanded
    _execute(configs, output_dir, dry_run=dry_run, progress=progress, rerun=rerun, resume=resume,
             executor=executor, ray_address=ray_address, workers=1 if workers is None else workers,
             after=lambda frame: _print_leaderboard(frame))


def _execute(configs: Any, output_dir: Path, *, dry_run: bool, progress: bool, rerun: bool, resume: bool,
             executor: str, ray_address: str | None, after: Any, workers: int = 1, **report_options: Any) -> None:
    """Run a bench's configs (or print the plan with ``dry_run``) in this process and ``workers - 1`` more,
    write its own and the folder-wide reports under the store's lock, call ``after(frame)`` with the bench's
    aggregated leaderboard, report who did what, and exit 1 when a run of this process or a worker failed."""
    from wsolbench.bench import grid_records, plan_bench, plan_lines, report_lock, run_bench
    from wsolbench.bench.workers import check_workers, is_worker, start_workers, wait_workers

    check_workers(workers, executor)
    if dry_run:
        for line in plan_lines(plan_bench(configs, output_dir=output_dir)):
            click.echo(line)
        return
    started = start_workers(workers - 1, _INVOKED_ARGS, output_dir) if workers > 1 and not is_worker() else []
    outcome = run_bench(configs, output_dir=output_dir, progress=RichProgress(progress), rerun=rerun,
                        resume=resume, executor=executor, ray_address=ray_address, command=_command_line())
    worker_failures = wait_workers(started)
    with report_lock(output_dir):  # read and write under the lock: the last writer has every finished run
        records = grid_records(configs, output_dir)
        if records:
            after(_write_bench_reports(records, configs, output_dir, **report_options))
    _report_bench(outcome, len(configs), workers=len(started) + 1)
    for message in worker_failures:
        click.echo(f"error: {message}", err=True)
    if outcome.failures or worker_failures:
        for name, message in outcome.failures:
            click.echo(f"error: run {name} failed: {message}", err=True)
        sys.exit(1)


def _sweep_run_options(func: Any) -> Any:
    from wsolbench.bench.sweep import SWEEP_PRESETS

    return _run_options(func, presets=(*PRESETS, *SWEEP_PRESETS),
                        preset_help="A sweep preset (" + ", ".join(SWEEP_PRESETS) + ": its datasets, lines and "
                                    "seeds; --objective/--values and --seeds replace its own) or a run preset "
                                    "(the base config; default: quick).")


@cli.command()
@_sweep_run_options
@click.option("--objective", "objectives", multiple=True, metavar="NAME[(KEY=V,...)]",
              help="A regularizer to sweep, e.g. kl_uniform or kl_uniform(normalize_loss_scale=true); repeat it, "
                   "each with its own --values.")
@click.option("--values", "values", multiple=True, metavar="V1,V2,...",
              help="The strengths of the --objective in the same position (its declared strength: lam, eps, beta).")
@click.option("--seeds", default=None, help="Seeds of every strength and of the baseline (default: 0,1,2, or the "
                                            "sweep preset's).")
@click.option("--method", "methods", multiple=True, type=RegistryName("method", many=True),
              help="WSOL methods (comma-separated or repeated; default: the config's, cam).")
@click.option("--baseline", default="ce", show_default=True, help="The objective every strength is compared with.")
@click.option("--metric", default="MaxBoxAccV2", show_default=True,
              help="The strength is chosen by this metric's mean over seeds on val (never on test).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, help="Ray cluster to join (default: a local Ray).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes training runs side by side (use --threads 1 with more than one on CPU).")
@click.option("--dry-run", is_flag=True, help="Print the runs, how many are done and the time left; train nothing.")
def sweep(preset: str | None, config_path: Path | None, sets: tuple[str, ...], output_dir: Path,
          dataset: str | None, data_root: Path | None, device: str | None, seed: int | None,
          threads: int | None, rerun: bool, resume: bool, progress: bool, objectives: tuple[str, ...],
          values: tuple[str, ...], seeds: str | None, methods: tuple[tuple[str, ...], ...], baseline: str, metric: str,
          executor: str, ray_address: str | None, workers: int, dry_run: bool) -> None:
    """Sweep regularizer strengths with seeds, choose each strength on val, report test there beside the baseline.

    Writes the bench's outputs (leaderboard with paired intervals, entropy-vs-accuracy plot with one line per
    regularizer and the val-chosen strength ringed, threshold sweeps) and sweep.md: per regularizer, the
    strength chosen by the val mean of --metric and its test numbers next to the baseline, with the paired
    bootstrap interval. '--set objective.KEY=V' goes to every swept objective that has KEY. '--preset entropy'
    is the built-in sweep: both built-in datasets, KL-uniform (plain and with normalize_loss_scale) and label
    smoothing through their strengths, seeds 0, 1 (wsolbench sweep --preset entropy --dry-run lists the runs).
    """
    from wsolbench.bench import name_by_dataset
    from wsolbench.bench.sweep import SWEEP_PRESETS, lines_from_flags, sweep_configs, with_fixed
    from wsolbench.metrics.table import metric as metric_entry

    metric_entry(metric)  # ConfigError on an unknown metric
    named = SWEEP_PRESETS.get(preset or "")
    if named is not None and (config_path is not None or dataset is not None):
        raise ConfigError(f"--preset {preset} names its own datasets ({', '.join(named.presets)}); leave out "
                          "--config and --dataset, or sweep one run preset with --objective/--values")
    rest = tuple(item for item in sets if not item.strip().startswith("objective."))
    fixed = parse_overrides([item for item in sets if item.strip().startswith("objective.")]).get("objective", {})
    lines = named.lines if named is not None and not objectives and not values else lines_from_flags(objectives,
                                                                                                    values)
    lines = with_fixed(lines, fixed)
    seed_list = _int_list(seeds) if seeds is not None else list(named.seeds if named is not None else (0, 1, 2))
    method_names = list(_flatten(methods))
    configs = []
    for name in named.presets if named is not None else (preset,):
        base = _resolve(name, config_path, rest, dataset=dataset, data_root=data_root, device=device, seed=seed,
                        threads=threads)
        expanded = sweep_configs(base, lines, seeds=seed_list, baseline=baseline,
                                 axes={"method.name": method_names} if method_names else None)
        if named is not None and len(named.presets) > 1:  # several datasets under one name scheme: say which
            expanded = name_by_dataset(expanded)
        configs += expanded

    def after(frame: Any) -> None:
        text = _write_sweep(frame, bench_dir(configs, output_dir), baseline=baseline, metric=metric)
        _write_sweep(frame, output_dir, baseline=baseline, metric=metric)
        click.echo(text)

    _execute(configs, output_dir, dry_run=dry_run, progress=progress, rerun=rerun, resume=resume,
             executor=executor, ray_address=ray_address, workers=workers, after=after, baseline=baseline,
             sort_by=metric)


def bench_dir(configs: Any, output_dir: Path) -> Path:
    """``<output>/benches/<hash>/``: one bench's own reports (the hash of its runs' config hashes)."""
    from wsolbench.config import stable_hash

    return Path(output_dir) / "benches" / stable_hash(sorted(c.config_hash() for c in configs), length=8)


def _write_bench_reports(records: list[Any], configs: Any, output_dir: Path, **options: Any) -> Any:
    """A bench's own leaderboard and plots (its runs only) under :func:`bench_dir`, and the folder-wide ones
    (every readable record under ``output_dir``, grouped by protocol) in ``output_dir``; returns the bench's
    aggregated frame."""
    from wsolbench._io import ensure_writable_dir
    from wsolbench.errors import DataError
    from wsolbench.records import find_records, load_record

    own = _write_reports(records, ensure_writable_dir(bench_dir(configs, output_dir)), _command_line(), **options)
    everything = []
    for path in find_records(output_dir):
        try:
            everything.append((load_record(path), path.parent))
        except DataError as exc:
            click.echo(f"warning: {exc} (left out of the folder-wide leaderboard)", err=True)
    _write_reports(everything, output_dir, f"wsolbench leaderboard {shlex.quote(str(output_dir))}", **options)
    return own


def _write_sweep(frame: Any, output_dir: Path, *, baseline: str, metric: str) -> str:
    """sweep.md: the val-chosen strength of every regularizer, test beside the baseline; returns its text."""
    from wsolbench._io import atomic_write_text
    from wsolbench.report.sweep import sweep_markdown, sweep_tables

    lines = ["# wsolbench sweep", "", f"Made by: `{_command_line()}`", "",
             f"Each regularizer's strength is chosen by the mean over seeds of val {metric} (never test); the "
             f"numbers are test, percent, mean ± sample std over seeds; Δ is the chosen strength minus the "
             f"baseline {baseline} with its 95% paired bootstrap interval over test images (* when it excludes "
             "zero). Every strength is in leaderboard.md; the plot is entropy_vs_accuracy.png.", ""]
    tables = sweep_tables(frame, baseline=baseline, metric=metric)
    for title, table in tables:
        lines += [f"## {title}", "", sweep_markdown(table, metric=metric), ""]
    if not tables:
        lines += ["No regularizer with a baseline and val numbers to choose from.", ""]
    text = "\n".join(lines)
    path = atomic_write_text(output_dir / "sweep.md", text)
    click.echo(f"wrote {path}", err=True)
    return text


@cli.command()
@_run_options
@click.option("--method", default=None, type=RegistryName("method"), help="WSOL method (default: the config's, cam).")
@click.option("--objective", default=None, type=RegistryName("objective"),
              help="Objective (default: the config's, ce).")
@click.option("--cam", default=None, type=RegistryName("cam"), help="CAM extractor for evaluation (default: cam).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary (its record's 'summary') as JSON.")
def train(preset: str | None, config_path: Path | None, sets: tuple[str, ...], output_dir: Path,
          dataset: str | None, data_root: Path | None, device: str | None, seed: int | None,
          threads: int | None, rerun: bool, resume: bool, progress: bool, method: str | None,
          objective: str | None, cam: str | None, as_json: bool) -> None:
    """Train and evaluate one run; writes its record.json, model.pt and per-image outcomes under --output-dir.

    Prints the test split's headline numbers (--json: the run's whole summary), and one line per epoch on stderr
    (with or without progress bars): loss, training top-1, learning rate, the val score when selecting on val.
    """
    from wsolbench.runner import train_and_evaluate

    named = [f"method.name={method}"] if method else []
    named += [f"objective.name={objective}"] if objective else []
    named += [f"eval.cam={cam}"] if cam else []
    cfg = _resolve(preset, config_path, (*named, *sets), dataset=dataset, data_root=data_root, device=device,
                   seed=seed, threads=threads)
    result = train_and_evaluate(cfg, output_dir=output_dir, progress=RichProgress(progress), rerun=rerun,
                                resume=resume, command=_command_line())
    summary = result.record["summary"]
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        from wsolbench.report.run_summary import summary_lines

        title = f"{summary['name']} (config {summary['config_hash']}): test, CAM threshold chosen on val"
        click.echo("\n".join(summary_lines(title, {"test": summary})))
    if result.reused:
        click.echo(f"reused {result.path} (a finished run of the same config; --rerun trains again)", err=True)
    else:
        click.echo(f"wrote {result.path}", err=True)


@cli.command()
@click.argument("run", type=click.Path(path_type=Path, exists=True))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override an eval setting, e.g. --set eval.threshold_step=0.001.")
@click.option("--cam", default=None, type=RegistryName("cam"),
              help="Evaluate with another CAM extractor (e.g. gradcampp); the run's own by default.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole result, curves included, as JSON (default: the val and test headline numbers).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate(run: Path, sets: tuple[str, ...], cam: str | None, device: str | None, as_json: bool,
             progress: bool) -> None:
    """Re-evaluate a finished run (its folder or record.json) from its saved method state on val and test."""
    from wsolbench.runner import evaluate_run

    overrides = parse_overrides(sets)
    if set(overrides) - {"eval"}:
        raise ConfigError(f"evaluate only overrides eval.* settings, got {', '.join(sorted(overrides))}")
    if cam:
        overrides = merge_dicts(overrides, {"eval": {"cam": cam}})
    result = evaluate_run(run, eval_overrides=overrides.get("eval"), device=device,
                          progress=RichProgress(progress))
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    from wsolbench.report.run_summary import summary_lines

    conventions = result["selection"]["conventions"]
    stage = f", stage {conventions['cam_stage']}" if conventions.get("cam_stage") else ""
    title = f"{result['name']} (config {result['config_hash']}): CAM {conventions['cam']}{stage}"
    click.echo("\n".join(summary_lines(title, {split: result[split]["summary"] for split in ("val", "test")
                                               if split in result})))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print every preset's resolved config as JSON.")
def presets(as_json: bool) -> None:
    """List the named configurations (--preset) with their protocol and source."""
    from rich.console import Console
    from rich.table import Table

    from wsolbench.config import preset

    if as_json:
        click.echo(json.dumps({name: preset(name).to_dict() for name in PRESETS}, indent=1))
        return
    table = Table(title="wsolbench presets")
    for col in ("preset", "dataset", "backbone", "epochs", "batch", "optimizer", "lr", "schedule", "input",
                "source"):
        table.add_column(col)
    for name, entry in PRESETS.items():
        cfg = preset(name)
        schedule = cfg.optim.schedule + (f" x0.1/{cfg.optim.step_every}ep" if cfg.optim.schedule == "step" else "")
        table.add_row(name, cfg.data.dataset, cfg.model.backbone, str(cfg.optim.epochs), str(cfg.data.batch_size),
                      cfg.optim.optimizer, f"{cfg.optim.lr:g}", schedule, str(cfg.data.input_size),
                      entry.source)
    console = Console() if Console().is_terminal else Console(width=200)
    console.print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print every method's parameters and defaults as JSON.")
def methods(as_json: bool) -> None:
    """List the registered WSOL methods (--method) with their paper, phases and parameter defaults."""
    from rich.console import Console
    from rich.table import Table

    from wsolbench.config import to_dict
    from wsolbench.methods import METHODS

    rows = {}
    for name in METHODS.names():
        cls = METHODS.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        rows[name] = {"summary": doc[0] if doc else "", "phases": list(cls.phases), "params": to_dict(cls.Config())}
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = Table(title="wsolbench methods (--method NAME --set method.PARAM=VALUE)")
    for col in ("method", "paper / summary", "phases", "parameters (defaults)"):
        table.add_column(col)
    for name, row in rows.items():
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        table.add_row(name, row["summary"], ", ".join(row["phases"]), params)
    console = Console() if Console().is_terminal else Console(width=200)
    console.print(table)


def _leaderboard_options(func: Any) -> Any:
    """--baseline, --sort-by and --bootstrap: how a leaderboard compares, orders and bounds its settings."""
    options = [
        click.option("--baseline", default="ce", show_default=True,
                     help="What each setting is compared with: an objective label or name (ce, "
                          "kl_uniform(lam=0.3)), or AXIS=VALUE for another axis (method=cam, cam=gradcam, "
                          "backbone=resnet50); 'none': no Δ."),
        click.option("--sort-by", default="MaxBoxAccV2", show_default=True, metavar="METRIC",
                     help="Metric the rows are sorted by, best first (a key of the metric table: PxAP, top1, ...)."),
        click.option("--bootstrap", "n_resamples", type=click.IntRange(min=0), default=1000, show_default=True,
                     help="Paired bootstrap resamples over test images for the 95% intervals (0: differences only)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@click.argument("runs_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the leaderboard (default: RUNS_DIR).")
@_leaderboard_options
@click.option("--with-published", is_flag=True,
              help="Show the published numbers of the same dataset and backbone (leaderboards/published/).")
@click.option("--published-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of published-number CSVs (default: the checkout's leaderboards/published).")
def leaderboard(runs_dir: Path, output_dir: Path | None, baseline: str, sort_by: str, n_resamples: int,
                with_published: bool, published_dir: Path | None) -> None:
    """Rebuild runs.csv, leaderboard.csv, leaderboard.md and entropy_vs_accuracy.png from the run records under
    RUNS_DIR: one row per setting (mean ± std over seeds), each compared with its baseline."""
    from wsolbench._io import ensure_writable_dir
    from wsolbench.errors import DataError
    from wsolbench.metrics.table import metric
    from wsolbench.errors import CheckFailed
    from wsolbench.records import failed_runs, find_records, load_record
    from wsolbench.report.published import load_published
    from wsolbench.report.significance import parse_baseline

    metric(sort_by)  # ConfigError on an unknown metric
    chosen = None if baseline.strip().lower() == "none" else baseline
    if chosen is not None:
        parse_baseline(chosen)
    published = load_published(published_dir) if with_published or published_dir else None
    paths = find_records(runs_dir)
    if not paths:
        raise DataError(f"no run records (record.json) under {runs_dir}")
    pairs, unreadable = [], []
    for path in paths:
        try:
            pairs.append((load_record(path), path.parent))
        except DataError as exc:  # one broken record does not hide the others
            unreadable.append(str(exc))
    if not pairs:
        raise DataError(f"no readable run record under {runs_dir}: {unreadable[0]}")
    out = ensure_writable_dir(output_dir or runs_dir)
    frame = _write_reports(pairs, out, _command_line(), baseline=chosen, sort_by=sort_by, n_resamples=n_resamples,
                           published=published)
    if sort_by not in frame.columns:
        click.echo(f"warning: no run has {sort_by}; sorted by the next of MaxBoxAccV2, PxAP, mPxAP, top1", err=True)
    if chosen is not None and "is_baseline" in frame and not frame["is_baseline"].any():
        click.echo(f"warning: no setting is the baseline {chosen!r}: no differences", err=True)
    _print_leaderboard(frame, sort_by=sort_by, baseline=chosen)
    for name, path, error in failed_runs(runs_dir):
        click.echo(f"failed run {name} ({path}): {error}", err=True)
    if unreadable:
        for message in unreadable:
            click.echo(f"error: {message}", err=True)
        raise CheckFailed(f"{len(unreadable)} unreadable run record(s) under {runs_dir} left out of the leaderboard "
                          f"(built from the other {len(pairs)})")


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, value %, best threshold)`` rows of an evaluate-cams report, headline metrics then per-class PxAP.

    The headline metrics are the metric table's percentages present in the
    report, in table order, under their table keys.
    """
    from wsolbench.metrics.table import METRICS

    rows = []
    best = report.get("best_threshold", {})
    for m in METRICS:
        if m.unit == "%" and m.key in report:
            t = best.get(m.key)
            rows.append((m.key, f"{report[m.key]:.2f}", "-" if t is None else f"{t:.3f}"))
    names = report.get("class_names")
    for c, value in report.get("PxAP_per_class", {}).items():
        if value is not None:
            label = f"PxAP class {c}" + (f" ({names[int(c)]})" if names else "")
            rows.append((label, f"{value:.2f}", "-"))
    return rows


def summary_footer(report: dict[str, Any]) -> str:
    """One line of the options that produced an evaluate-cams ``report``."""
    parts = [f"images {report['n_images']}", f"missing {report['n_missing']}", f"extra {report['n_extra']}",
             f"resolution {report['resolution']}", f"threshold step {report['threshold_step']:g}"]
    if "n_pairs" in report:
        parts.insert(1, f"(image, class) pairs {report['n_pairs']}")
    loc = report.get("loc_threshold")
    if loc:
        parts.append(f"Loc at threshold {loc['threshold']:.3f} ({loc['selected']}; IoU {loc['iou']}, "
                     f"{loc['contours']} contour)")
    return ", ".join(parts)


@cli.command("evaluate-cams")
@click.option("--scoremaps", type=click.Path(path_type=Path), required=True,
              help="Folder of <image_id>.npy score maps (float32/float64, in [0, 1]); "
                   "<class>/<image_id>.npy with --multiclass.")
@click.option("--manifest", "manifest_dir", type=click.Path(path_type=Path), default=None,
              help="A wsolbench manifest folder (with --split).")
@click.option("--split", default=None, help="Manifest split to evaluate [default: test].")
@click.option("--metadata", "metadata_dir", type=click.Path(path_type=Path), default=None,
              help="A split folder of the community metadata format (image_ids.txt, class_labels.txt, "
                   "image_sizes.txt, localization.txt), e.g. metadata/CUB/test.")
@click.option("--mask-root", type=click.Path(path_type=Path), default=None,
              help="Folder the mask paths of --metadata's localization.txt are relative to.")
@click.option("--predictions", type=click.Path(path_type=Path), default=None,
              help="'id,predicted_class' lines: adds Top-1 Loc.")
@click.option("--threshold-step", type=float, default=0.01, show_default=True,
              help="CAM thresholds are 0, step, 2*step, ... < 1; step in (0, 0.5] (as eval.threshold_step).")
@click.option("--resolution", type=int, default=None, help="Score map side in pixels [default: 224].")
@click.option("--loc-threshold", type=float, default=None,
              help="CAM threshold for Top-1 / GT-known Loc (e.g. 0.15, or one chosen on val); "
                   "default: the best GT-known Loc on this split.")
@click.option("--loc-contours", type=click.Choice(["largest", "all"]), default="largest", show_default=True,
              help="Boxes for Top-1 / GT-known Loc.")
@click.option("--multiclass", is_flag=True,
              help="Per-class maps against class-index masks (VOC style): report mPxAP.")
@click.option("--allow-missing", is_flag=True, help="Skip images without a map and ignore extra maps (counted).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Maps read at a time.")
@click.option("--workers", type=int, default=None,
              help="Threads decoding masks and evaluating maps [default: every CPU available].")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where the ground truth read at the resolution is cached [default: $WSOLBENCH_CACHE_DIR, "
                   "else $XDG_CACHE_HOME/wsolbench, else ~/.cache/wsolbench].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the ground-truth cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result, curves included, as one JSON object.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate_cams(scoremaps: Path, manifest_dir: Path | None, split: str | None, metadata_dir: Path | None,
                  mask_root: Path | None, predictions: Path | None, threshold_step: float,
                  resolution: int | None, loc_threshold: float | None, loc_contours: str, multiclass: bool,
                  allow_missing: bool, batch_size: int, workers: int | None, cache_dir: Path | None,
                  no_cache: bool, as_json: bool, progress: bool) -> None:
    """Evaluate saved score maps of any model against a manifest split or community metadata."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from wsolbench.scoremaps import evaluate_cams as run_evaluation
    from wsolbench.structs import EVAL_RESOLUTION

    report = run_evaluation(
        scoremaps=scoremaps, manifest=manifest_dir, split=split, metadata=metadata_dir, mask_root=mask_root,
        predictions=predictions, multiclass=multiclass, threshold_step=threshold_step,
        resolution=EVAL_RESOLUTION if resolution is None else resolution, loc_threshold=loc_threshold,
        loc_contours=loc_contours, allow_missing=allow_missing, batch_size=batch_size,
        progress=RichProgress(progress), workers=workers, cache_dir=cache_dir, use_cache=not no_cache,
        fast_start=True)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    console = Console() if Console().is_terminal else Console(width=120)
    source = " ".join(f"{k} {v}" for k, v in report["source"].items())
    table = Table(title=escape(f"score maps {report['scoremaps']} vs {source} (%)"))
    for col in ("metric", "value", "best threshold"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for row in summary_rows(report):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(summary_footer(report), markup=False, highlight=False)



# --------------------------------------------------------------------------- data


@cli.group()
def data() -> None:
    """Real datasets: convert a raw layout into a manifest (prepare), check it (verify), look at it (show)."""


def _source_command(name: str) -> click.Command:
    """``data prepare <name>``: --root, --out and the converter's own options (from the registry)."""
    from wsolbench.data.sources import SOURCES

    source = SOURCES.get(name)
    params: list[click.Parameter] = [
        click.Option(["--root"], type=click.Path(path_type=Path), required=True,
                     help="The raw dataset folder, laid out as its publisher ships it."),
        click.Option(["--out"], type=click.Path(path_type=Path), required=True,
                     help="The manifest folder to write (new, empty, or an earlier manifest)."),
        click.Option(["--jobs"], type=int, default=None, help="Threads reading image headers and masks."),
        click.Option(["--per-class"], is_flag=True, help="Also print the images of every class per split."),
        click.Option(["--max-problems"], type=click.IntRange(min=0), default=50, show_default=True,
                     help="When the raw data has problems (all are found in one run; no manifest is written, "
                          "exit 2): print at most this many, then how many more (0: print all)."),
        click.Option(["--progress/--no-progress"], default=True, show_default=True),
    ]
    types = {"path": click.Path(path_type=Path), "int": int, "str": str}
    for opt in source.options:
        if opt.kind == "flag":
            params.append(click.Option([opt.flag], is_flag=True, help=opt.help))
        elif opt.kind == "multi":
            params.append(click.Option([opt.flag], multiple=True, help=opt.help))
        else:
            kind = click.Choice(opt.choices) if opt.kind == "choice" else types[opt.kind]
            params.append(click.Option([opt.flag], type=kind, default=opt.default, help=opt.help,
                                       show_default=opt.default is not None))

    def callback(root: Path, out: Path, jobs: int | None, per_class: bool, max_problems: int, progress: bool,
                 **options: Any) -> None:
        from wsolbench.data.sources import DataProblems, prepare
        from wsolbench.data.sources.problems import format_problems
        from wsolbench.errors import DataError

        try:
            manifest = prepare(name, root=root, out=out, options=options, progress=RichProgress(progress), jobs=jobs)
        except DataProblems as exc:
            for line in format_problems(exc.problems, max_problems):
                click.echo(line)
            raise DataError(exc.summary) from exc
        _print_manifest_counts(manifest, per_class)
        clipped = dict(manifest.info).get("clipped_boxes")
        if clipped:
            click.echo(f"clipped {clipped} box(es) to their image (--clip-boxes; the manifest's info.clipped_boxes)",
                       err=True)
        click.echo(f"wrote manifest {manifest.directory} ({manifest.name})", err=True)

    return click.Command(name, params=params, callback=callback, help=source.summary, short_help=source.summary)


class _SourcesGroup(click.Group):
    """One ``data prepare`` subcommand per registered converter (wsolbench.data.sources.SOURCES)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from wsolbench.data.sources import SOURCES

        return SOURCES.names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from wsolbench.data.sources import SOURCES

        return _source_command(cmd_name) if cmd_name in SOURCES else None


@data.group("prepare", cls=_SourcesGroup)
def data_prepare() -> None:
    """Convert a raw dataset into a manifest: wsolbench data prepare DATASET --root RAW --out DIR [options].

    Prints the images per split and class. Each dataset's layout, counts and split
    roles are described in data_manifests/<dataset>.md.
    """


def _print_manifest_counts(manifest: Any, per_class: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from wsolbench.data.sources import class_counts, split_summary

    console = Console() if Console().is_terminal else Console(width=120)
    table = Table(title=escape(f"{manifest.name}: {manifest.num_classes} classes"))
    columns = ("split", "images", "classes", "per class min/median/max", "boxes", "masks", "multi-label")
    for col in columns:
        table.add_column(col, justify="left" if col == "split" else "right")
    for row in split_summary(manifest):
        table.add_row(row["split"], str(row["images"]), str(row["classes"]),
                      f"{row['per_class_min']}/{row['per_class_median']:g}/{row['per_class_max']}",
                      str(row["boxes"]), str(row["masks"]), str(row["multi_label"]))
    console.print(table)
    if per_class:
        counts = class_counts(manifest)
        per = Table(title="images per class")
        per.add_column("class")
        for split in counts:
            per.add_column(split, justify="right")
        for k, name in enumerate(manifest.classes):
            per.add_row(escape(name), *(str(counts[s][k]) for s in counts))
        console.print(per)


@data.command("verify")
@click.argument("manifest_dir", type=click.Path(path_type=Path))
@click.option("--no-decode", is_flag=True, help="Only check that images exist (masks are always decoded).")
@click.option("--jobs", type=int, default=None, help="Threads reading files.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def data_verify(manifest_dir: Path, no_decode: bool, jobs: int | None, progress: bool) -> None:
    """Check a manifest and every file it names; print every problem (file and line), exit 1 if any."""
    from wsolbench.data.verify import verify_manifest
    from wsolbench.errors import CheckFailed

    report = verify_manifest(manifest_dir, decode=not no_decode, jobs=jobs, progress=RichProgress(progress))
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in report.problems:
        click.echo(line)
    if not report.ok:
        raise CheckFailed(report.summary())
    click.echo(report.summary())


@data.command("show")
@click.argument("manifest_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("grid.png"), show_default=True,
              help="The PNG to write.")
@click.option("--n", "count", type=int, default=16, show_default=True, help="Images to draw.")
@click.option("--split", default=None, help="Split to draw from [default: val, else the first non-empty one].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random choice of images.")
@click.option("--tile", type=int, default=256, show_default=True, help="Tile side in pixels.")
def data_show(manifest_dir: Path, out: Path, count: int, split: str | None, seed: int, tile: int) -> None:
    """Write a grid of manifest images with their boxes (red) and masks (green; ignore magenta) drawn."""
    from wsolbench.data.show import render_grid

    path = render_grid(manifest_dir, out=out, n=count, split=split, seed=seed, tile=tile)
    click.echo(f"wrote {path}", err=True)

@cli.command()
@click.argument("runs_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The committed baseline: an aggregated leaderboard.csv (or one --update wrote).")
@click.option("--tolerance", "tolerances", multiple=True, metavar="METRIC=POINTS",
              help="Allowed drop of a metric in points (repeatable). Default per row: with several seeds "
                   "max(0.25, 3 * sqrt(2) * std / sqrt(n)), the baseline's seed spread (std, n seeds), three "
                   "standard errors of a difference of two n-seed means; with one seed 1.0 point.")
@click.option("--metrics", default=None, metavar="A,B",
              help="Metrics to check (default: top1, MaxBoxAccV2, GT-known Loc, Top-1 Loc, PxAP, mPxAP, mAP "
                   "where the baseline has them).")
@click.option("--junit-xml", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write JUnit XML: one test case per (row, metric).")
@click.option("--update", is_flag=True, help="Rewrite the baseline from RUNS_DIR (deliberately) instead of checking.")
def check(runs_dir: Path, baseline_path: Path, tolerances: tuple[str, ...], metrics: str | None,
          junit_xml: Path | None, update: bool) -> None:
    """Compare the runs under RUNS_DIR with a baseline leaderboard, setting by setting and metric by metric.

    Rows match by dataset, backbone, method, objective (with its strength), CAM extractor and seeds. Exit 1
    when a metric drops beyond its tolerance or a baseline row is missing; a better result passes and is
    reported. A baseline made under another protocol (manifest, thresholds, resolution, contours, IoUs, CAM
    resize or stage) is refused, not compared.
    """
    from wsolbench.errors import CheckFailed, DataError
    from wsolbench.records import find_records, load_records
    from wsolbench.report.aggregate import aggregate_seeds
    from wsolbench.report.check import compare, parse_tolerances, read_baseline, verdict_frame, write_baseline
    from wsolbench.report.check import write_junit
    from wsolbench.report.leaderboard import runs_frame

    paths = find_records(runs_dir)
    if not paths:
        raise DataError(f"no run records (record.json) under {runs_dir}")
    current = aggregate_seeds(runs_frame(list(zip(load_records(paths), (p.parent for p in paths)))))
    if update:
        click.echo(f"wrote {write_baseline(current, baseline_path)} ({len(current)} settings)", err=True)
        return
    chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    verdicts = compare(read_baseline(baseline_path), current, metrics=chosen,
                       tolerances=parse_tolerances(tolerances), source=str(baseline_path))
    _print_verdicts(verdict_frame(verdicts))
    if junit_xml is not None:
        click.echo(f"wrote {write_junit(verdicts, junit_xml)}", err=True)
    failed = [v for v in verdicts if v.failed]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("pass", "better", "worse", "missing", "new")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(verdicts)} checks failed against {baseline_path} ({summary})")
    click.echo(f"check passed against {baseline_path}: {summary}")


def _print_verdicts(frame: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if Console().is_terminal else Console(width=160)
    table = Table(title="wsolbench check (test split, points)")
    for column in ("setting", "metric", "baseline", "current", "diff", "tolerance", "verdict"):
        table.add_column(column, justify="left" if column in ("setting", "metric", "verdict") else "right")
    style = {"worse": "bold red", "missing": "bold red", "better": "green", "new": "cyan"}
    for row in frame.itertuples(index=False):
        cells = [row.setting, row.metric, *(("-" if v != v else f"{round(v, 2) + 0.0:+.2f}" if k == "diff" else f"{v:.2f}")
                                            for k, v in (("baseline", row.baseline), ("current", row.current),
                                                         ("diff", row.diff), ("tolerance", row.tolerance))),
                 row.verdict]
        table.add_row(*cells, style=style.get(row.verdict))
    console.print(table)


@cli.command("report")
@click.argument("runs_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("report"), show_default=True,
              help="The folder of index.html and its images (and the leaderboard files the page shows).")
@_leaderboard_options
def report_command(runs_dir: Path, out: Path, baseline: str, sort_by: str, n_resamples: int) -> None:
    """Write a static HTML report of the runs under RUNS_DIR: OUT/index.html with its images beside it.

    The leaderboard with its intervals, the entropy-vs-accuracy and threshold-sweep plots, CAM galleries (the
    same test images in every setting; each setting's best and worst by IoU) from the maps each run saved,
    and every run's config, hash, code version, environment and timings. Opens from disk: no server needed.
    """
    from wsolbench.report.html import write_report

    chosen = None if baseline.strip().lower() == "none" else baseline
    path = write_report(runs_dir, out, baseline=chosen, sort_by=sort_by, n_resamples=n_resamples,
                        command=_command_line())
    click.echo(f"wrote {path}", err=True)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
