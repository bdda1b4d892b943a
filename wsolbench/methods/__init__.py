"""WSOL methods: how a training step uses the backbone, registered by name.

A method returns named losses and the logits; the trainer never branches on
names. The objective (CE, label smoothing, confidence penalty, KL-uniform) is
passed in, so any method combines with any objective.
"""

from wsolbench.methods.base import METHODS, WsolMethod, create_method
from wsolbench.methods import cam as _cam  # noqa: F401  (registers "cam")

__all__ = ["METHODS", "WsolMethod", "create_method"]
