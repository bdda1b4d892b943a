import json

import pytest

from wsolbench.config import (PRESETS, RunConfig, config_from_dict, load_config, parse_overrides, preset)
from wsolbench.errors import ConfigError


def test_presets_build_and_hash_stably():
    for name in PRESETS:
        a, b = preset(name), preset(name)
        assert a == b and a.config_hash() == b.config_hash() and len(a.config_hash()) == 12
    assert preset("smoke").config_hash() != preset("quick").config_hash()


def test_hash_ignores_the_run_name_and_data_dir_but_not_the_objective():
    base = preset("smoke")
    renamed = load_config(preset_name="smoke", overrides={"name": "x", "data": {"data_dir": "/tmp/y"}})
    assert renamed.config_hash() == base.config_hash()
    other = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform"}})
    assert other.config_hash() != base.config_hash()


def test_round_trip_through_dict():
    cfg = load_config(preset_name="quick", overrides=parse_overrides(["optim.lr=0.01", "eval.iou_thresholds=[30,50]"]))
    assert cfg.optim.lr == 0.01 and cfg.eval.iou_thresholds == (30, 50)
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_yaml_file_with_its_own_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: smoke\nobjective:\n  name: kl_uniform\n  lam: 1.0\noptim:\n  epochs: 2\n")
    cfg = load_config(preset_name=None, path=path)
    assert cfg.objective.lam == 1.0 and cfg.optim.epochs == 2
    assert cfg.data.synthetic.num_classes == preset("smoke").data.synthetic.num_classes


@pytest.mark.parametrize("text, match", [
    ("optim: [1, 2", r"line \d+"),
    ("- 1\n- 2\n", "top level must be a mapping"),
    ("optim:\n  lr: -1\n", "optim.lr must be > 0"),
    ("optim:\n  speed: 3\n", "unknown key.*speed"),
    ("objective:\n  name: kl_uniform\n  lam: abc\n", "objective.lam must be a number"),
    ("objective:\n  lam: 1.0\n", "objective 'ce' has no parameter.*lam"),
    ("method:\n  name: nope\n", "unknown method 'nope'"),
    ("eval:\n  cam: 3\n", None),
])
def test_bad_config_files_give_one_line_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    if match is None:  # a number is a valid string: the registry refuses it when the run starts
        load_config(path=path)
        return
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path=path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path="nope.yaml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="device"):
        RunConfig(device="tpu")


def test_run_names_are_method_objective_and_params():
    from wsolbench.config import build_axis
    cfg = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform", "lam": 1.0,
                                                                    "normalize_loss_scale": True}})
    assert cfg.with_name().name == "cam-kl_uniform-lam1-normalize_loss_scale"
    assert load_config(preset_name="smoke").with_name().name == "cam-ce"
    assert build_axis("method", "cam").to_dict() == {"name": "cam"}


def test_method_and_objective_sections_accept_a_bare_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: smoke\nmethod: cam\nobjective: label_smoothing\n")
    cfg = load_config(preset_name=None, path=path)
    assert cfg.method.name == "cam" and cfg.objective.name == "label_smoothing" and cfg.objective.eps == 0.1
    assert cfg.to_dict()["objective"] == {"name": "label_smoothing", "eps": 0.1}


def test_presets_carry_their_sources():
    for name, entry in PRESETS.items():
        assert entry.source and entry.summary, name
    assert "wsolevaluation" in PRESETS["cub-paper"].source
