"""Frozen, typed run configuration: validated on construction, hashed stably.

A run is described by one :class:`RunConfig` made of small sections. Files
(YAML or JSON) and ``--set section.key=value`` overrides are applied once, at
the edge, by :func:`load_config`; the resolved config is saved with every run.

This module is torch-free on purpose: records and leaderboards import it and
must rebuild without a GPU stack. Names that live in registries (objective,
backbone, method) are checked against those registries by the runner before any
work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from wsolbench.errors import ConfigError

#: The community protocol's evaluation resolution (Choe et al., CVPR 2020).
EVAL_RESOLUTION = 224
#: ImageNet normalization used by torchvision's pretrained backbones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEVICES = ("auto", "cpu", "cuda")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _finite_nonneg(name: str, value: float) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
           f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in "part-on-body" shapes dataset (see ``wsolbench/data/synthetic.py``).

    Each image holds one object: a plain body (the localization target) carrying a
    small disk whose colour gives the class, over a background whose stripe
    orientation agrees with the class with probability ``rho``, plus clutter.
    """

    num_classes: int = 6
    image_size: int = 64
    n_train: int = 2000
    n_val: int = 400
    n_test: int = 400
    seed: int = 0
    rho: float = 0.5  # probability that the background stripes follow the class
    body_cue: float = 0.06  # strength of the weak whole-body class tint
    part_frac: float = 0.28  # part radius as a fraction of the body radius
    body_radius: tuple[float, float] = (0.30, 0.45)  # body radius range, fraction of image size
    max_distractors: int = 3

    def __post_init__(self) -> None:
        _check(2 <= self.num_classes <= 12, f"synthetic.num_classes must be in [2, 12], got {self.num_classes}")
        _check(32 <= self.image_size <= 512, f"synthetic.image_size must be in [32, 512], got {self.image_size}")
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"synthetic.{name} must be an integer >= 1, got {value!r}")
        _check(0.0 <= self.rho <= 1.0, f"synthetic.rho must be in [0, 1], got {self.rho}")
        _finite_nonneg("synthetic.body_cue", self.body_cue)
        _check(0.05 <= self.part_frac <= 0.9, f"synthetic.part_frac must be in [0.05, 0.9], got {self.part_frac}")
        lo, hi = self.body_radius
        _check(0.05 <= lo <= hi <= 0.49, f"synthetic.body_radius must satisfy 0.05 <= lo <= hi <= 0.49, got {self.body_radius}")
        _check(0 <= self.max_distractors <= 10, f"synthetic.max_distractors must be in [0, 10], got {self.max_distractors}")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are fed.

    ``dataset``: ``synthetic`` (built in), ``manifest`` (a prepared manifest
    folder, ``manifest``), or the name of a real dataset converter (``cub``,
    ``imagenet``, ``openimages``, ``voc``, ``pet``, ``wsolevaluation``) whose
    raw files are under ``root``; the converter's manifest is written once
    under ``data_dir`` and reused.
    """

    dataset: str = "synthetic"
    manifest: str | None = None  # a prepared manifest folder (dataset: manifest)
    root: str | None = None  # the raw dataset folder (dataset: a converter name)
    data_dir: str | None = None  # where generated data and converted manifests go; default <output-dir>/data
    input_size: int = 64  # side of the square network input (the crop size when cropping)
    resize_size: int | None = None  # train: resize to this square before cropping (256 in the protocol)
    crop: str = "none"  # train crop: none | random (RandomCrop) | random_resized (RandomResizedCrop)
    batch_size: int = 64
    eval_batch_size: int = 128
    num_workers: int = 0
    hflip: bool = True
    cache_images: bool = False  # keep decoded images in memory (small datasets: saves a decode per epoch)
    on_bad_image: str = "fail"  # a corrupt or missing image at training time: fail (name it) or skip (count it)
    source_options: dict[str, Any] = field(default_factory=dict)  # converter options, e.g. {"cubv2": DIR}
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _check(isinstance(self.dataset, str) and bool(self.dataset), f"data.dataset must be a name, got {self.dataset!r}")
        _check(self.dataset != "manifest" or bool(self.manifest), "data.manifest is required when data.dataset is 'manifest'")
        _check(16 <= self.input_size <= 1024, f"data.input_size must be in [16, 1024], got {self.input_size}")
        _check(self.resize_size is None or self.resize_size >= self.input_size,
               f"data.resize_size must be >= data.input_size ({self.input_size}), got {self.resize_size}")
        _check(self.crop in ("none", "random", "random_resized"),
               f"data.crop must be none, random or random_resized, got {self.crop!r}")
        for name in ("batch_size", "eval_batch_size"):
            _check(getattr(self, name) >= 1, f"data.{name} must be >= 1, got {getattr(self, name)}")
        _check(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        _check(self.on_bad_image in ("fail", "skip"), f"data.on_bad_image must be fail or skip, got {self.on_bad_image!r}")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "small_cnn"
    width: int = 16  # channel width of the small CPU network (ignored by torchvision backbones)
    pretrained: bool = False  # ImageNet weights from the torch cache (TORCH_HOME) or ``weights``; never downloaded
    weights: str | None = None  # a local state-dict file with torchvision names; fc is never loaded
    large_feature_map: bool = True  # the WSOL literature's larger CAM (e.g. ResNet-50 last stage stride 1)

    def __post_init__(self) -> None:
        _check(self.width >= 1, f"model.width must be >= 1, got {self.width}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Which training objective, with its hyperparameters (formulas in ``objectives.py``).

    ``normalize_loss_scale`` divides the loss by its scale relative to label
    smoothing (``1 + lam`` for KL-uniform), so that KL-uniform and label
    smoothing with the same effective smoothing take identical SGD steps.
    """

    name: str = "ce"
    eps: float = 0.1  # label_smoothing
    beta: float = 0.5  # confidence_penalty
    lam: float = 0.3  # kl_uniform
    normalize_loss_scale: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and bool(self.name), f"objective.name must be a non-empty string, got {self.name!r}")
        _check(0.0 <= self.eps < 1.0, f"objective.eps must be in [0, 1), got {self.eps}")
        _finite_nonneg("objective.beta", self.beta)
        _finite_nonneg("objective.lam", self.lam)

    def label(self) -> str:
        """A short human label, e.g. ``kl_uniform(lam=0.3)``."""
        params = {"label_smoothing": "eps", "confidence_penalty": "beta", "kl_uniform": "lam"}
        key = params.get(self.name)
        text = self.name if key is None else f"{self.name}({key}={getattr(self, key):g})"
        return text + (" [normalized]" if self.normalize_loss_scale else "")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, Nesterov)
    lr: float = 3e-3
    weight_decay: float = 5e-4
    epochs: int = 5
    schedule: str = "onecycle"  # "onecycle", "step" or "constant"
    warmup: float = 0.2  # fraction of steps warming up (onecycle)
    step_every: int = 30  # epochs between x0.1 decays (step)
    new_layer_lr_mult: float = 1.0  # learning-rate multiplier of new layers (head, adapted layers); 10 in the papers

    def __post_init__(self) -> None:
        _check(self.optimizer in ("adamw", "sgd"), f"optim.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        _check(self.lr > 0 and math.isfinite(self.lr), f"optim.lr must be > 0, got {self.lr}")
        _finite_nonneg("optim.weight_decay", self.weight_decay)
        _check(self.epochs >= 1, f"optim.epochs must be >= 1, got {self.epochs}")
        _check(self.schedule in ("onecycle", "step", "constant"), f"optim.schedule must be onecycle, step or constant, got {self.schedule!r}")
        _check(0.0 < self.warmup < 1.0, f"optim.warmup must be in (0, 1), got {self.warmup}")
        _check(self.step_every >= 1, f"optim.step_every must be >= 1, got {self.step_every}")
        _check(self.new_layer_lr_mult > 0, f"optim.new_layer_lr_mult must be > 0, got {self.new_layer_lr_mult}")


@dataclass(frozen=True)
class TrainConfig:
    """How a run is carried out (none of these change the numbers, except ``select``)."""

    select: str = "last"  # checkpoint evaluated on test: "last" (community default) or "best" on val
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at the end of each epoch)
    tensorboard: bool = False  # per-epoch TensorBoard scalars under the run folder
    compile: bool = False  # torch.compile the model (CUDA)
    channels_last: bool = True  # channels_last memory format on CUDA

    def __post_init__(self) -> None:
        _check(self.select in ("last", "best"), f"train.select must be last or best, got {self.select!r}")
        _check(self.checkpoint_every >= 0, f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation conventions (community protocol, Choe et al. CVPR 2020).

    ``resolution`` is the side at which score maps are scored (224 in the
    protocol; the built-in 64 x 64 dataset is scored at its native size).
    """

    resolution: int = EVAL_RESOLUTION
    threshold_step: float = 0.01
    iou_thresholds: tuple[int, ...] = (30, 50, 70)
    cam_resize: str = "bicubic"
    # Conventions papers disagree on, explicit and recorded with every result:
    loc_contours: str = "largest"  # boxes for Top-1 / GT-known Loc: "largest" contour (CAM, ADL) or "all"
    fixed_threshold: float | None = None  # also report Top-1 / GT-known Loc at this CAM threshold (e.g. 0.15)
    workers: int = 0  # threads for the box / mask metrics (0: one per CPU core, at most 8); numbers do not change

    def __post_init__(self) -> None:
        _check(16 <= self.resolution <= 2048, f"eval.resolution must be in [16, 2048], got {self.resolution}")
        _check(0.0 < self.threshold_step <= 0.5, f"eval.threshold_step must be in (0, 0.5], got {self.threshold_step}")
        _check(len(self.iou_thresholds) >= 1 and all(0 < t <= 100 for t in self.iou_thresholds),
               f"eval.iou_thresholds must be percentages in (0, 100], got {self.iou_thresholds}")
        _check(50 in self.iou_thresholds, "eval.iou_thresholds must include 50 (MaxBoxAcc and Top-1 Loc use IoU 0.5)")
        _check(self.cam_resize in ("bicubic", "bilinear"), f"eval.cam_resize must be bicubic or bilinear, got {self.cam_resize!r}")
        _check(self.loc_contours in ("largest", "all"), f"eval.loc_contours must be largest or all, got {self.loc_contours!r}")
        _check(self.workers >= 0, f"eval.workers must be >= 0, got {self.workers}")
        _check(self.fixed_threshold is None or 0.0 <= self.fixed_threshold < 1.0,
               f"eval.fixed_threshold must be in [0, 1), got {self.fixed_threshold}")


@dataclass(frozen=True)
class RunConfig:
    name: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch intra-op threads on CPU; None keeps torch's default
    deterministic: bool = True
    method: str = "cam"  # a registered WSOL method (wsolbench.methods)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        _check(self.device in DEVICES or (self.device.startswith("cuda:") and self.device[5:].isdigit()),
               f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        _check(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def config_hash(self) -> str:
        """A stable 12-hex-digit hash of everything that changes the numbers.

        ``name``, ``device``-independent settings are included; the run name is not.
        """
        payload = to_dict(self)
        payload.pop("name")
        payload["data"].pop("data_dir")
        payload["data"].pop("root")  # where the raw files are does not change the numbers
        train = payload.pop("train")  # how a run is carried out, except the checkpoint choice
        payload["select"] = train["select"]
        payload["eval"].pop("workers")  # how fast, not what
        return stable_hash(payload)

    def with_name(self) -> RunConfig:
        """This config with ``name`` filled from the objective when empty."""
        if self.name:
            return self
        return dataclasses.replace(self, name=self.objective.name)


def stable_hash(payload: Any, length: int = 12) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def to_dict(obj: Any) -> Any:
    """A JSON-ready copy of a (nested) config dataclass."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- presets

def _smoke() -> RunConfig:
    return RunConfig(
        data=DataConfig(input_size=64, batch_size=64, cache_images=True,
                        synthetic=SyntheticConfig(num_classes=4, n_train=512, n_val=128, n_test=128)),
        optim=OptimConfig(epochs=3),
        eval=EvalConfig(resolution=64, threshold_step=0.02),
    )


def _quick() -> RunConfig:
    return RunConfig(
        data=DataConfig(input_size=64, batch_size=64, cache_images=True,
                        synthetic=SyntheticConfig(num_classes=6, n_train=2000, n_val=400, n_test=400)),
        optim=OptimConfig(epochs=5),
        eval=EvalConfig(resolution=64, threshold_step=0.01),
    )


def _paper(dataset: str, *, epochs: int, batch_size: int, lr: float, step_every: int, weight_decay: float,
           backbone: str = "resnet50_wsol") -> RunConfig:
    """The community training protocol (wsolevaluation ``config.py`` / ``data_loaders.py``, Choe et al. 2020):
    ImageNet-pretrained backbone with the larger feature map, SGD (momentum 0.9, Nesterov), LR x0.1 every
    ``step_every`` epochs, new layers at 10x LR; train: resize 256 x 256, random crop 224, flip; val/test:
    resize 224 x 224; CAM thresholds every 0.001; the last checkpoint is evaluated."""
    return RunConfig(
        data=DataConfig(dataset=dataset, input_size=224, resize_size=256, crop="random",
                        batch_size=batch_size, eval_batch_size=64, num_workers=4),
        model=ModelConfig(backbone=backbone, pretrained=True, large_feature_map=True),
        optim=OptimConfig(optimizer="sgd", lr=lr, weight_decay=weight_decay, epochs=epochs, schedule="step",
                          step_every=step_every, new_layer_lr_mult=10.0),
        eval=EvalConfig(resolution=EVAL_RESOLUTION, threshold_step=0.001),
        train=TrainConfig(select="last"),
    )


def _cub_paper() -> RunConfig:
    # CUB, ResNet-50 CAM: 50 epochs, batch 16, lr 2.3222617e-4, decay every 15 epochs, wd 1e-4: the values of
    # the wsolevaluation hyperparameter sheet as echoed in public training scripts built on it (the sheet itself
    # is not public text; protocol notes section 1.1). VGG16: lr 1.268269e-5, batch 32, wd 5e-4 (issue #60).
    return _paper("cub", epochs=50, batch_size=16, lr=2.3222617e-4, step_every=15, weight_decay=1e-4)


def _imagenet_paper() -> RunConfig:
    # ImageNet: 10 epochs, decay every 3 epochs, batch 32, wd 5e-4 (wsolevaluation's ImageNet schedule);
    # lr 1.7e-4 for ResNet-50 is our choice within the sheet's range, not a published value: tune it on val.
    return _paper("imagenet", epochs=10, batch_size=32, lr=1.7e-4, step_every=3, weight_decay=5e-4)


def _openimages_paper() -> RunConfig:
    # OpenImages30k: the wsolevaluation README's example (VGG16 CAM): batch 32, 10 epochs, lr 0.00227913316,
    # decay every 3 epochs, wd 5e-4; PxAP is its metric.
    return _paper("openimages", epochs=10, batch_size=32, lr=2.27913316e-3, step_every=3, weight_decay=5e-4,
                  backbone="vgg16_wsol")


def _voc_paper() -> RunConfig:
    # PASCAL VOC 2012 (mPxAP), as in the entropy-regularization study (Hwang et al., PRL 2023), whose exact
    # schedule is not public: we use the OpenImages protocol above (masks, 10 epochs, decay every 3) with
    # ResNet-50; the study's own numbers are therefore not directly comparable.
    return _paper("voc", epochs=10, batch_size=32, lr=1.7e-4, step_every=3, weight_decay=5e-4)


#: Named starting points; ``smoke`` is what CI runs, ``quick`` is ``wsolbench bench``'s default; the
#: ``*-paper`` presets reproduce the published protocols on the real datasets (they need ``--data-root``).
PRESETS = {"smoke": _smoke, "quick": _quick, "cub-paper": _cub_paper, "imagenet-paper": _imagenet_paper,
           "openimages-paper": _openimages_paper, "voc-paper": _voc_paper}

#: The four objectives a bench compares by default (same seed, data order, model, schedule).
BENCH_OBJECTIVES = ("ce", "label_smoothing", "confidence_penalty", "kl_uniform")


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None


# --------------------------------------------------------------------------- loading

def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce a parsed YAML/JSON/CLI value to the annotated type, or raise ConfigError."""
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin is tuple or hint is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, where) for v in value)
    if type(None) in args:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(value, inner, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(as_float)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, values: Mapping[str, Any], where: str = "config") -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where != "config" else k) for k, v in values.items()}
    return cls(**kwargs)


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["optim.lr=0.1", "objective.name=kl_uniform"]`` -> nested dict of strings."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict, with one-line errors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: the top level must be a mapping, got {type(data).__name__}")
    return dict(data)


def load_config(*, preset_name: str | None = "quick", path: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Resolve preset <- file <- overrides into one validated :class:`RunConfig`.

    A file may name its own starting point with a top-level ``preset:`` key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = read_config_file(path)
        preset_name = data.pop("preset", preset_name)
        where = f"config file {path}"
    else:
        where = "config"
    base = to_dict(preset(preset_name)) if preset_name else to_dict(RunConfig())
    merged = merge_dicts(base, data)
    if overrides:
        merged = merge_dicts(merged, overrides)
    try:
        return _build(RunConfig, merged)
    except ConfigError as exc:
        if path is not None and not str(exc).startswith("config file"):
            raise ConfigError(f"{where}: {exc}") from None
        raise


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Rebuild a config saved in a run record."""
    return _build(RunConfig, data)
