"""The CAM extractor contract and the ``CAMS`` registry.

Every localization-map method (the native CAM, the Grad-CAM family, ...) is a
:class:`CamExtractor` registered in :data:`CAMS`::

    with CAMS.get("gradcam")(method, target_stage=None) as extractor:
        logits, maps = extractor(x, classes)          # (B, K), (B, h, w)
        scoremaps = to_scoremaps(maps, 224)           # (B, 224, 224) in [0, 1]

``method`` is a WSOL method (or any object like it): ``method.net`` is a
:class:`~wsolbench.backbones.CamBackbone` (``forward_features``, ``forward_head``,
``head_weight``, ``stages``, ``stage_module(name)``, ``last_stage``) and
``method.localization_maps(x, classes) -> (logits, maps)`` gives its own maps.

``maps`` are raw: float32, at the target stage's resolution, on ``x``'s device,
neither resized nor normalized (each extractor's docstring says whether a ReLU was
applied); :func:`wsolbench.cams.to_scoremaps` is the one shared resize + min-max
step. ``logits`` come from the same forward pass the maps were read from.

Extractors do not change the model's train/eval mode: call them on a model in
eval mode, as the evaluation does.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, ClassVar

from torch import Tensor

from wsolbench._registry import Registry
from wsolbench.errors import ConfigError


def _name_extractor(name: str, cls: Any) -> None:
    # The registered name is the one the record shows (describe()["name"]).
    if cls.__dict__.get("name"):
        raise ValueError(f"cam extractor {cls.__name__} is already registered as {cls.name!r}")
    cls.name = name


CAMS: Registry[Any] = Registry("cam", on_register=_name_extractor)


def resolve_stage(net: Any, target_stage: str | None) -> str:
    """The stage name ``target_stage`` means for ``net`` (None: its last stage, the native CAM's)."""
    last = getattr(net, "last_stage", None)
    if last is None:
        raise ConfigError(f"backbone {type(net).__name__} declares no stages; cannot choose a CAM target layer")
    return last if target_stage is None else target_stage


class CamExtractor:
    """Base class: ``extractor(x, classes) -> (logits, maps)`` for one class per image.

    Args:
        model: a WSOL method (``.net`` a CamBackbone, ``.localization_maps``).
        target_stage: the backbone stage the maps are read from (a name of
            ``model.net.stages``); None is ``model.net.last_stage``.

    Call: ``x`` ``(B, 3, H, W)`` on the model's device, ``classes`` ``(B,)`` long (one
    class per image, e.g. the ground-truth label). Returns ``logits`` float32
    ``(B, K)`` and ``maps`` float32 ``(B, h, w)``, raw, on ``x``'s device.

    Class attributes: ``name`` (set by :data:`CAMS` registration), ``needs_grad``
    (runs a backward pass; it enables grad itself, so it works inside an outer
    ``torch.no_grad()``), ``relu`` (maps are rectified), ``stochastic`` (draws random
    noise from torch's global generator: seed it for repeatable maps).
    Hooks, where an extractor needs them, are registered in ``__init__`` and removed
    by :meth:`close` (or on leaving a ``with`` block).
    """

    name: ClassVar[str] = ""
    needs_grad: ClassVar[bool] = False
    relu: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    def __init__(self, model: Any, target_stage: str | None = None) -> None:
        self.model = model
        self.net = model.net
        self.target_stage = target_stage

    def __call__(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 4:
            raise ValueError(f"{self.name}: expected images (B, 3, H, W), got shape {tuple(x.shape)}")
        if classes.shape != (x.shape[0],):
            raise ValueError(f"{self.name}: expected one class per image, shape ({x.shape[0]},), "
                             f"got {tuple(classes.shape)}")
        logits, maps = self._extract(x, classes.long())
        return logits.detach().float(), maps.detach().float()

    def _extract(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a run record stores about the maps: JSON-serializable."""
        return {"name": self.name, "target_stage": self.target_stage, "relu": self.relu,
                "needs_grad": self.needs_grad, "stochastic": self.stochastic}

    def close(self) -> None:
        """Remove any hooks from the model; the extractor is unusable afterwards."""

    def __enter__(self) -> CamExtractor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
