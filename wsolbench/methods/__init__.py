"""WSOL methods: how a training step uses the backbone, registered by name, one file each.

A method returns named losses and the logits; the trainer never branches on
names. The objective (CE, label smoothing, confidence penalty, KL-uniform) is
passed in, so any method combines with any objective. See :mod:`wsolbench.methods.base`.

Every module of this package is imported here, so a new method is one new file:
its ``@METHODS.register(...)`` runs on import.
"""

import importlib
import pkgutil

from wsolbench.methods.base import METHODS, StepContext, WsolMethod, create_method, step_context, step_seed

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "StepContext", "WsolMethod", "create_method", "step_context", "step_seed"]
