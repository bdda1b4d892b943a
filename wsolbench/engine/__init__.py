"""Training and evaluation as plain functions (no Trainer class)."""

from wsolbench.engine.device import AmpPolicy, resolve_device
from wsolbench.engine.evaluate import (SplitAccumulators, SplitEvaluation, accumulate, evaluate,
                                       new_accumulators)
from wsolbench.engine.optim import build_optimizer, build_scheduler
from wsolbench.engine.train import EpochMeter, EpochStats, TrainingDiverged, train_one_epoch

__all__ = ["AmpPolicy", "EpochMeter", "EpochStats", "SplitAccumulators", "SplitEvaluation", "TrainingDiverged",
           "accumulate", "build_optimizer", "build_scheduler", "evaluate", "new_accumulators", "resolve_device",
           "train_one_epoch"]
