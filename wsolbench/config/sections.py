"""The run configuration's sections: frozen, typed, validated on construction, hashed stably.

A run is described by one :class:`RunConfig` made of small sections; ``method``
and ``objective`` are axis sections (:mod:`wsolbench.config.axes`) holding a
registered name and that class's own parameters. Torch-free on purpose. Names
that live in other registries (backbone, CAM extractor, dataset converter) are
checked by the runner before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from wsolbench.config.axes import AxisConfig, build_axis
from wsolbench.errors import ConfigError
from wsolbench.structs import EVAL_RESOLUTION, check_threshold_step

DEVICES = ("auto", "cpu", "cuda")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _finite_nonneg(name: str, value: float) -> None:
    _check(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
           f"{name} must be a finite number >= 0, got {value!r}")


def _check_split_sizes(section: str, cfg: Any) -> None:
    """A built-in dataset's ``n_train``, ``n_val``, ``n_test``: integers >= 1."""
    for name in ("n_train", "n_val", "n_test"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value >= 1, f"{section}.{name} must be an integer >= 1, got {value!r}")


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
        _check_split_sizes("synthetic", self)
        _check(0.0 <= self.rho <= 1.0, f"synthetic.rho must be in [0, 1], got {self.rho}")
        _finite_nonneg("synthetic.body_cue", self.body_cue)
        _check(0.05 <= self.part_frac <= 0.9, f"synthetic.part_frac must be in [0.05, 0.9], got {self.part_frac}")
        lo, hi = self.body_radius
        _check(0.05 <= lo <= hi <= 0.49, f"synthetic.body_radius must satisfy 0.05 <= lo <= hi <= 0.49, got {self.body_radius}")
        _check(0 <= self.max_distractors <= 10, f"synthetic.max_distractors must be in [0, 10], got {self.max_distractors}")


@dataclass(frozen=True)
class DigitsConfig:
    """The built-in digits dataset (see ``wsolbench/data/digits.py``, ``data_manifests/digits.md``).

    scikit-learn's bundled 8 x 8 handwritten digits 0..K-1, upscaled and alpha-blended in a
    bright colour onto a dark noisy background with clutter strokes; the mask is the upscaled
    digit's intensity above ``mask_threshold``. Train, val and test draw from fixed, disjoint
    pools of source digits. K=5 is the default because 10 classes did not train on a short
    CPU schedule (notes/synthetic.md).
    """

    num_classes: int = 5
    image_size: int = 64
    n_train: int = 1500
    n_val: int = 400
    n_test: int = 400
    seed: int = 0
    digit_size: tuple[float, float] = (0.47, 0.63)  # side of the digit's 8 x 8 grid, fraction of the image size
    clutter: tuple[int, int] = (3, 8)  # clutter strokes (line segments and arcs) per image, min and max
    mask_threshold: float = 0.3  # mask = upscaled digit intensity (in [0, 1]) above this

    def __post_init__(self) -> None:
        _check(2 <= self.num_classes <= 10, f"digits.num_classes must be in [2, 10], got {self.num_classes}")
        _check(32 <= self.image_size <= 512, f"digits.image_size must be in [32, 512], got {self.image_size}")
        _check_split_sizes("digits", self)
        _check(self.seed >= 0, f"digits.seed must be >= 0, got {self.seed}")
        _check(len(self.digit_size) == 2 and 0.2 <= self.digit_size[0] <= self.digit_size[1] <= 0.75,
               f"digits.digit_size must satisfy 0.2 <= lo <= hi <= 0.75, got {self.digit_size}")
        _check(len(self.clutter) == 2 and 0 <= self.clutter[0] <= self.clutter[1] <= 20,
               f"digits.clutter must satisfy 0 <= min <= max <= 20, got {self.clutter}")
        _check(0.05 <= self.mask_threshold <= 0.9,
               f"digits.mask_threshold must be in [0.05, 0.9], got {self.mask_threshold}")


#: The generated datasets and their ``data`` sections: only the one in use is part of a run's hash.
BUILTIN_DATASETS = ("synthetic", "digits")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are fed.

    ``dataset``: ``synthetic`` or ``digits`` (built in), ``manifest`` (a prepared manifest
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
    # several labels per image (PASCAL VOC): train on the normalized multi-hot target, report mAP and mPxAP.
    # auto: on when some training image of the manifest has more than one label.
    multi_label: str = "auto"
    source_options: dict[str, Any] = field(default_factory=dict)  # converter options, e.g. {"cubv2": DIR}
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    digits: DigitsConfig = field(default_factory=DigitsConfig)

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
        _check(self.multi_label in ("auto", "on", "off"),
               f"data.multi_label must be auto, on or off, got {self.multi_label!r}")


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
    cam: str = "cam"  # the CAM extractor (wsolbench.cams.CAMS): native "cam", or the Grad-CAM family
    cam_stage: str | None = None  # the backbone stage the Grad-CAM family reads (None: the last stage)
    gallery: int = 16  # test images whose score maps a run keeps for reports (the same sample in every run)
    gallery_extremes: int = 4  # also keep this run's best and worst test images by IoU (each this many)

    def __post_init__(self) -> None:
        _check(16 <= self.resolution <= 2048, f"eval.resolution must be in [16, 2048], got {self.resolution}")
        check_threshold_step(self.threshold_step, "eval.threshold_step")
        _check(len(self.iou_thresholds) >= 1 and all(0 < t <= 100 for t in self.iou_thresholds),
               f"eval.iou_thresholds must be percentages in (0, 100], got {self.iou_thresholds}")
        _check(50 in self.iou_thresholds, "eval.iou_thresholds must include 50 (MaxBoxAcc and Top-1 Loc use IoU 0.5)")
        _check(self.cam_resize in ("bicubic", "bilinear"), f"eval.cam_resize must be bicubic or bilinear, got {self.cam_resize!r}")
        _check(self.loc_contours in ("largest", "all"), f"eval.loc_contours must be largest or all, got {self.loc_contours!r}")
        _check(self.workers >= 0, f"eval.workers must be >= 0, got {self.workers}")
        _check(self.fixed_threshold is None or 0.0 <= self.fixed_threshold < 1.0,
               f"eval.fixed_threshold must be in [0, 1), got {self.fixed_threshold}")
        _check(isinstance(self.cam, str) and bool(self.cam), f"eval.cam must be a CAM extractor name, got {self.cam!r}")
        _check(self.gallery >= 0 and self.gallery_extremes >= 0,
               f"eval.gallery and eval.gallery_extremes must be >= 0, got {self.gallery}, {self.gallery_extremes}")


@dataclass(frozen=True)
class ResourcesConfig:
    """What one run asks of a Ray cluster (``wsolbench bench --executor ray``): CPUs and GPUs per run.

    Where a run executes does not change its numbers, so this section is not in the config hash.
    None: 1 CPU (``threads`` when set), and 1 GPU when the run's device is CUDA (or ``auto`` on a
    cluster with GPUs), else none. Fractions share a device (``num_gpus: 0.5``: two runs per GPU).
    """

    num_cpus: float | None = None
    num_gpus: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            _check(value is None or (math.isfinite(value) and value >= 0),
                   f"resources.{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    name: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch intra-op threads on CPU; None keeps torch's default
    deterministic: bool = True
    method: AxisConfig = field(default_factory=lambda: build_axis("method", "cam"))  # wsolbench.methods
    objective: AxisConfig = field(default_factory=lambda: build_axis("objective", "ce"))  # wsolbench.objectives
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)  # not hashed: where, not what

    def __post_init__(self) -> None:
        _check(self.device in DEVICES or (self.device.startswith("cuda:") and self.device[5:].isdigit()),
               f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        _check(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        for kind in ("method", "objective"):
            value = getattr(self, kind)
            if not isinstance(value, AxisConfig):
                object.__setattr__(self, kind, build_axis(kind, value))
            elif value.kind != kind:
                raise ConfigError(f"{kind} must be a {kind} section, got a {value.kind} section")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def config_hash(self) -> str:
        """A stable 12-hex-digit hash of everything that changes the numbers (:func:`hash_payload`)."""
        return stable_hash(hash_payload(to_dict(self)))

    def protocol_hash(self) -> str:
        """A stable 12-hex-digit hash of the protocol: everything that changes the numbers except the axes a
        benchmark compares (:func:`protocol_payload`). Runs with one protocol hash are comparable."""
        return stable_hash(protocol_payload(to_dict(self)))

    def with_name(self) -> RunConfig:
        """This config with ``name`` filled when empty: ``<method>-<objective>``, each with its strength and
        non-default parameters (``cam-kl_uniform-lam0.3``); the run folder adds the config hash."""
        if self.name:
            return self
        from wsolbench.config.axes import axis_slug

        return dataclasses.replace(self, name=f"{axis_slug(self.method)}-{axis_slug(self.objective)}")


def hash_payload(config: dict[str, Any]) -> dict[str, Any]:
    """What of a config dict (:func:`to_dict`, or a record's ``config``) changes the numbers.

    Left out: the run name; where the data and the raw files are; the ``train`` section (how a run is
    carried out) except its checkpoint choice; the evaluation's thread count and what a run keeps for reports
    (the gallery); the Ray resources; and the sections of the built-in datasets not in use
    (:data:`BUILTIN_DATASETS`), so a new built-in dataset changes no other run's hash. Keys an older config
    lacks are skipped, so a record's config hashes as it did when it was written.
    """
    payload = json.loads(json.dumps(config, default=str))
    payload.pop("name", None)
    data = payload.get("data", {})
    for key in ("data_dir", "root"):
        data.pop(key, None)
    for name in BUILTIN_DATASETS:  # only the generated dataset in use (none for a real one)
        if name != data.get("dataset"):
            data.pop(name, None)
    train = payload.pop("train", {})
    payload["select"] = train.get("select")
    for key in ("workers", "gallery", "gallery_extremes"):
        payload.get("eval", {}).pop(key, None)
    payload.pop("resources", None)
    return payload


#: The axes a benchmark compares (dotted keys): left out of the protocol hash.
AXIS_KEYS = ("method", "objective", "seed", "eval.cam", "eval.cam_stage")


def protocol_payload(config: dict[str, Any]) -> dict[str, Any]:
    """:func:`hash_payload` without the compared axes (:data:`AXIS_KEYS`): the protocol runs share."""
    payload = hash_payload(config)
    for key in AXIS_KEYS:
        *parents, last = key.split(".")
        node = payload
        for part in parents:
            node = node.get(part, {})
        node.pop(last, None)
    return payload


def stable_hash(payload: Any, length: int = 12) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def to_dict(obj: Any) -> Any:
    """A JSON-ready copy of a (nested) config dataclass."""
    if isinstance(obj, AxisConfig):
        return obj.to_dict()
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce a parsed YAML/JSON/CLI value to the annotated type, or raise ConfigError."""
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return build_section(hint, value, where)
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


def coerce_fields(cls: type, values: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``values`` coerced to the annotated field types of dataclass ``cls`` (ConfigError on an unknown key)."""
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    out = {}
    for key, value in values.items():
        at = f"{where}.{key}" if where != "config" else key
        out[key] = build_axis(key, value, at) if hints[key] is AxisConfig else _coerce(value, hints[key], at)
    return out


def build_section(cls: type, values: Mapping[str, Any], where: str = "config") -> Any:
    """A validated ``cls`` from a (parsed) mapping; every error is one ConfigError line naming the key."""
    return cls(**coerce_fields(cls, values, where))
