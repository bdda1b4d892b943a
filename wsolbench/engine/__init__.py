"""Training and evaluation as plain functions and small callbacks (no Trainer class).

- :mod:`~wsolbench.engine.train`: one epoch (every phase of a method per batch);
- :mod:`~wsolbench.engine.loop`: the epoch loop and its callbacks (checkpoints, best-on-val, TensorBoard);
- :mod:`~wsolbench.engine.state`: the training state and whole-method checkpoints;
- :mod:`~wsolbench.engine.evaluate`: one split through a CAM extractor into the accumulators;
- :mod:`~wsolbench.engine.selection`: val chooses, test reports;
- :mod:`~wsolbench.engine.record`: the run record of a finished or failed run.
"""

from wsolbench.engine.device import AmpPolicy, resolve_device
from wsolbench.engine.evaluate import (SplitAccumulators, SplitEvaluation, accumulate, evaluate_split,
                                       new_accumulators, new_extractor)
from wsolbench.engine.optim import build_optimizer, build_phases, build_scheduler
from wsolbench.engine.train import EpochMeter, EpochStats, Phase, TrainingDiverged, train_one_epoch

__all__ = ["AmpPolicy", "EpochMeter", "EpochStats", "Phase", "SplitAccumulators", "SplitEvaluation",
           "TrainingDiverged", "accumulate", "build_optimizer", "build_phases", "build_scheduler",
           "evaluate_split", "new_accumulators", "new_extractor", "resolve_device", "train_one_epoch"]
