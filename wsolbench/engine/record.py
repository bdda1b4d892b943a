"""The run record of a run: what was run, where, with which code, and what it measured.

Built here (it reads the live method, device and manifest); written and read by
:mod:`wsolbench.records`, which is torch-free.
"""

from __future__ import annotations

from typing import Any

import torch

from wsolbench.config import RunConfig, axis_label
from wsolbench.config.axes import strength_of
from wsolbench.engine import distributed as ddp
from wsolbench.engine.device import AmpPolicy
from wsolbench.manifest import Manifest
from wsolbench.methods import WsolMethod
from wsolbench.objectives import describe as describe_objective
from wsolbench.records import code_version, code_version_label, library_versions, new_record


def axes(cfg: RunConfig) -> dict[str, Any]:
    """The experiment axes of a run, as every leaderboard and check groups them."""
    return {"dataset": cfg.data.dataset, "backbone": cfg.model.backbone, "method": axis_label(cfg.method),
            "objective": axis_label(cfg.objective), "cam": cfg.eval.cam, "seed": cfg.seed}


def strengths(cfg: RunConfig) -> dict[str, Any]:
    """The bare class names and the objective's strength (name and value; None for ``ce``), for sweeps and plots."""
    name = strength_of(cfg.objective)
    value = getattr(cfg.objective.params, name) if name else None
    return {"method_name": cfg.method.name, "objective_name": cfg.objective.name, "strength_name": name,
            "strength": value}


def run_record(cfg: RunConfig, manifest: Manifest, method: WsolMethod, *, device: torch.device, amp: AmpPolicy,
               info: ddp.DistInfo, **fields: Any) -> dict[str, Any]:
    """A record dict (schema header first); ``fields`` are the run's own sections (status, history, val,
    test, selection, timings, ...). The summary holds the axes and the test split's headline numbers."""
    version = code_version()
    summary = {"name": cfg.name, **axes(cfg), **strengths(cfg), "config_hash": cfg.config_hash(),
               "protocol": cfg.protocol_hash(),
               "code_version": code_version_label(version)}
    if "test" in fields:
        summary.update(fields["test"]["summary"])
    return new_record(
        name=cfg.name,
        config=cfg.to_dict(),
        config_hash=cfg.config_hash(),
        code_version=version,
        manifest={"name": manifest.name, "hash": manifest.content_hash(), "num_classes": manifest.num_classes,
                  "sizes": {s: len(manifest.split(s)) for s in manifest.splits}},
        environment={"libraries": library_versions(), "device": str(device),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "threads": torch.get_num_threads(), "amp": amp.describe(), "world_size": info.world_size},
        model={"backbone": cfg.model.backbone, "parameters": sum(p.numel() for p in method.net.parameters()),
               "method_parameters": sum(p.numel() for p in method.parameters()),
               "pretrained": cfg.model.pretrained, "weights": _weights_info(method)},
        method={"name": cfg.method.name, "label": axis_label(cfg.method), "params": cfg.method.to_dict(),
                "phases": list(method.phases)},
        objective=describe_objective(cfg.objective),
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
