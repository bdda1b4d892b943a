"""One run as wiring: config -> manifest -> dataset -> method -> engine -> record.

Runs are idempotent cells: a run's folder is ``<output>/<name>-<config hash>``. It
holds ``checkpoint.pt`` while training (every epoch and every
``train.checkpoint_every`` steps, written atomically; ``resume=True`` continues
from it), then ``model.pt`` (the whole method state evaluated on test),
``record.json`` and the per-image outcomes ``outcomes-val.npz`` /
``outcomes-test.npz``. A finished run is reused unless ``rerun`` is asked for; a
run that fails keeps its last good checkpoint and writes ``record.partial.json``.
Every run of a bench sees the same seed, model initialisation, data order and
augmentation stream, so comparisons are paired.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from wsolbench._io import ensure_writable_dir
from wsolbench.backbones import BACKBONES, create_backbone
from wsolbench.cams import CAMS
from wsolbench.config import RunConfig, config_from_dict
from wsolbench.config.sections import BUILTIN_DATASETS
from wsolbench.data.dataset import ManifestDataset, train_transform
from wsolbench.data.sampling import EpochSampler, SeededAugmentation
from wsolbench.data.digits import build_digits
from wsolbench.data.synthetic import build_synthetic
from wsolbench.engine import AmpPolicy, SplitEvaluation, TrainingDiverged, build_phases, evaluate_split, resolve_device
from wsolbench.engine import distributed as ddp
from wsolbench.engine.evaluate import is_multi_label
from wsolbench.engine.gallery import gallery_arrays
from wsolbench.engine.loop import BestOnVal, Callback, Checkpointer, EpochLog, TensorBoard, fit
from wsolbench.engine.record import run_record
from wsolbench.engine.selection import evaluation_block, outcome_arrays, val_score, val_score_name
from wsolbench.engine.state import TrainingState, load_weights, restore_training, save_weights
from wsolbench.errors import ConfigError
from wsolbench.manifest import Manifest, load_manifest
from wsolbench.methods import WsolMethod, create_method
from wsolbench.objectives import build_objective
from wsolbench.progress import NullProgress, Progress
from wsolbench.records import (PARTIAL_RECORD_FILE, RECORD_FILE, load_record, write_gallery, write_outcomes,
                               write_record)

CHECKPOINT_FILE = "checkpoint.pt"  # resumable training state, removed once the run is complete
MODEL_FILE = "model.pt"  # the whole method state evaluated on test (last or best-on-val)
BEST_FILE = "best.pt"  # best-on-val method state while training with train.select=best


@dataclass(frozen=True)
class RunResult:
    record: dict[str, Any]
    path: Path  # the record file
    reused: bool


def check_config(cfg: RunConfig) -> None:
    """Check the registry names of ``cfg`` before any work starts (ConfigError on an unknown name).

    The method and objective sections were validated when the config was built.
    """
    BACKBONES.get(cfg.model.backbone)
    CAMS.get(cfg.eval.cam)
    if cfg.data.dataset not in (*BUILTIN_DATASETS, "manifest"):
        from wsolbench.data.sources import SOURCES

        if cfg.data.dataset not in SOURCES:
            known = ", ".join((*BUILTIN_DATASETS, "manifest", *SOURCES.names()))
            raise ConfigError(f"unknown dataset {cfg.data.dataset!r} (known: {known})")
        if not cfg.data.root:
            raise ConfigError(f"data.root (the raw {cfg.data.dataset} folder, --data-root) is required "
                              f"for dataset {cfg.data.dataset!r}")


def check_data(cfg: RunConfig, output_dir: Path) -> None:
    """Check that the data folders of a run about to train exist, before anything is written for it
    (ConfigError): a prepared manifest's folder, a real dataset's raw folder (``data.root``) unless its
    conversion under the data folder can be reused."""
    if cfg.data.dataset == "manifest" and not Path(str(cfg.data.manifest)).expanduser().is_dir():
        raise ConfigError(f"data.manifest {cfg.data.manifest} is not a folder (a manifest written by wsolbench data "
                          "prepare)")
    if cfg.data.dataset not in (*BUILTIN_DATASETS, "manifest"):
        from wsolbench.data.sources import check_source_root

        check_source_root(cfg.data.dataset, root=str(cfg.data.root), data_dir=data_dir(cfg, output_dir),
                          options=cfg.data.source_options)


def data_dir(cfg: RunConfig, output_dir: Path) -> Path:
    """Where generated data and converted manifests go: ``data.data_dir``, else ``<output_dir>/data``."""
    return Path(cfg.data.data_dir) if cfg.data.data_dir else Path(output_dir) / "data"


def run_dir(cfg: RunConfig, output_dir: Path) -> Path:
    cfg = cfg.with_name()
    return Path(output_dir) / f"{cfg.name}-{cfg.config_hash()[:8]}"


def prepare_manifest(cfg: RunConfig, output_dir: Path, progress: Progress | None = None) -> Manifest:
    """The manifest of ``cfg``: a prepared one, a converted real dataset, or built-in data (shapes or digits)."""
    progress = progress or NullProgress()
    folder = data_dir(cfg, output_dir)
    if cfg.data.dataset == "manifest":
        assert cfg.data.manifest is not None
        return load_manifest(Path(cfg.data.manifest))
    if cfg.data.dataset not in BUILTIN_DATASETS:
        from wsolbench.data.sources import prepare_source

        return load_manifest(prepare_source(cfg.data.dataset, root=Path(str(cfg.data.root)), data_dir=folder,
                                            options=cfg.data.source_options, progress=progress))
    with contextlib.ExitStack() as stack:
        advance: list[Any] = []  # the progress bar opens with the first generated image: none on a reuse

        def report(n_done: int, n_total: int) -> None:
            if not advance:
                advance.append(stack.enter_context(progress.phase(f"generating {cfg.data.dataset} data", n_total)))
            advance[0](1)

        if cfg.data.dataset == "digits":
            directory = build_digits(cfg.data.digits, folder, progress=report)
        else:
            directory = build_synthetic(cfg.data.synthetic, folder, progress=report)
    return load_manifest(directory)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def build_method(cfg: RunConfig, num_classes: int, *, fresh: bool = False) -> WsolMethod:
    """Backbone + objective + method; the initialisation depends only on ``cfg.seed``.

    ``fresh``: skip loading pretrained weights (the state is about to be loaded from a run's own file).
    """
    torch.manual_seed(cfg.seed)
    net = create_backbone(cfg.model.backbone, num_classes=num_classes, width=cfg.model.width,
                          pretrained=cfg.model.pretrained and not fresh, weights=None if fresh else cfg.model.weights,
                          large_feature_map=cfg.model.large_feature_map)
    return create_method(cfg.method, net=net, objective=build_objective(cfg.objective))


def train_loader(cfg: RunConfig, manifest: Manifest, *, info: ddp.DistInfo = ddp.DistInfo(),
                 pin: bool = False) -> tuple[DataLoader, EpochSampler]:
    """The training loader: order and augmentation are functions of (seed, epoch, index) only."""
    dataset = ManifestDataset(manifest, "train", train_transform(cfg.data), cache_images=cfg.data.cache_images,
                              on_bad_image=cfg.data.on_bad_image, multi_label=is_multi_label(cfg, manifest))
    sampler = EpochSampler(len(dataset), seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    loader = DataLoader(SeededAugmentation(dataset, cfg.seed), batch_size=cfg.data.batch_size, sampler=sampler,
                        num_workers=cfg.data.num_workers, pin_memory=pin, collate_fn=dataset.collate)
    return loader, sampler


def train_and_evaluate(cfg: RunConfig, *, output_dir: Path, progress: Progress | None = None,
                       rerun: bool = False, resume: bool = False, command: str | None = None) -> RunResult:
    """Train one config (or continue it), evaluate it on val and test, write its record and weights.

    ``command``: the command line that asked for the run, kept in its record."""
    progress = progress or NullProgress()
    cfg = cfg.with_name()
    check_config(cfg)
    info = ddp.from_environment()
    out = run_dir(cfg, output_dir)
    record_path = out / RECORD_FILE
    if record_path.exists() and not rerun:
        progress.log(f"{cfg.name}: reusing {record_path}")
        return RunResult(load_record(record_path), record_path, reused=True)
    check_data(cfg, output_dir)
    t0 = time.perf_counter()
    device = resolve_device(f"cuda:{info.local_rank}" if info.enabled and cfg.device != "cpu"
                            and torch.cuda.is_available() else cfg.device)  # checked before any folder is made
    out = ensure_writable_dir(out)
    state_path = out / CHECKPOINT_FILE
    if state_path.exists() and not (resume or rerun):
        raise ConfigError(f"{out} holds an unfinished run: pass --resume to continue it or --rerun to start over")
    if rerun and not resume:
        state_path.unlink(missing_ok=True)

    ddp.init(info, device)
    try:
        if info.is_main:
            manifest = prepare_manifest(cfg, output_dir, progress)
        ddp.barrier(info)
        if not info.is_main:
            manifest = prepare_manifest(cfg, output_dir)
        return _train(cfg, manifest, out, device, info, progress, resume=resume, t0=t0, command=command)
    finally:
        ddp.shutdown(info)


def _train(cfg: RunConfig, manifest: Manifest, out: Path, device: torch.device, info: ddp.DistInfo,
           progress: Progress, *, resume: bool, t0: float, command: str | None = None) -> RunResult:
    t_data = time.perf_counter() - t0
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    amp = AmpPolicy.for_device(device)
    seed_everything(cfg.seed, cfg.deterministic)
    method = build_method(cfg, manifest.num_classes).to(device)
    if device.type == "cuda" and cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    model = _wrap(method, cfg, device, info)
    loader, sampler = train_loader(cfg, manifest, info=info, pin=device.type == "cuda")
    phases = build_phases(method, cfg.optim, steps_per_epoch=-(-len(sampler) // cfg.data.batch_size))
    scaler = amp.scaler()
    state_path = out / CHECKPOINT_FILE
    state = TrainingState()
    if resume and state_path.exists():
        state = restore_training(state_path, method=method, phases=phases, scaler=scaler,
                                 config_hash=cfg.config_hash())
        progress.log(f"{cfg.name}: resuming at epoch {state.epoch}, step {state.step}")

    scored: list[str] = []  # what the val score is (named once val was evaluated)

    def score_val() -> float:
        ev = evaluate_split(method, manifest, "val", cfg, device=device, amp=amp, progress=progress, info=info)
        scored[:] = [val_score_name(ev, cfg.eval)]
        return val_score(ev, cfg.eval)

    callbacks: list[Callback] = []
    if cfg.train.select == "best" or cfg.train.tensorboard:  # every rank evaluates (the merge is collective)
        callbacks.append(BestOnVal(score_val, method=method, path=out / BEST_FILE,
                                   keep_best=cfg.train.select == "best", write=info.is_main))
    if cfg.train.tensorboard and info.is_main:
        callbacks.append(TensorBoard(out / "tensorboard"))
    callbacks.append(Checkpointer(state_path, method=method, phases=phases, scaler=scaler,
                                  config_hash=cfg.config_hash(), enabled=info.is_main))
    callbacks.append(EpochLog(progress.log, name=cfg.name, epochs=cfg.optim.epochs,
                              val_name=lambda: scored[0] if scored else "score", enabled=info.is_main))
    t1 = time.perf_counter()
    try:
        fit(model, loader, sampler, state=state, phases=phases, scaler=scaler, epochs=cfg.optim.epochs,
            batch_size=cfg.data.batch_size, seed=cfg.seed, num_classes=manifest.num_classes, device=device, amp=amp,
            progress=progress, name=cfg.name, checkpoint_every=cfg.train.checkpoint_every, callbacks=callbacks)
    except TrainingDiverged as exc:
        if info.is_main:
            partial = run_record(cfg, manifest, method, device=device, amp=amp, info=info, status="failed",
                                 command=command,
                                 error=str(exc), history=state.history,
                                 checkpoint=CHECKPOINT_FILE if state_path.exists() else None)
            write_record(out / PARTIAL_RECORD_FILE, partial, overwrite=True)
        raise
    t_train = time.perf_counter() - t1

    if cfg.train.select == "best" and state.best is not None:
        ddp.barrier(info)  # rank 0 has finished writing best.pt
        load_weights(method, out / BEST_FILE)
    if info.is_main:
        save_weights(out / MODEL_FILE, method, config=cfg.to_dict(), config_hash=cfg.config_hash())
    t2 = time.perf_counter()
    val, test = (evaluate_split(method, manifest, split, cfg, device=device, amp=amp, progress=progress, info=info,
                                per_image=True) for split in ("val", "test"))
    t_eval = time.perf_counter() - t2
    evals = evaluation_block(val, test, cfg.eval)
    evals["selection"].update(checkpoint=cfg.train.select, best=state.best)
    outcome_files, arrays = _write_outcomes(out, (val, test), evals, cfg, info)
    record = run_record(cfg, manifest, method, device=device, amp=amp, info=info, status="complete", command=command,
                        history=state.history, **evals,
                        skipped_images=sum(int(h.get("skipped", 0)) for h in state.history),
                        timings={"data": t_data, "train": t_train, "eval": t_eval,
                                 "total": time.perf_counter() - t0},
                        checkpoint=MODEL_FILE, outcomes=outcome_files,
                        gallery=_write_gallery(out, method, manifest, cfg, device, amp, evals, info,
                                               outcomes=arrays.get("test")))
    record_path = out / RECORD_FILE
    if info.is_main:
        write_record(record_path, record, overwrite=True)
        state_path.unlink(missing_ok=True)
        (out / BEST_FILE).unlink(missing_ok=True)
        (out / PARTIAL_RECORD_FILE).unlink(missing_ok=True)
    return RunResult(record, record_path, reused=False)


def _wrap(method: WsolMethod, cfg: RunConfig, device: torch.device, info: ddp.DistInfo) -> torch.nn.Module:
    """The module the training loop calls: the method, inside DDP when distributed, compiled on request."""
    model: torch.nn.Module = method
    if info.enabled:
        model = ddp.wrap(method, device)
    if cfg.train.compile:
        model = torch.compile(model)
    return model


def _write_outcomes(out: Path, evaluations: tuple[SplitEvaluation, ...], evals: dict[str, Any],
                    cfg: RunConfig, info: ddp.DistInfo) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Per-image outcome files of each split (rank 0 writes them); returns {split: file name} and, on rank 0,
    {split: the arrays written}."""
    chosen = evals["selection"].get("threshold")
    files, written = {}, {}
    for ev in evaluations:
        name = f"outcomes-{ev.split}.npz"
        if info.is_main:
            written[ev.split] = outcome_arrays(ev, chosen, cfg.eval)
            name = write_outcomes(out, ev.split, written[ev.split]).name
        files[ev.split] = name
    return files, written


def _write_gallery(out: Path, method: WsolMethod, manifest: Manifest, cfg: RunConfig, device: torch.device,
                   amp: AmpPolicy, evals: dict[str, Any], info: ddp.DistInfo,
                   outcomes: dict[str, Any] | None) -> str | None:
    """The test gallery beside the record (rank 0; ``outcomes``, the test split's per-image arrays, pick the
    best and worst images by IoU); returns its file name, or None when the run keeps none."""
    if not info.is_main:
        return None
    chosen = evals["selection"].get("threshold")
    arrays = gallery_arrays(method, manifest, cfg, device=device, amp=amp, outcomes=outcomes,
                            threshold=chosen["threshold"] if chosen else None)
    return None if arrays is None else write_gallery(out, arrays).name


def evaluate_run(run_path: Path, *, eval_overrides: dict[str, Any] | None = None, device: str | None = None,
                 output_dir: Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run's whole method state on val and test (optionally with other eval settings,
    e.g. another CAM extractor: ``{"cam": "layercam"}``)."""
    progress = progress or NullProgress()
    run_path = Path(run_path)
    record_path = run_path / RECORD_FILE if run_path.is_dir() else run_path
    record = load_record(record_path)
    data = record["config"]
    if eval_overrides:
        data = {**data, "eval": {**data["eval"], **eval_overrides}}
    if device is not None:
        data = {**data, "device": device}
    cfg = config_from_dict(data).with_name()
    check_config(cfg)
    manifest = prepare_manifest(cfg, output_dir or record_path.parent.parent, progress)
    dev = resolve_device(cfg.device)
    amp = AmpPolicy.for_device(dev)
    method = build_method(cfg, manifest.num_classes, fresh=True)
    load_weights(method, record_path.parent / record.get("checkpoint", MODEL_FILE))
    method.to(dev)
    val, test = (evaluate_split(method, manifest, split, cfg, device=dev, amp=amp, progress=progress)
                 for split in ("val", "test"))
    return {"name": record["name"], "config_hash": record["config_hash"], "eval": cfg.to_dict()["eval"],
            **evaluation_block(val, test, cfg.eval)}
