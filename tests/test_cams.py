"""CAMs: the native CAM maths, the CAMS extractor registry (native + torchcam's Grad-CAM family), to_scoremaps."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from wsolbench.backbones import BACKBONES, CamBackbone, create_backbone
from wsolbench.backbones.small_cnn import SmallCnn
from wsolbench.cams import CAMS, cam_from_features, normalize_minmax, scoremaps_for, to_scoremaps
from wsolbench.cams.torchcam_family import _gradcampp_weights
from wsolbench.errors import ConfigError

# Options that keep the sampling methods fast on the tiny net; everything else runs with its defaults.
FAST = {"smoothgradcampp": {"num_samples": 2}, "sscam": {"num_samples": 2}, "iscam": {"num_samples": 2}}
DETERMINISTIC = [n for n in CAMS.names() if not CAMS.get(n).stochastic]
GRADIENT = [n for n in CAMS.names() if CAMS.get(n).needs_grad]
EXPECTED = {"cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "layercam", "scorecam", "sscam", "iscam"}


# ----------------------------------------------------------------- fixtures


class _StagedSmallCnn(SmallCnn):
    """Stand-in for the backbone stage API while it is not in CamBackbone: small_cnn's four stages."""

    _INDEX = {"stem": 2, "block1": 3, "block2": 4, "block3": 5}
    _STRIDE = {"stem": 2, "block1": 2, "block2": 4, "block3": 4}
    last_stage = "block3"

    @property
    def stages(self):
        w = self.fc.in_features // 4
        channels = {"stem": w, "block1": w, "block2": 2 * w, "block3": 4 * w}
        return tuple(SimpleNamespace(name=n, channels=channels[n], stride=self._STRIDE[n]) for n in self._INDEX)

    def stage_module(self, name):
        if name not in self._INDEX:
            raise ConfigError(f"unknown stage {name!r} (known: {', '.join(self._INDEX)})")
        return self.features[self._INDEX[name]]


def make_net(num_classes: int = 5) -> CamBackbone:
    torch.manual_seed(0)
    if hasattr(CamBackbone, "stage_module"):
        net = create_backbone("small_cnn", num_classes=num_classes, width=4)
    else:
        net = _StagedSmallCnn(num_classes, width=4)
    # non-trivial BatchNorm statistics, so that eval mode differs from train mode
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


class StandIn(nn.Module):
    """A WsolMethod-like object: ``.net`` and the native ``localization_maps``, no ``classify``."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def localization_maps(self, x, classes):
        feats = self.net.forward_features(x)
        return self.net.forward_head(feats), cam_from_features(feats, self.net.head_weight, classes)


class DoubledLogits(StandIn):
    """A method whose ``classify`` is not the backbone's forward (the Grad-CAM family must use it)."""

    def classify(self, x):
        return 2 * self.net(x)


@pytest.fixture
def model():
    return StandIn(make_net())


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32), torch.tensor([0, 3, 1])


def build(name, model, **kwargs):
    return CAMS.get(name)(model, **{**FAST.get(name, {}), **kwargs})


def hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


# ----------------------------------------------------------------- native CAM maths (unchanged)


def test_cam_is_the_weighted_channel_sum_for_each_images_class():
    feats = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    cams = cam_from_features(feats, weight, torch.tensor([1, 0]))
    torch.testing.assert_close(cams[0], 2 * feats[0, 1] - feats[0, 2])
    torch.testing.assert_close(cams[1], feats[1, 0])


def test_logit_is_the_spatial_mean_of_the_cam_plus_bias():
    torch.manual_seed(0)
    net = create_backbone("small_cnn", num_classes=5, width=4).eval()
    x = torch.randn(3, 3, 32, 32)
    feats = net.forward_features(x)
    logits = net.forward_head(feats)
    for k in range(5):
        cam = cam_from_features(feats, net.head_weight, torch.full((3,), k))
        torch.testing.assert_close(cam.mean(dim=(1, 2)) + net.fc.bias[k], logits[:, k], rtol=1e-5, atol=1e-5)


def test_normalize_minmax_including_constant_and_nan_maps():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]], [[0.0, float("nan")], [1.0, 2.0]]])
    out = normalize_minmax(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert (out[1] == 0).all() and (out[2] == 0).all()


def test_scoremaps_are_upsampled_in_unit_range():
    feats = torch.randn(2, 4, 4, 4)
    maps = scoremaps_for(feats, torch.randn(3, 4), torch.tensor([0, 2]), 32)
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert np.isclose(maps.amax(dim=(1, 2)).numpy(), 1.0).all()


def test_scoremaps_for_is_cam_then_to_scoremaps():
    feats, weight, classes = torch.randn(2, 4, 5, 5), torch.randn(3, 4), torch.tensor([2, 1])
    for mode in ("bicubic", "bilinear"):
        torch.testing.assert_close(scoremaps_for(feats, weight, classes, 20, mode=mode),
                                   to_scoremaps(cam_from_features(feats, weight, classes), 20, mode=mode))


def test_to_scoremaps_float32_unit_range_constant_maps_zero_and_no_resize_at_size():
    maps = torch.randn(3, 7, 7, dtype=torch.float64)
    maps[1] = 4.0
    out = to_scoremaps(maps.half(), 28)
    assert out.shape == (3, 28, 28) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and (out[1] == 0).all()
    torch.testing.assert_close(to_scoremaps(maps, 7), normalize_minmax(maps.float()))


@pytest.mark.parametrize("name, size, cam", [("small_cnn", 64, 16), ("resnet18", 64, 2), ("resnet50", 64, 2)])
def test_backbone_shapes_and_cam_resolution(name, size, cam):
    assert name in BACKBONES
    net = create_backbone(name, num_classes=7).eval()
    with torch.no_grad():
        feats = net.forward_features(torch.randn(2, 3, size, size))
        logits = net.forward_head(feats)
    assert feats.shape[-2:] == (cam, cam) and logits.shape == (2, 7)
    assert net.head_weight.shape == (7, feats.shape[1])


# ----------------------------------------------------------------- the registry


def test_registry_holds_the_native_cam_and_the_gradcam_family():
    assert EXPECTED <= set(CAMS.names())
    assert all(CAMS.get(n).name == n for n in CAMS.names())
    with pytest.raises(ConfigError, match="unknown cam 'nope'"):
        CAMS.get("nope")


@pytest.mark.parametrize("name", CAMS.names())
def test_maps_are_raw_at_feature_resolution_with_the_forward_logits(name, model, batch):
    x, y = batch
    with build(name, model) as extractor:
        logits, maps = extractor(x, y)
    with torch.no_grad():
        expected_logits = model.net(x)
    assert logits.dtype == maps.dtype == torch.float32
    assert logits.shape == (3, 5) and maps.shape == (3, 8, 8)
    torch.testing.assert_close(logits, expected_logits)
    assert torch.isfinite(maps).all() and maps.abs().amax(dim=(1, 2)).gt(0).all()
    if extractor.relu:
        assert (maps >= 0).all()
    scores = to_scoremaps(maps, 32)
    assert scores.shape == (3, 32, 32) and scores.min() >= 0 and scores.max() <= 1


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_each_images_class_is_honoured_in_a_batch(name, model, batch):
    x, y = batch
    with build(name, model) as extractor:
        _, maps = extractor(x, y)
        for i in range(len(y)):
            _, alone = extractor(x[i:i + 1], y[i:i + 1])
            scale = float(alone.abs().max())
            torch.testing.assert_close(maps[i:i + 1], alone, rtol=1e-4, atol=1e-5 * scale)
        _, other = extractor(x[:1], torch.tensor([2]))
    assert not torch.allclose(other, maps[:1])


@pytest.mark.parametrize("name", CAMS.names())
def test_no_parameter_grad_is_left_and_an_outer_no_grad_is_fine(name, model, batch):
    x, y = batch
    with build(name, model) as extractor, torch.no_grad():
        _, maps = extractor(x, y)
    assert maps.shape == (3, 8, 8) and not maps.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", GRADIENT)
def test_gradient_methods_work_on_a_frozen_backbone(name, model, batch):
    x, y = batch
    with build(name, model) as extractor:
        _, trainable = extractor(x, y)
    model.requires_grad_(False)
    torch.manual_seed(0)
    with build(name, model) as extractor:
        _, frozen = extractor(x, y)
    assert all(p.grad is None for p in model.parameters())
    if not extractor.stochastic:
        torch.testing.assert_close(frozen, trainable)


def test_gradient_methods_refuse_inference_mode_and_the_native_cam_runs_there(model, batch):
    x, y = batch
    with build("gradcam", model) as extractor, torch.inference_mode():
        with pytest.raises(ConfigError, match="inference_mode"):
            extractor(x, y)
    with build("cam", model) as extractor, torch.inference_mode():
        assert extractor(x, y)[1].shape == (3, 8, 8)


@pytest.mark.parametrize("name", CAMS.names())
def test_close_removes_every_hook_and_describe_is_a_json_record(name, model, batch):
    before = hook_count(model)
    extractor = build(name, model)
    info = extractor.describe()
    json.dumps(info)
    assert info["name"] == name and info["target_stage"] == model.net.last_stage
    assert {"relu", "library", "library_version", "normalized_by_library"} <= set(info)
    assert info["normalized_by_library"] is False
    extractor(*batch)
    extractor.close()
    extractor.close()  # idempotent
    assert hook_count(model) == before


def test_torchcam_relu_flags_are_what_describe_says(model):
    for name in CAMS.names():
        with build(name, model) as extractor:
            library = getattr(extractor, "_cam", None)
            if library is not None:
                assert extractor.relu is bool(library._relu)
            else:
                assert extractor.relu is False  # the native CAM: no ReLU, as the protocol


# ----------------------------------------------------------------- what the maps are


def test_native_cam_is_the_methods_own_localization_maps(model, batch):
    x, y = batch
    with build("cam", model) as extractor:
        logits, maps = extractor(x, y)
    with torch.no_grad():
        expected_logits, expected = model.localization_maps(x, y)
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(logits, expected_logits)


@pytest.mark.parametrize("name", ["gradcam", "xgradcam"])
def test_on_a_gap_fc_head_gradcam_is_relu_of_the_native_cam_up_to_scale(name, model, batch):
    # dY_c / dA_k(i, j) = W[c, k] / (h w), so Grad-CAM = ReLU(sum_k W[c, k] A_k) / (h w) (XGrad-CAM too: A >= 0)
    x, y = batch
    with build("cam", model) as native, build(name, model) as gradient:
        _, cam = native(x, y)
        _, grad = gradient(x, y)
    relu_cam = cam.clamp(min=0)
    assert (cam < 0).any()  # the test means something: ReLU changes the native CAM here
    for i in range(len(y)):
        scale = float((relu_cam[i] * grad[i]).sum() / (grad[i] * grad[i]).sum())  # least-squares positive scale
        assert scale > 0
        torch.testing.assert_close(scale * grad[i], relu_cam[i], rtol=1e-4, atol=1e-6 * float(relu_cam[i].max()))
        assert scale == pytest.approx(8 * 8, rel=1e-3)


def test_gradcampp_follows_the_papers_alpha(model, batch):
    # on a GAP + FC head g = W[c, k] / (h w) everywhere: alpha_k = g^2 / (2 g^2 + sum_ab A_k g^3)
    x, y = batch
    net = model.net
    with torch.no_grad():
        feats = net.forward_features(x)  # (B, C, h, w), the last stage
    hw = feats.shape[-1] * feats.shape[-2]
    g = net.head_weight[y].detach() / hw  # (B, C)
    alpha = torch.where(g != 0, g**2 / (2 * g**2 + feats.sum(dim=(2, 3)) * g**3 + 1e-8), torch.zeros_like(g))
    weights = hw * alpha * g.clamp(min=0)
    expected = torch.einsum("bchw,bc->bhw", feats, weights).clamp(min=0)
    with build("gradcampp", model) as extractor:
        _, maps = extractor(x, y)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))


def test_smoothgradcampp_combines_the_clean_activations(model, batch):
    # on a GAP + FC head the gradients do not depend on the input, so the smoothed derivatives are Grad-CAM++'s
    # at any noise level, and the maps are equal if (and only if) the clean image's activations are combined
    x, y = batch
    torch.manual_seed(0)
    with build("gradcampp", model) as plain, build("smoothgradcampp", model, num_samples=3) as smooth:
        _, expected = plain(x, y)
        _, maps = smooth(x, y)
    torch.testing.assert_close(maps, expected, rtol=1e-3, atol=1e-5 * float(expected.max()))


def test_gradcampp_weights_against_a_loop():
    torch.manual_seed(0)
    act, grad = torch.rand(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    grad[0, 1, 2, 3] = 0.0
    weights = _gradcampp_weights(act, grad, grad**2, grad**3, eps=1e-8)
    expected = torch.zeros(2, 3)
    for b in range(2):
        for k in range(3):
            total = float(act[b, k].sum())
            for i in range(4):
                for j in range(5):
                    g = float(grad[b, k, i, j])
                    if g != 0:
                        expected[b, k] += g**2 / (2 * g**2 + total * g**3 + 1e-8) * max(g, 0.0)
    torch.testing.assert_close(weights, expected, rtol=1e-5, atol=1e-7)


def test_an_earlier_stage_gives_its_resolution_and_the_native_cam_refuses_it(model, batch):
    x, y = batch
    last = model.net.stages[-1]
    stage = [s for s in model.net.stages if s.stride != last.stride][-1]
    with build("gradcam", model, target_stage=stage.name) as extractor:
        _, maps = extractor(x, y)
        assert extractor.describe()["target_stage"] == stage.name
    assert maps.shape == (3, 32 // stage.stride, 32 // stage.stride)
    with pytest.raises(ConfigError, match="last stage"):
        build("cam", model, target_stage=stage.name)
    with pytest.raises(ConfigError):
        build("gradcam", model, target_stage="no_such_stage")
    with pytest.raises(ConfigError, match="unknown option"):
        build("gradcam", model, num_samples=3)


def test_the_gradcam_family_uses_the_methods_classify(batch):
    x, y = batch
    plain, doubled = StandIn(make_net()), DoubledLogits(make_net())
    for name in ["gradcam", "scorecam"]:
        with build(name, plain) as a, build(name, doubled) as b:
            logits_a, maps_a = a(x, y)
            logits_b, maps_b = b(x, y)
        torch.testing.assert_close(logits_b, 2 * logits_a)
        if name == "gradcam":  # the gradient of 2 Y is twice the gradient of Y
            torch.testing.assert_close(maps_b, 2 * maps_a)


def test_the_registry_runs_on_a_real_wsol_method(batch):
    methods = pytest.importorskip("wsolbench.methods")
    if not hasattr(methods.WsolMethod, "localization_maps"):
        pytest.skip("WsolMethod.localization_maps is not there yet")
    method = methods.METHODS.get("cam")(net=make_net(), objective=None).eval()
    x, y = batch
    for name in CAMS.names():
        with build(name, method) as extractor:
            logits, maps = extractor(x, y)
        assert logits.shape == (3, 5) and maps.shape == (3, 8, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CAMS.names())
def test_maps_stay_on_the_gpu_and_match_the_cpu(name, batch):
    cpu = StandIn(make_net())
    gpu = StandIn(make_net()).cuda()
    x, y = batch
    with build(name, gpu) as extractor:
        logits, maps = extractor(x.cuda(), y.cuda())
    assert maps.device.type == logits.device.type == "cuda"
    if not CAMS.get(name).stochastic:
        with build(name, cpu) as extractor:
            _, expected = extractor(x, y)
        torch.testing.assert_close(maps.cpu(), expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()))
