"""One run: config -> manifest -> dataset -> model + method -> engine -> record.

Runs are idempotent cells: a run's folder is ``<output>/<name>-<config hash>``. It
holds ``checkpoint.pt`` while training (every epoch and every
``train.checkpoint_every`` steps, written atomically; ``resume=True`` continues
from it), then ``model.pt`` (the weights evaluated on test) and ``record.json``.
A finished run is reused unless ``rerun`` is asked for; a run that fails keeps
its last good checkpoint and writes ``record.partial.json``. Every objective of a
bench sees the same seed, model initialisation, data order and augmentation
stream, so comparisons are paired.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from wsolbench.config import RunConfig, config_from_dict
from wsolbench.data.dataset import ManifestDataset, eval_transform, train_transform
from wsolbench.data.sampling import EpochSampler, SeededAugmentation
from wsolbench.data.synthetic import build_synthetic
from wsolbench.engine import (AmpPolicy, EpochMeter, SplitEvaluation, TrainingDiverged, accumulate,
                              build_optimizer, build_scheduler, new_accumulators, resolve_device, train_one_epoch)
from wsolbench.engine import checkpoint as ckpt
from wsolbench.engine import distributed as ddp
from wsolbench.engine.selection import LOC_IOU, evaluation_block
from wsolbench.errors import ConfigError
from wsolbench.manifest import Manifest, load_manifest
from wsolbench.methods import METHODS, WsolMethod, create_method
from wsolbench.objectives import OBJECTIVES, build_objective, effective_smoothing, loss_scale
from wsolbench.progress import NullProgress, Progress
from wsolbench.records import (RECORD_FILE, code_version, code_version_label, library_versions, load_record,
                               new_record, write_record)

CHECKPOINT_FILE = "checkpoint.pt"  # resumable training state, removed once the run is complete
MODEL_FILE = "model.pt"  # the weights evaluated on test (last or best-on-val)
BEST_FILE = "best.pt"  # best-on-val weights while training with train.select=best
PARTIAL_RECORD_FILE = "record.partial.json"


@dataclass(frozen=True)
class RunResult:
    record: dict[str, Any]
    path: Path  # the record file
    reused: bool


def check_config(cfg: RunConfig) -> None:
    """Check the registry names of ``cfg`` before any work starts (ConfigError on an unknown name)."""
    OBJECTIVES.get(cfg.objective.name)
    BACKBONES.get(cfg.model.backbone)
    METHODS.get(cfg.method)
    if cfg.data.dataset not in ("synthetic", "manifest"):
        from wsolbench.data.sources import SOURCES

        SOURCES.get(cfg.data.dataset)
        if not cfg.data.root:
            raise ConfigError(f"data.root (the raw {cfg.data.dataset} folder, --data-root) is required "
                              f"for dataset {cfg.data.dataset!r}")


def run_dir(cfg: RunConfig, output_dir: Path) -> Path:
    cfg = cfg.with_name()
    return Path(output_dir) / f"{cfg.name}-{cfg.config_hash()[:8]}"


def prepare_manifest(cfg: RunConfig, output_dir: Path, progress: Progress | None = None) -> Manifest:
    """The manifest of ``cfg``: a prepared one, a converted real dataset, or the built-in synthetic data."""
    progress = progress or NullProgress()
    data_dir = Path(cfg.data.data_dir) if cfg.data.data_dir else Path(output_dir) / "data"
    if cfg.data.dataset == "manifest":
        assert cfg.data.manifest is not None
        return load_manifest(Path(cfg.data.manifest))
    if cfg.data.dataset != "synthetic":
        from wsolbench.data.sources import prepare_source

        return load_manifest(prepare_source(cfg.data.dataset, root=Path(str(cfg.data.root)), data_dir=data_dir,
                                            options=cfg.data.source_options, progress=progress))
    syn = cfg.data.synthetic
    with contextlib.ExitStack() as stack:
        advance: list[Any] = []  # the progress bar opens with the first generated image: none on a reuse

        def report(n_done: int, n_total: int) -> None:
            if not advance:
                advance.append(stack.enter_context(progress.phase("generating synthetic data", n_total)))
            advance[0](1)

        directory = build_synthetic(syn, data_dir, progress=report)
    return load_manifest(directory)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def build_method(cfg: RunConfig, num_classes: int) -> WsolMethod:
    """Backbone + head + objective + method; the initialisation depends only on ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    net = create_backbone(cfg.model.backbone, num_classes=num_classes, width=cfg.model.width,
                          pretrained=cfg.model.pretrained, weights=cfg.model.weights,
                          large_feature_map=cfg.model.large_feature_map)
    return create_method(cfg.method, net=net, objective=build_objective(cfg.objective))


def train_loader(cfg: RunConfig, manifest: Manifest, *, info: ddp.DistInfo = ddp.DistInfo(),
                 pin: bool = False) -> tuple[DataLoader, EpochSampler]:
    """The training loader: order and augmentation are functions of (seed, epoch, index) only."""
    dataset = ManifestDataset(manifest, "train", train_transform(cfg.data), cache_images=cfg.data.cache_images,
                              on_bad_image=cfg.data.on_bad_image)
    sampler = EpochSampler(len(dataset), seed=cfg.seed, rank=info.rank, world_size=info.world_size)
    loader = DataLoader(SeededAugmentation(dataset, cfg.seed), batch_size=cfg.data.batch_size, sampler=sampler,
                        num_workers=cfg.data.num_workers, pin_memory=pin, collate_fn=dataset.collate)
    return loader, sampler


def _eval_split(method: WsolMethod, manifest: Manifest, split: str, cfg: RunConfig, device: torch.device,
                amp: AmpPolicy, progress: Progress, info: ddp.DistInfo = ddp.DistInfo()) -> SplitEvaluation:
    start = time.perf_counter()
    dataset = ManifestDataset(manifest, split, eval_transform(cfg.data), mask_resolution=cfg.eval.resolution)
    shard = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size, sampler=shard,
                        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                        collate_fn=dataset.collate)
    acc = new_accumulators(dataset.samples, num_classes=manifest.num_classes, cfg=cfg.eval,
                           has_masks=dataset.has_masks)
    with progress.phase(f"{cfg.name}: evaluating {split}", len(shard)) as advance:
        accumulate(method, loader, dataset.samples, acc, cfg=cfg.eval, device=device, amp=amp, on_batch=advance)
    acc = ddp.merge_across_ranks(info, acc)
    return acc.compute(split, time.perf_counter() - start)


def _val_score(ev: SplitEvaluation, cfg: RunConfig) -> float:
    """The best-on-val criterion: GT-known Loc at val's best threshold (MaxBoxAcc), else PxAP, else top-1."""
    if ev.boxes is not None:
        return float(ev.boxes.curve(iou=LOC_IOU, contours=cfg.eval.loc_contours).max())
    if ev.masks is not None:
        return float(ev.masks.pxap)
    return float(ev.classification.top1)


def _record(cfg: RunConfig, manifest: Manifest, method: WsolMethod, device: torch.device, amp: AmpPolicy,
            info: ddp.DistInfo, **fields: Any) -> dict[str, Any]:
    version = code_version()
    summary = {"name": cfg.name, "objective": cfg.objective.label(), "config_hash": cfg.config_hash(),
               "code_version": code_version_label(version)}
    if "test" in fields:
        summary.update(fields["test"]["summary"])
    return new_record(
        name=cfg.name,
        method=cfg.method,
        config=cfg.to_dict(),
        config_hash=cfg.config_hash(),
        code_version=version,
        manifest={"name": manifest.name, "hash": manifest.content_hash(), "num_classes": manifest.num_classes,
                  "sizes": {s: len(manifest.split(s)) for s in manifest.splits}},
        environment={"libraries": library_versions(), "device": str(device),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "threads": torch.get_num_threads(), "amp": amp.describe(), "world_size": info.world_size},
        model={"backbone": cfg.model.backbone, "parameters": sum(p.numel() for p in method.net.parameters()),
               "pretrained": cfg.model.pretrained, "weights": _weights_info(method)},
        objective={"name": cfg.objective.name, "label": cfg.objective.label(),
                   "effective_smoothing": effective_smoothing(cfg.objective),
                   "loss_scale": loss_scale(cfg.objective),
                   "applied_loss_scale": 1.0 if cfg.objective.normalize_loss_scale else loss_scale(cfg.objective)},
        **fields,
        summary=summary,
    )


def _weights_info(method: WsolMethod) -> dict[str, Any] | None:
    """Where the backbone's starting weights came from and how many tensors loaded (None: fresh init)."""
    info = getattr(method.net, "weights_info", None)
    if info is None:
        return None
    return {"source": str(info.source), "loaded": len(info.loaded), "missing": len(info.missing),
            "unused": len(info.unused)}


def train_and_evaluate(cfg: RunConfig, *, output_dir: Path, progress: Progress | None = None,
                       rerun: bool = False, resume: bool = False) -> RunResult:
    """Train one config (or continue it), evaluate it on val and test, write its record and weights."""
    progress = progress or NullProgress()
    cfg = cfg.with_name()
    check_config(cfg)
    info = ddp.from_environment()
    out = ensure_writable_dir(run_dir(cfg, output_dir))
    record_path = out / RECORD_FILE
    if record_path.exists() and not rerun:
        progress.log(f"{cfg.name}: reusing {record_path}")
        return RunResult(load_record(record_path), record_path, reused=True)
    state_path = out / CHECKPOINT_FILE
    if state_path.exists() and not (resume or rerun):
        raise ConfigError(f"{out} holds an unfinished run: pass --resume to continue it or --rerun to start over")
    if rerun and not resume:
        state_path.unlink(missing_ok=True)

    t0 = time.perf_counter()
    device = resolve_device(f"cuda:{info.local_rank}" if info.enabled and cfg.device != "cpu"
                            and torch.cuda.is_available() else cfg.device)
    ddp.init(info, device)
    try:
        if info.is_main:
            manifest = prepare_manifest(cfg, output_dir, progress)
        ddp.barrier(info)
        if not info.is_main:
            manifest = prepare_manifest(cfg, output_dir)
        return _train(cfg, manifest, out, device, info, progress, resume=resume, t0=t0)
    finally:
        ddp.shutdown(info)


def _train(cfg: RunConfig, manifest: Manifest, out: Path, device: torch.device, info: ddp.DistInfo,
           progress: Progress, *, resume: bool, t0: float) -> RunResult:
    t_data = time.perf_counter() - t0
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    amp = AmpPolicy.for_device(device)
    seed_everything(cfg.seed, cfg.deterministic)
    method = build_method(cfg, manifest.num_classes).to(device)
    if device.type == "cuda" and cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    model: torch.nn.Module = method
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        model = torch.compile(model)
    loader, sampler = train_loader(cfg, manifest, info=info, pin=device.type == "cuda")
    steps_per_epoch = -(-len(sampler) // cfg.data.batch_size)
    optimizer = build_optimizer(method, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch=steps_per_epoch)
    scaler = amp.scaler()
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    epoch, step, meter = 1, 0, None
    state_path = out / CHECKPOINT_FILE
    if resume and state_path.exists():
        state = ckpt.load(state_path)
        if state.get("config_hash") != cfg.config_hash():
            raise ConfigError(f"checkpoint {state_path} was made by config {state.get('config_hash')}, "
                              f"not {cfg.config_hash()}")
        method.net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, best = list(state["history"]), state.get("best")
        epoch, step, meter = state["epoch"], state["step"], EpochMeter.from_state(state.get("meter"))
        ckpt.set_rng_state(state["rng"])
        progress.log(f"{cfg.name}: resuming at epoch {epoch}, step {step}")

    def save_state(next_epoch: int, next_step: int, epoch_meter: EpochMeter | None) -> None:
        if info.is_main:
            ckpt.save(state_path, {
                "model": method.net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "epoch": next_epoch, "step": next_step,
                "meter": epoch_meter.state_dict() if epoch_meter is not None else None,
                "history": history, "best": best, "rng": ckpt.rng_state(), "config_hash": cfg.config_hash()})

    writer = _tensorboard(cfg, out) if info.is_main else None
    t1 = time.perf_counter()
    try:
        while epoch <= cfg.optim.epochs:
            sampler.set_epoch(epoch, start=step * cfg.data.batch_size)
            current = epoch
            with progress.phase(f"{cfg.name}: epoch {epoch}/{cfg.optim.epochs}", len(sampler)) as advance:
                stats = train_one_epoch(
                    model, loader, optimizer=optimizer, scheduler=scheduler, device=device, amp=amp,
                    scaler=scaler, epoch=epoch, start_step=step, meter=meter, on_batch=advance,
                    checkpoint_every=cfg.train.checkpoint_every,
                    on_checkpoint=lambda s, m: save_state(current, s, m))
            row = dataclasses.asdict(stats)
            if cfg.train.select == "best" or writer is not None:
                val = _eval_split(method, manifest, "val", cfg, device, amp, progress, info)
                row["val_score"] = _val_score(val, cfg)
                if cfg.train.select == "best" and (best is None or row["val_score"] > best["score"]):
                    best = {"epoch": epoch, "score": row["val_score"]}
                    if info.is_main:
                        ckpt.save(out / BEST_FILE, {"model": method.net.state_dict(), "epoch": epoch})
            history.append(row)
            if writer is not None:
                for key in ("loss", "top1", "entropy", "lr", "val_score"):
                    if key in row:
                        writer.add_scalar(f"train/{key}" if key != "val_score" else "val/localization",
                                          row[key], epoch)
            epoch, step, meter = epoch + 1, 0, None
            save_state(epoch, 0, None)
    except TrainingDiverged as exc:
        if info.is_main:
            partial = _record(cfg, manifest, method, device, amp, info, status="failed", error=str(exc),
                              history=history, checkpoint=CHECKPOINT_FILE if state_path.exists() else None)
            write_record(out / PARTIAL_RECORD_FILE, partial, overwrite=True)
        raise
    finally:
        if writer is not None:
            writer.close()
    t_train = time.perf_counter() - t1

    if cfg.train.select == "best" and best is not None:
        ddp.barrier(info)  # rank 0 has finished writing best.pt
        method.net.load_state_dict(ckpt.load(out / BEST_FILE)["model"])
    if info.is_main:
        ckpt.save(out / MODEL_FILE, {"model": method.net.state_dict(), "config": cfg.to_dict(),
                                     "config_hash": cfg.config_hash()})
    t2 = time.perf_counter()
    val = _eval_split(method, manifest, "val", cfg, device, amp, progress, info)
    test = _eval_split(method, manifest, "test", cfg, device, amp, progress, info)
    t_eval = time.perf_counter() - t2
    evals = evaluation_block(val, test, cfg.eval)
    evals["selection"].update(checkpoint=cfg.train.select, best=best)
    record = _record(cfg, manifest, method, device, amp, info, status="complete", history=history, **evals,
                     skipped_images=sum(int(h.get("skipped", 0)) for h in history),
                     timings={"data": t_data, "train": t_train, "eval": t_eval, "total": time.perf_counter() - t0},
                     checkpoint=MODEL_FILE)
    record_path = out / RECORD_FILE
    if info.is_main:
        write_record(record_path, record, overwrite=True)
        state_path.unlink(missing_ok=True)
        (out / BEST_FILE).unlink(missing_ok=True)
        (out / PARTIAL_RECORD_FILE).unlink(missing_ok=True)
    return RunResult(record, record_path, reused=False)


def _tensorboard(cfg: RunConfig, out: Path) -> Any:
    if not cfg.train.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.tensorboard needs the tensorboard package: pip install 'wsolbench[tb]'") from None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def evaluate_run(run_path: Path, *, eval_overrides: dict[str, Any] | None = None, device: str | None = None,
                 output_dir: Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run's weights on val and test (optionally with other eval settings)."""
    progress = progress or NullProgress()
    run_path = Path(run_path)
    record_path = run_path / RECORD_FILE if run_path.is_dir() else run_path
    record = load_record(record_path)
    data = record["config"]
    if eval_overrides:
        data = {**data, "eval": {**data["eval"], **eval_overrides}}
    if device is not None:
        data = {**data, "device": device}
    cfg = config_from_dict(data)
    check_config(cfg)
    state = ckpt.load(record_path.parent / record.get("checkpoint", MODEL_FILE))
    manifest = prepare_manifest(cfg, output_dir or record_path.parent.parent, progress)
    dev = resolve_device(cfg.device)
    amp = AmpPolicy.for_device(dev)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=False, weights=None))
    method = build_method(cfg, manifest.num_classes)
    method.net.load_state_dict(state["model"])
    method.to(dev)
    val = _eval_split(method, manifest, "val", cfg, dev, amp, progress)
    test = _eval_split(method, manifest, "test", cfg, dev, amp, progress)
    return {"name": record["name"], "config_hash": record["config_hash"], "eval": cfg.to_dict()["eval"],
            **evaluation_block(val, test, cfg.eval)}
