"""The ``wsolbench`` command line: parse, call one library function, print.

Results go to stdout, progress and messages to stderr. A user error prints one
line ``error: ...`` and exits with 2 (usage) or 1 (a check or run failed); a
traceback only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from wsolbench import __version__
from wsolbench.config import BENCH_OBJECTIVES, PRESETS, RunConfig, load_config, merge_dicts, parse_overrides
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


class _Group(click.Group):
    """Turns wsolbench's user-facing errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WsolbenchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


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
        self.console.print(message, highlight=False)


def _command_line() -> str:
    argv = sys.argv
    if argv and Path(argv[0]).name == "wsolbench":
        return shlex.join(["wsolbench", *argv[1:]])
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx else "wsolbench"


def _run_options(func: Any) -> Any:
    options = [
        click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="Starting configuration (default: quick, or the config file's own 'preset:')."),
        click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
                     help="A YAML or JSON config file (sections: data, model, method, objective, optim, eval, train)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override one config value, e.g. --set optim.lr=0.01 (repeatable)."),
        click.option("--output-dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
                     help="Where run folders, leaderboards and plots are written."),
        click.option("--dataset", default=None,
                     help="synthetic (built in), manifest (--set data.manifest=DIR) or a real dataset: "
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


def _print_leaderboard(frame: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    labels = ("dataset", "backbone", "method", "objective", "cam")
    varying = [c for c in labels if c in frame.columns and (frame[c].nunique() > 1 or c in ("method", "objective"))]
    show = varying + [c for c in ("top1", "mAP", "entropy_norm", "MaxBoxAcc", "MaxBoxAccV2", "GT-known Loc",
                                  "Top-1 Loc", "PxAP", "mPxAP", "effective_smoothing") if c in frame.columns]
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    table = Table(title="wsolbench leaderboard (test split, %)")
    for col in show:
        table.add_column(col, justify="left" if col in labels else "right")
    for _, row in frame.iterrows():
        table.add_row(*[f"{row[c]:.4f}" if c in ("entropy_norm", "effective_smoothing") and row[c] == row[c]
                        else f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in show])
    console.print(table)


def _write_reports(records: list[dict[str, Any]], output_dir: Path, command: str) -> Any:
    from wsolbench.report import leaderboard_frame, plot_entropy_vs_accuracy, write_leaderboard

    frame = leaderboard_frame(records)
    csv_path, md_path = write_leaderboard(frame, output_dir, command=command)
    outputs = [csv_path, md_path]
    if not frame.empty and "entropy_norm" in frame:
        outputs.append(plot_entropy_vs_accuracy(frame, output_dir / "entropy_vs_accuracy.png"))
    for path in outputs:
        click.echo(f"wrote {path}", err=True)
    return frame


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsolbench")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """wsolbench: benchmark weakly supervised object localization (WSOL) objectives and methods."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _axis_overrides(sets: tuple[str, ...]) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]:
    """Split ``--set`` items into the rest and the ``method.*`` / ``objective.*`` parameters a bench
    hands to each of its classes that has them (``objective.name`` / ``method.name`` select classes)."""
    rest, params = [], {"method": {}, "objective": {}}
    for item in sets:
        key = item.split("=", 1)[0].strip()
        section = key.split(".", 1)[0]
        if section in params and "." in key:
            params[section].update(parse_overrides([item])[section])
        else:
            rest.append(item)
    return tuple(rest), params["method"], params["objective"]


def _flatten(values: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    return tuple(name for group in values for name in group)


@cli.command()
@_run_options
@click.option("--method", "methods", multiple=True, type=RegistryName("method", many=True),
              help="WSOL methods to compare (comma-separated or repeated; default: the config's, cam).")
@click.option("--objective", "objectives", multiple=True, type=RegistryName("objective", many=True),
              help=f"Objectives to compare (comma-separated or repeated; default: {', '.join(BENCH_OBJECTIVES)}).")
@click.option("--cam", default=None, type=RegistryName("cam"),
              help="CAM extractor the runs are evaluated with (default: cam, the native CAM).")
def bench(preset: str | None, config_path: Path | None, sets: tuple[str, ...], output_dir: Path,
          dataset: str | None, data_root: Path | None, device: str | None, seed: int | None,
          threads: int | None, rerun: bool, resume: bool, progress: bool, methods: tuple[tuple[str, ...], ...],
          objectives: tuple[tuple[str, ...], ...], cam: str | None) -> None:
    """Train and evaluate methods x objectives under one identical protocol; write a leaderboard and a plot.

    On the built-in synthetic data by default (preset 'quick'; 'smoke' for CI). '--set objective.lam=1'
    goes to every objective of the bench that has 'lam' (likewise 'method.*'); a parameter none of
    them has is refused.
    """
    from wsolbench._io import ensure_writable_dir
    from wsolbench.bench import bench_configs, run_bench

    rest, method_params, objective_params = _axis_overrides(sets)
    method_names = list(_flatten(methods)) or ([method_params.pop("name")] if "name" in method_params else None)
    objective_names = (list(_flatten(objectives))
                       or ([objective_params.pop("name")] if "name" in objective_params else list(BENCH_OBJECTIVES)))
    method_params.pop("name", None)
    objective_params.pop("name", None)
    if cam:
        rest = (*rest, f"eval.cam={cam}")
    base = _resolve(preset, config_path, rest, dataset=dataset, data_root=data_root, device=device, seed=seed,
                    threads=threads)
    ensure_writable_dir(output_dir)
    configs = bench_configs(base, objective_names, methods=method_names, objective_params=objective_params,
                            method_params=method_params)
    outcome = run_bench(configs, output_dir=output_dir, progress=RichProgress(progress), rerun=rerun,
                        resume=resume)
    records = [r.record for r in outcome.results]
    if records:
        frame = _write_reports(records, output_dir, _command_line())
        _print_leaderboard(frame)
    if outcome.failures:
        for name, message in outcome.failures:
            click.echo(f"error: run {name} failed: {message}", err=True)
        sys.exit(1)


@cli.command()
@_run_options
@click.option("--method", default=None, type=RegistryName("method"), help="WSOL method (default: the config's, cam).")
@click.option("--objective", default=None, type=RegistryName("objective"),
              help="Objective (default: the config's, ce).")
@click.option("--cam", default=None, type=RegistryName("cam"), help="CAM extractor for evaluation (default: cam).")
def train(preset: str | None, config_path: Path | None, sets: tuple[str, ...], output_dir: Path,
          dataset: str | None, data_root: Path | None, device: str | None, seed: int | None,
          threads: int | None, rerun: bool, resume: bool, progress: bool, method: str | None,
          objective: str | None, cam: str | None) -> None:
    """Train and evaluate one run; writes its record.json, model.pt and per-image outcomes under --output-dir."""
    from wsolbench._io import ensure_writable_dir
    from wsolbench.runner import train_and_evaluate

    named = [f"method.name={method}"] if method else []
    named += [f"objective.name={objective}"] if objective else []
    named += [f"eval.cam={cam}"] if cam else []
    cfg = _resolve(preset, config_path, (*named, *sets), dataset=dataset, data_root=data_root, device=device,
                   seed=seed, threads=threads)
    ensure_writable_dir(output_dir)
    result = train_and_evaluate(cfg, output_dir=output_dir, progress=RichProgress(progress), rerun=rerun,
                                resume=resume)
    click.echo(json.dumps(result.record["summary"], indent=1))
    click.echo(f"wrote {result.path}", err=True)


@cli.command()
@click.argument("run", type=click.Path(path_type=Path, exists=True))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override an eval setting, e.g. --set eval.threshold_step=0.001.")
@click.option("--cam", default=None, type=RegistryName("cam"),
              help="Evaluate with another CAM extractor (e.g. gradcampp); the run's own by default.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result, curves included, as JSON.")
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
    else:
        conventions = result["selection"]["conventions"]
        click.echo(json.dumps({"cam": conventions["cam"], "cam_stage": conventions["cam_stage"],
                               **{split: result[split]["summary"] for split in ("val", "test") if split in result}},
                              indent=1))


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


@cli.command()
@click.argument("runs_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--output-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the leaderboard (default: RUNS_DIR).")
def leaderboard(runs_dir: Path, output_dir: Path | None) -> None:
    """Rebuild leaderboard.csv, leaderboard.md and entropy_vs_accuracy.png from the run records under RUNS_DIR."""
    from wsolbench._io import ensure_writable_dir
    from wsolbench.errors import DataError
    from wsolbench.records import find_records, load_records

    paths = find_records(runs_dir)
    if not paths:
        raise DataError(f"no run records (record.json) under {runs_dir}")
    out = ensure_writable_dir(output_dir or runs_dir)
    frame = _write_reports(load_records(paths), out, _command_line())
    _print_leaderboard(frame)


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
              help="CAM thresholds are 0, step, 2*step, ... < 1.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the whole result, curves included, as one JSON object.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate_cams(scoremaps: Path, manifest_dir: Path | None, split: str | None, metadata_dir: Path | None,
                  mask_root: Path | None, predictions: Path | None, threshold_step: float,
                  resolution: int | None, loc_threshold: float | None, loc_contours: str, multiclass: bool,
                  allow_missing: bool, batch_size: int, as_json: bool, progress: bool) -> None:
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
        progress=RichProgress(progress))
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

def main() -> None:
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
