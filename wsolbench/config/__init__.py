"""Run configuration: frozen, typed sections validated on construction; presets as data; loading at the edge.

- :mod:`~wsolbench.config.sections`: the sections and :class:`RunConfig`, its dict form and stable hash;
- :mod:`~wsolbench.config.axes`: the ``method`` / ``objective`` axis sections (a name and that class's params);
- :mod:`~wsolbench.config.presets`: named configurations with their sources;
- :mod:`~wsolbench.config.loading`: preset <- file <- overrides.

Torch-free: records and leaderboards import it and must rebuild without a GPU stack.
"""

from wsolbench.config.axes import AxisConfig, axis_label, axis_slug, build_axis, register_schema
from wsolbench.config.loading import (config_from_dict, load_config, merge_dicts, parse_overrides,
                                      read_config_file)
from wsolbench.config.presets import BENCH_OBJECTIVES, DEFAULT_BENCH, DEFAULT_SEEDS, PRESETS, Preset, preset
from wsolbench.config.sections import (DEVICES, DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig,
                                       SyntheticConfig, TrainConfig, build_section, stable_hash, to_dict)
from wsolbench.structs import EVAL_RESOLUTION, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BENCH_OBJECTIVES", "DEFAULT_BENCH", "DEFAULT_SEEDS", "DEVICES", "EVAL_RESOLUTION", "IMAGENET_MEAN", "IMAGENET_STD", "PRESETS", "AxisConfig",
    "DataConfig", "EvalConfig", "ModelConfig", "OptimConfig", "Preset", "RunConfig", "SyntheticConfig",
    "TrainConfig", "axis_label", "axis_slug", "build_axis", "build_section", "config_from_dict", "load_config",
    "merge_dicts", "parse_overrides", "preset", "read_config_file", "register_schema", "stable_hash", "to_dict",
]
