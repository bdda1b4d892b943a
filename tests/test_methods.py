"""The method contract, for every registered method: finite losses, whole-state checkpoints, maps."""

from __future__ import annotations

import pytest
import torch

import plugin_method  # noqa: F401  (registers test_aux_masks: own parameters, random masks, two phases)
from wsolbench.backbones import create_backbone
from wsolbench.cams import CAMS, to_scoremaps
from wsolbench.config import OptimConfig
from wsolbench.engine import AmpPolicy, build_phases, train_one_epoch
from wsolbench.engine.state import TrainingState, load_weights, restore_training, save_training, save_weights
from wsolbench.errors import DataError
from wsolbench.methods import METHODS, create_method, step_context
from wsolbench.objectives import build_objective, soft_targets

K = 3


def _method(name: str, seed: int = 0):
    torch.manual_seed(seed)
    net = create_backbone("small_cnn", num_classes=K, width=4)
    return create_method(name, net=net, objective=build_objective("kl_uniform"))


def _batch(seed: int = 0, n: int = 4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=gen)
    y = torch.randint(0, K, (n,), generator=gen)
    return {"image": x, "label": y, "target": y}


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.parametrize("soft", [False, True], ids=["indices", "distributions"])
def test_training_step_is_finite_in_every_phase(name, soft):
    method = _method(name).train()
    batch = _batch()
    if soft:
        batch["target"] = soft_targets(batch["label"], K)
    for phase in method.phases:
        out = method.training_step(batch, step_context(seed=0, epoch=1, step=0, phase=phase, num_classes=K))
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert out["logits"].shape == (4, K)
        out["loss"].backward()


@pytest.mark.parametrize("name", METHODS.names())
def test_random_draws_are_a_function_of_the_position_only(name):
    a, b = _method(name).train(), _method(name).train()
    batch = _batch()
    ctx = lambda: step_context(seed=3, epoch=2, step=5, phase=a.phases[0], num_classes=K)  # noqa: E731
    torch.manual_seed(1)
    out_a = a.training_step(batch, ctx())
    torch.manual_seed(999)  # the global RNG must not matter
    out_b = b.training_step(batch, ctx())
    assert torch.equal(out_a["loss"], out_b["loss"])


@pytest.mark.parametrize("name", METHODS.names())
def test_every_parameter_round_trips_through_checkpoint_and_resume(name, tmp_path):
    """Train a few steps, save the training state, restore it into a fresh method: every tensor of the
    method (backbone, taps, the method's own modules) and of each phase's optimizer comes back, and the
    next step is bit-identical."""
    torch.use_deterministic_algorithms(True)
    try:
        method = _method(name)
        cfg = OptimConfig(lr=0.01, epochs=2)
        phases = build_phases(method, cfg, steps_per_epoch=4)
        amp = AmpPolicy.for_device(torch.device("cpu"))
        scaler = amp.scaler()
        loader = [_batch(seed=i) | {"index": torch.arange(4)} for i in range(3)]
        train_one_epoch(method, loader, phases=phases, device=torch.device("cpu"), amp=amp, scaler=scaler,
                        epoch=1, seed=0, num_classes=K)
        state = TrainingState(epoch=2, history=[{"epoch": 1}])
        save_training(tmp_path / "state.pt", method=method, phases=phases, scaler=scaler, state=state,
                      config_hash="h")
        save_weights(tmp_path / "model.pt", method)

        fresh = _method(name, seed=7)  # other initial values everywhere
        fresh_phases = build_phases(fresh, cfg, steps_per_epoch=4)
        restored = restore_training(tmp_path / "state.pt", method=fresh, phases=fresh_phases, scaler=amp.scaler(),
                                    config_hash="h")
        assert restored.epoch == 2 and restored.history == [{"epoch": 1}]
        own, back = method.state_dict(), fresh.state_dict()
        assert set(own) == set(back) and all(torch.equal(own[k], back[k]) for k in own)
        assert [p.name for p in fresh_phases] == list(method.phases)

        more = [_batch(seed=10) | {"index": torch.arange(4)}]
        for m, ph in ((method, phases), (fresh, fresh_phases)):
            train_one_epoch(m, more, phases=ph, device=torch.device("cpu"), amp=amp, scaler=amp.scaler(),
                            epoch=2, seed=0, num_classes=K)
        own, back = method.state_dict(), fresh.state_dict()
        assert all(torch.equal(own[k], back[k]) for k in own)

        other = _method(name, seed=9)
        load_weights(other, tmp_path / "model.pt")
        saved = torch.load(tmp_path / "model.pt", weights_only=True)["method"]
        assert all(torch.equal(other.state_dict()[k], saved[k]) for k in saved)
    finally:
        torch.use_deterministic_algorithms(False)


def test_loading_a_state_that_lacks_the_methods_own_parameters_is_an_error(tmp_path):
    plain = _method("cam")
    save_weights(tmp_path / "model.pt", plain)
    with pytest.raises(DataError, match="missing .*aux"):
        load_weights(_method(plugin_method.NAME), tmp_path / "model.pt")
    save_weights(tmp_path / "aux.pt", _method(plugin_method.NAME))
    with pytest.raises(DataError, match="unexpected"):
        load_weights(_method("cam"), tmp_path / "aux.pt")


@pytest.mark.parametrize("cam", CAMS.names())
@pytest.mark.parametrize("name", METHODS.names())
def test_maps_of_every_method_and_extractor_have_the_right_shape_and_range(name, cam):
    method = _method(name).eval()
    batch = _batch(n=3)
    with CAMS.get(cam)(method) as extractor:
        logits, raw = extractor(batch["image"], batch["label"])
    h = 32 // method.net.stages[-1].stride
    assert logits.shape == (3, K) and raw.shape == (3, h, h) and torch.isfinite(raw).all()
    maps = to_scoremaps(raw, 48)
    assert maps.shape == (3, 48, 48) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert all(p.grad is None for p in method.parameters())


def test_a_method_with_its_own_maps_is_read_by_the_native_extractor():
    method = _method(plugin_method.NAME).eval()
    with torch.no_grad():
        method.aux.weight.copy_(-2 * method.net.fc.weight)  # aux CAM = -2 x the head's CAM
        method.gate.fill_(1.0)
    batch = _batch(n=2)
    with CAMS.get("cam")(method) as extractor:
        _, maps = extractor(batch["image"], batch["label"])
    with torch.no_grad():
        feats = method.net.forward_features(batch["image"])
        head = torch.einsum("bchw,bc->bhw", feats, method.net.fc.weight[batch["label"]])
    torch.testing.assert_close(maps, -head, rtol=1e-5, atol=1e-5)


TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--no-progress"]
#: Settings that let one epoch reach every loss of a method (their published warm-ups are longer).
ONE_EPOCH = {"alignment": ["--set", "method.warm_epochs=0"], "minmax_entropy": ["--set", "method.erase_start_epoch=1"]}
BOUNDED = ("top1", "MaxBoxAcc", "MaxBoxAccV2", "GT-known Loc", "Top-1 Loc", "PxAP")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in METHODS.names() if n != plugin_method.NAME])
def test_bench_trains_and_evaluates_every_method_with_two_objectives(name, tmp_path):
    import json

    from click.testing import CliRunner

    from wsolbench.cli import cli

    result = CliRunner().invoke(cli, ["bench", *TINY, *ONE_EPOCH.get(name, []), "--method", name,
                                      "--objective", "ce,kl_uniform", "--output-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/record.json"))]
    assert len(records) == 2
    assert {r["config"]["objective"]["name"] for r in records} == {"ce", "kl_uniform"}
    for record in records:
        summary = record["summary"]
        assert summary["method"].split("(")[0] == name and record["config"]["method"]["name"] == name
        for key in BOUNDED:
            assert 0 <= summary[key] <= 100, (key, summary[key])
