"""Training and evaluation as plain functions (no Trainer class)."""

from wsolbench.engine.device import AmpPolicy, resolve_device
from wsolbench.engine.evaluate import SplitEvaluation, evaluate
from wsolbench.engine.optim import build_optimizer, build_scheduler
from wsolbench.engine.train import EpochStats, TrainingDiverged, train_one_epoch

__all__ = ["AmpPolicy", "EpochStats", "SplitEvaluation", "TrainingDiverged", "build_optimizer",
           "build_scheduler", "evaluate", "resolve_device", "train_one_epoch"]
