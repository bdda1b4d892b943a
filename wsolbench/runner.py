"""One run: config -> manifest -> dataset -> model + method -> engine -> record.

Runs are idempotent cells: a run's folder is ``<output>/<name>-<config hash>``
and holds ``record.json`` and ``model.pt``; a finished run is reused unless
``rerun`` is asked for. Every objective of a bench sees the same seed, model
initialisation, data order and augmentation stream, so comparisons are paired.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsolbench._io import atomic_write, ensure_writable_dir
from wsolbench.backbones import BACKBONES, create_backbone
from wsolbench.config import RunConfig, config_from_dict
from wsolbench.data.dataset import ManifestDataset, eval_transform, make_loader, train_transform
from wsolbench.data.synthetic import build_synthetic, cached_synthetic
from wsolbench.engine import (AmpPolicy, SplitEvaluation, build_optimizer, build_scheduler, evaluate,
                              resolve_device, train_one_epoch)
from wsolbench.engine.selection import evaluation_block
from wsolbench.errors import DataError
from wsolbench.manifest import Manifest, load_manifest
from wsolbench.methods import METHODS, WsolMethod, create_method
from wsolbench.objectives import OBJECTIVES, build_objective, effective_smoothing, loss_scale
from wsolbench.progress import NullProgress, Progress
from wsolbench.records import (RECORD_FILE, code_version, code_version_label, library_versions, load_record,
                               new_record, write_record)

CHECKPOINT_FILE = "model.pt"


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


def run_dir(cfg: RunConfig, output_dir: Path) -> Path:
    cfg = cfg.with_name()
    return Path(output_dir) / f"{cfg.name}-{cfg.config_hash()[:8]}"


def prepare_manifest(cfg: RunConfig, output_dir: Path, progress: Progress | None = None) -> Manifest:
    """The manifest of ``cfg``: a prepared one, or the built-in synthetic data (generated once, cached)."""
    progress = progress or NullProgress()
    if cfg.data.dataset == "manifest":
        assert cfg.data.manifest is not None
        return load_manifest(Path(cfg.data.manifest))
    data_dir = Path(cfg.data.data_dir) if cfg.data.data_dir else Path(output_dir) / "data"
    syn = cfg.data.synthetic
    directory = cached_synthetic(syn, data_dir)
    if directory is None:
        with progress.phase("generating synthetic data", syn.n_train + syn.n_val + syn.n_test) as advance:
            done = [0]

            def report(n_done: int, n_total: int) -> None:
                advance(n_done - done[0])
                done[0] = n_done

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
    net = create_backbone(cfg.model.backbone, num_classes=num_classes, width=cfg.model.width)
    return create_method(cfg.method, net=net, objective=build_objective(cfg.objective))


def _eval_split(method: WsolMethod, manifest: Manifest, split: str, cfg: RunConfig, device: torch.device,
                amp: AmpPolicy, progress: Progress, pin: bool) -> SplitEvaluation:
    dataset = ManifestDataset(manifest, split, eval_transform(cfg.data.input_size),
                              mask_resolution=cfg.eval.resolution, cache_images=False)
    loader = make_loader(dataset, batch_size=cfg.data.eval_batch_size, shuffle=False, seed=cfg.seed,
                         num_workers=cfg.data.num_workers, pin_memory=pin)
    with progress.phase(f"{cfg.name}: evaluating {split}", len(dataset)) as advance:
        return evaluate(method, loader, dataset.samples, split=split, num_classes=manifest.num_classes,
                        cfg=cfg.eval, device=device, amp=amp, on_batch=advance)


def save_checkpoint(path: Path, method: WsolMethod, cfg: RunConfig) -> None:
    state = {"model": method.net.state_dict(), "config": cfg.to_dict(), "config_hash": cfg.config_hash()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no pickle from untrusted files)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise DataError(f"checkpoint {path} cannot be loaded: {exc}") from None


def train_and_evaluate(cfg: RunConfig, *, output_dir: Path, progress: Progress | None = None,
                       rerun: bool = False) -> RunResult:
    """Train one config, evaluate it on val and test, write its record and checkpoint."""
    progress = progress or NullProgress()
    cfg = cfg.with_name()
    check_config(cfg)
    out = ensure_writable_dir(run_dir(cfg, output_dir))
    record_path = out / RECORD_FILE
    if record_path.exists() and not rerun:
        progress.log(f"{cfg.name}: reusing {record_path}")
        return RunResult(load_record(record_path), record_path, reused=True)

    t0 = time.perf_counter()
    manifest = prepare_manifest(cfg, output_dir, progress)
    t_data = time.perf_counter() - t0
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    amp = AmpPolicy.for_device(device)
    pin = device.type == "cuda"
    seed_everything(cfg.seed, cfg.deterministic)
    method = build_method(cfg, manifest.num_classes).to(device)
    if device.type == "cuda":
        method = method.to(memory_format=torch.channels_last)

    train_set = ManifestDataset(manifest, "train", train_transform(cfg.data.input_size, cfg.data.hflip),
                                cache_images=cfg.data.cache_images)
    loader = make_loader(train_set, batch_size=cfg.data.batch_size, shuffle=True, seed=cfg.seed,
                         num_workers=cfg.data.num_workers, pin_memory=pin)
    optimizer = build_optimizer(method, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch=len(loader))
    scaler = amp.scaler()
    history = []
    t1 = time.perf_counter()
    for epoch in range(1, cfg.optim.epochs + 1):
        with progress.phase(f"{cfg.name}: epoch {epoch}/{cfg.optim.epochs}", len(train_set)) as advance:
            stats = train_one_epoch(method, loader, optimizer=optimizer, scheduler=scheduler, device=device,
                                    amp=amp, scaler=scaler, epoch=epoch, on_batch=advance)
        history.append(dataclasses.asdict(stats))
    t_train = time.perf_counter() - t1
    save_checkpoint(out / CHECKPOINT_FILE, method, cfg)

    t2 = time.perf_counter()
    val = _eval_split(method, manifest, "val", cfg, device, amp, progress, pin)
    test = _eval_split(method, manifest, "test", cfg, device, amp, progress, pin)
    t_eval = time.perf_counter() - t2
    evals = evaluation_block(val, test, cfg.eval)

    version = code_version()
    record = new_record(
        name=cfg.name,
        method=cfg.method,
        config=cfg.to_dict(),
        config_hash=cfg.config_hash(),
        code_version=version,
        manifest={"name": manifest.name, "hash": manifest.content_hash(), "num_classes": manifest.num_classes,
                  "sizes": {s: len(manifest.split(s)) for s in manifest.splits}},
        environment={"libraries": library_versions(), "device": str(device),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "threads": torch.get_num_threads(), "amp": amp.describe()},
        model={"backbone": cfg.model.backbone, "parameters": sum(p.numel() for p in method.net.parameters())},
        objective={"name": cfg.objective.name, "label": cfg.objective.label(),
                   "effective_smoothing": effective_smoothing(cfg.objective),
                   "loss_scale": loss_scale(cfg.objective),
                   "applied_loss_scale": 1.0 if cfg.objective.normalize_loss_scale else loss_scale(cfg.objective)},
        history=history,
        **evals,
        summary={"name": cfg.name, "objective": cfg.objective.label(), "config_hash": cfg.config_hash(),
                 "code_version": code_version_label(version), **evals["test"]["summary"]},
        timings={"data": t_data, "train": t_train, "eval": t_eval, "total": time.perf_counter() - t0},
        checkpoint=CHECKPOINT_FILE,
    )
    write_record(record_path, record, overwrite=rerun)
    return RunResult(record, record_path, reused=False)


def evaluate_run(run_path: Path, *, eval_overrides: dict[str, Any] | None = None, device: str | None = None,
                 output_dir: Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run's checkpoint on val and test (optionally with other eval settings)."""
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
    state = load_checkpoint(record_path.parent / record.get("checkpoint", CHECKPOINT_FILE))
    manifest = prepare_manifest(cfg, output_dir or record_path.parent.parent, progress)
    dev = resolve_device(cfg.device)
    amp = AmpPolicy.for_device(dev)
    method = build_method(cfg, manifest.num_classes)
    method.net.load_state_dict(state["model"])
    method.to(dev)
    val = _eval_split(method, manifest, "val", cfg, dev, amp, progress, dev.type == "cuda")
    test = _eval_split(method, manifest, "test", cfg, dev, amp, progress, dev.type == "cuda")
    return {"name": record["name"], "config_hash": cfg.config_hash(), "eval": cfg.to_dict()["eval"],
            **evaluation_block(val, test, cfg.eval)}
