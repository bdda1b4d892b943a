"""Backbones: shapes and CAM resolution, the GAP-head contract, weights from local files only."""

import os
from pathlib import Path

import pytest
import torch
from torchvision import models

from wsolbench.backbones import BACKBONES, CamBackbone, create_backbone
from wsolbench.backbones.weights import cache_file
from wsolbench.cams import cam_from_features
from wsolbench.errors import ConfigError

# name -> (CAM side at 224, with large_feature_map at 224)
CAM_AT_224 = {
    "small_cnn": (56, 56), "resnet18": (7, 7), "resnet50": (7, 7),
    "vgg16_wsol": (14, 28), "resnet50_wsol": (14, 28), "inception_v3_wsol": (14, 28),
    "preresnet18": (14, 28), "se_resnet50": (14, 28),
}
# the adapted networks' new layers (learning-rate multiplier), as wsolevaluation
# (and ``taps``, the modules attached at stages, on every backbone)
NEW_MODULES = {
    "vgg16_wsol": ("conv6", "fc", "taps"), "resnet50_wsol": ("features.layer4", "fc", "taps"),
    "se_resnet50": ("features.layer4", "fc", "taps"),
    "inception_v3_wsol": ("features.head_conv1", "features.head_conv2", "fc", "taps"),
    "preresnet18": ("features.layer4", "features.final_bn", "fc", "taps"),
}
TORCHVISION = {"resnet50_wsol": "resnet50", "vgg16_wsol": "vgg16", "inception_v3_wsol": "inception_v3"}


def assert_gap_contract(net: CamBackbone, feats: torch.Tensor, logits: torch.Tensor) -> None:
    """logit_k = spatial mean of CAM_k + bias_k, for every class."""
    b = feats.shape[0]
    for k in range(net.num_classes):
        cam = cam_from_features(feats, net.head_weight, torch.full((b,), k))
        expected = cam.mean(dim=(1, 2)) + net.fc.bias[k]
        scale = float(logits.abs().max()) + 1.0  # an untrained net in eval mode can have huge activations
        torch.testing.assert_close(expected, logits[:, k], rtol=1e-4, atol=1e-5 * scale)


def test_every_backbone_is_covered_here():
    assert set(BACKBONES.names()) == set(CAM_AT_224)


@pytest.mark.parametrize("name", BACKBONES.names())
@pytest.mark.parametrize("large", [False, True])
def test_cam_resolution_at_224(name, large):
    # shapes only: the meta device computes no numbers
    with torch.device("meta"):
        net = create_backbone(name, num_classes=7, large_feature_map=large)
        feats = net.forward_features(torch.empty(2, 3, 224, 224))
        logits = net.forward_head(feats)
    side = CAM_AT_224[name][int(large)]
    assert feats.shape[-2:] == (side, side) and logits.shape == (2, 7)
    assert net.head_weight.shape == (7, feats.shape[1])


# torchvision's plain ResNets are left out to save time: their 224 shapes are checked on the meta device
# above and their numbers at 64 x 64 below
@pytest.mark.parametrize("name", [n for n in BACKBONES.names() if n not in ("resnet18", "resnet50")])
def test_forward_at_224_keeps_the_gap_contract(name):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=4).eval()
    with torch.no_grad():
        feats = net.forward_features(torch.randn(1, 3, 224, 224))
        logits = net.forward_head(feats)
    side = CAM_AT_224[name][0]
    assert feats.shape[-2:] == (side, side) and logits.shape == (1, 4)
    assert torch.isfinite(logits).all()
    assert_gap_contract(net, feats, logits)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_small_input_large_feature_map_in_training_mode(name):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3, large_feature_map=True).train()
    feats = net.forward_features(torch.randn(2, 3, 64, 64))
    logits = net.forward_head(feats)
    logits.sum().backward()
    assert logits.shape == (2, 3) and net.fc.weight.grad is not None
    assert_gap_contract(net, feats.detach(), logits.detach())


@pytest.mark.parametrize("name", BACKBONES.names())
def test_new_and_pretrained_parameters_partition_the_backbone(name):
    with torch.device("meta"):
        net = create_backbone(name, num_classes=3)
    new = {id(p) for p in net.new_parameters()}
    body = {id(p) for p in net.pretrained_parameters()}
    assert new and body and not new & body
    assert new | body == {id(p) for p in net.parameters()}
    for module in net.new_modules:
        net.get_submodule(module)  # every name resolves
    assert net.new_modules == NEW_MODULES.get(name, ("fc", "taps"))
    assert {id(p) for p in net.fc.parameters()} <= new


# --------------------------------------------------------------------------- weights


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "torch"


@pytest.fixture(scope="module")
def torchvision_files(tmp_path_factory):
    """State dicts of torchvision's models with ``weights=None``, saved as files (their keys and shapes)."""
    out = tmp_path_factory.mktemp("tv")
    files = {}
    torch.manual_seed(1)
    for arch in ("resnet50", "inception_v3"):
        kwargs = {"init_weights": True} if arch == "inception_v3" else {}
        state = models.get_model(arch, weights=None, **kwargs).state_dict()
        files[arch] = (out / f"{arch}.pth", state)
        torch.save(state, files[arch][0])
    # VGG16's classifier is 120M parameters: its keys are kept with small stand-in values (never loaded)
    with torch.device("meta"):
        meta = models.vgg16(weights=None).state_dict()
    state = {k: (torch.randn(v.shape) if k.startswith("features.") else torch.zeros(1)) for k, v in meta.items()}
    files["vgg16"] = (out / "vgg16.pth", state)
    torch.save(state, files["vgg16"][0])
    return files


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_weights_file_loads_torchvision_tensors_and_leaves_new_layers(name, torchvision_files):
    path, state = torchvision_files[TORCHVISION[name]]
    torch.manual_seed(2)
    fresh = create_backbone(name, num_classes=5).state_dict()
    torch.manual_seed(2)
    net = create_backbone(name, num_classes=5, weights=path)
    info = net.weights_info
    assert info is not None and info.source == str(path) and info.loaded
    own = net.state_dict()
    for key in info.loaded:
        src = key if key in state else key.removeprefix("features.")
        assert torch.equal(own[key], state[src]), key
    assert not any(k.startswith("fc.") for k in info.loaded)  # the head stays as initialised
    for key in info.missing:
        assert torch.equal(own[key], fresh[key]), key
    new_keys = {k for k in own if net._is_new(k) and not k.startswith("features.layer4")}
    assert new_keys and new_keys <= set(info.missing)
    assert "fc.weight" in info.unused or TORCHVISION[name] == "vgg16"
    body = [k for k in own if not net._is_new(k) and not k.endswith("num_batches_tracked")]
    assert set(body) <= set(info.loaded)  # every body tensor came from the file


def test_torchvision_only_leftovers_are_reported_unused(torchvision_files):
    net = create_backbone("inception_v3_wsol", num_classes=5, weights=torchvision_files["inception_v3"][0])
    assert any(k.startswith("Mixed_7") for k in net.weights_info.unused)
    vgg = create_backbone("vgg16_wsol", num_classes=5, weights=torchvision_files["vgg16"][0])
    assert {"classifier.0.weight", "classifier.6.bias"} <= set(vgg.weights_info.unused)


def test_se_resnet50_starts_from_a_plain_resnet50_file_with_fresh_se_modules(torchvision_files):
    path, state = torchvision_files["resnet50"]
    net = create_backbone("se_resnet50", num_classes=5, weights=path)
    assert torch.equal(net.features.layer2[1].conv2.weight, state["layer2.1.conv2.weight"])
    assert net.weights_info.missing and all(".se." in k or k.startswith("fc.") for k in net.weights_info.missing)


def test_pretrained_reads_the_torch_cache(torch_home):
    enum = models.ResNet18_Weights.IMAGENET1K_V1
    target = cache_file(enum.url)
    assert target == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    state = models.resnet18(weights=None).state_dict()
    torch.save(state, target)
    net = create_backbone("resnet18", num_classes=3, pretrained=True)
    assert net.weights_info.source == str(target)
    assert torch.equal(net.features[0].weight, state["conv1.weight"])  # plain layout: conv1 is features.0
    assert torch.equal(net.features[7][1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert net.fc.weight.shape == (3, 512)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_missing_cached_weights_say_where_to_put_them(name, torch_home):
    enum = {"resnet50_wsol": models.ResNet50_Weights, "vgg16_wsol": models.VGG16_Weights,
            "inception_v3_wsol": models.Inception_V3_Weights}[name].IMAGENET1K_V1
    with pytest.raises(ConfigError) as err:
        create_backbone(name, num_classes=3, pretrained=True)
    message = str(err.value)
    expected = torch_home / "hub" / "checkpoints" / os.path.basename(enum.url)
    assert str(expected) in message and enum.url in message and "\n" not in message
    assert not expected.exists()


@pytest.mark.parametrize("name", ["preresnet18", "se_resnet50", "small_cnn"])
def test_no_torchvision_weights_asks_for_a_file(name, torch_home):
    with pytest.raises(ConfigError, match="weights=FILE"):
        create_backbone(name, num_classes=3, pretrained=True)


@pytest.mark.parametrize("name", ["preresnet18", "se_resnet50"])
def test_own_layout_file_round_trips(name, tmp_path):
    torch.manual_seed(3)
    src = create_backbone(name, num_classes=3)
    # torchvision-style names (no ``features.`` prefix), as a DataParallel checkpoint
    state = {"module." + k.removeprefix("features."): v for k, v in src.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    torch.manual_seed(4)
    net = create_backbone(name, num_classes=3, weights=tmp_path / "w.pth")
    for key, value in net.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, src.state_dict()[key]), key
    assert not torch.equal(net.fc.weight, src.fc.weight)
    assert set(net.weights_info.missing) == {"fc.weight", "fc.bias"}


def test_wrong_architecture_missing_or_corrupt_files_are_config_errors(tmp_path, torchvision_files):
    with pytest.raises(ConfigError, match="does not fit"):
        create_backbone("resnet18", num_classes=3, weights=torchvision_files["resnet50"][0])
    with pytest.raises(ConfigError, match="none of its"):
        create_backbone("vgg16_wsol", num_classes=3, weights=torchvision_files["resnet50"][0])
    with pytest.raises(ConfigError, match="does not exist"):
        create_backbone("resnet50_wsol", num_classes=3, weights=tmp_path / "absent.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        create_backbone("small_cnn", num_classes=3, weights=tmp_path / "bad.pth")


def test_weights_file_wins_over_the_cache(torch_home, torchvision_files):
    net = create_backbone("resnet50_wsol", num_classes=3, pretrained=True, weights=torchvision_files["resnet50"][0])
    assert Path(net.weights_info.source) == torchvision_files["resnet50"][0]
