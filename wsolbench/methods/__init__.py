"""WSOL methods: how a training step uses the backbone, registered by name (one file each).

A method returns named losses and the logits; the trainer never branches on
names. The objective (CE, label smoothing, confidence penalty, KL-uniform) is
passed in, so any method combines with any objective. See :mod:`wsolbench.methods.base`.
"""

from wsolbench.methods import cam as _cam  # noqa: F401  (registers "cam")
from wsolbench.methods.base import METHODS, StepContext, WsolMethod, create_method, step_context, step_seed

__all__ = ["METHODS", "StepContext", "WsolMethod", "create_method", "step_context", "step_seed"]
