"""Backbone stages and taps: the stage table, stage_module, attach (modules applied at a stage's output)."""

import copy

import pytest
import torch
from torch import nn
from torchvision import models

from wsolbench.backbones import BACKBONES, Stage, create_backbone, tap_key
from wsolbench.engine.optim import param_groups
from wsolbench.errors import ConfigError

RESNET = ("stem", "layer1", "layer2", "layer3.0", "layer3", "layer4.0", "layer4")
STAGES = {
    "small_cnn": ("stem", "block1", "block2", "block3"),
    "resnet18": RESNET, "resnet50": RESNET, "resnet50_wsol": RESNET, "se_resnet50": RESNET,
    "preresnet18": RESNET + ("final_relu",),
    "vgg16_wsol": ("pool1", "pool2", "pool3", "conv4_3", "pool4", "conv5_3", "conv6"),
    "inception_v3_wsol": ("maxpool1", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                          "Mixed_6c", "Mixed_6d", "Mixed_6e", "head_conv1", "head_conv2"),
}
# where the literature attaches ADL (wsolevaluation) on each backbone; all must be stages
ADL_AT = {"vgg16_wsol": ("pool3", "conv4_3", "conv5_3"), "resnet50_wsol": ("layer3.0", "layer4.0", "layer4"),
          "inception_v3_wsol": ("Mixed_5d", "Mixed_6e", "head_conv2")}
# the torchvision model whose state dict the backbone loads (None: a file in its own layout)
WEIGHTS_FROM = {"resnet18": "resnet18", "resnet50": "resnet50", "resnet50_wsol": "resnet50",
                "se_resnet50": "resnet50", "vgg16_wsol": "vgg16", "inception_v3_wsol": "inception_v3",
                "preresnet18": None, "small_cnn": None}


def side(name):
    """Input side for real-number forwards: 224, the small network at 64."""
    return 64 if name == "small_cnn" else 224


class Recorder(nn.Module):
    """Returns its input unchanged; records the shape of every call and keeps the last input."""

    def __init__(self):
        super().__init__()
        self.shapes = []
        self.seen = None

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        self.seen = x
        return x


class Keeper(nn.Module):
    """Returns its input itself (no copy), keeping it and a copy of it: a later in-place write shows."""

    def __init__(self):
        super().__init__()
        self.seen = self.copy = None

    def forward(self, x):
        self.seen, self.copy = x, x.detach().clone()
        return x


class Scale(nn.Module):
    """``x * s`` with a learnable scalar s (1 at the start)."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.s


def channel_scale(channels):
    """A tap with parameters: a per-channel 1 x 1 (depthwise) conv, initialised to the identity."""
    conv = nn.Conv2d(channels, channels, 1, groups=channels)
    nn.init.ones_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def test_every_backbone_is_covered_here():
    assert set(BACKBONES.names()) == set(STAGES) == set(WEIGHTS_FROM)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_stage_table(name):
    with torch.device("meta"):
        net = create_backbone(name, num_classes=3)
    assert tuple(s.name for s in net.stages) == STAGES[name]
    assert all(isinstance(s, Stage) for s in net.stages)
    assert net.last_stage == net.stages[-1].name
    assert net.stages[-1].channels == net.head_weight.shape[1]
    strides = [s.stride for s in net.stages]
    assert strides == sorted(strides)  # input to output
    assert len({tap_key(s.name) for s in net.stages}) == len(net.stages)
    for stage in net.stages:
        assert isinstance(net.stage_module(stage.name), nn.Module)
        assert net.stage(stage.name) == stage
    assert set(ADL_AT.get(name, ())) <= set(STAGES[name])
    assert "taps" in net.new_modules and isinstance(net.taps, nn.ModuleDict) and len(net.taps) == 0


@pytest.mark.parametrize("name", BACKBONES.names())
@pytest.mark.parametrize("large", [False, True])
def test_each_stage_sees_channels_and_stride_at_224(name, large):
    # shapes only: the meta device computes no numbers
    with torch.device("meta"):
        net = create_backbone(name, num_classes=3, large_feature_map=large)
        recorders = {s.name: Recorder() for s in net.stages}
        for stage_name, recorder in recorders.items():
            net.attach(stage_name, recorder)
        feats = net.forward_features(torch.empty(2, 3, 224, 224))
    for stage in net.stages:
        expected = (2, stage.channels, 224 // stage.stride, 224 // stage.stride)
        assert recorders[stage.name].shapes == [expected], stage  # called once, with the stated shape
    assert recorders[net.last_stage].seen is feats  # the last stage is what forward_features returns


@pytest.mark.parametrize("name", BACKBONES.names())
def test_identity_taps_change_no_output(name):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=4).eval()
    x = torch.randn(1, 3, side(name), side(name))
    with torch.no_grad():
        feats, logits = net.forward_features(x), net(x)
        for stage in net.stages:
            net.attach(stage.name, nn.Identity())
        # a hook registered on the stage module later (a CAM extractor's) sees the tapped output
        seen = {}
        for stage in net.stages:
            net.stage_module(stage.name).register_forward_hook(
                lambda module, args, out, key=stage.name: seen.setdefault(key, out))
        tapped_feats = net.forward_features(x)
        tapped_logits = net(x)
    assert torch.equal(tapped_feats, feats) and torch.equal(tapped_logits, logits)
    assert set(net.taps) == {tap_key(s.name) for s in net.stages}
    for stage in net.stages:
        out = seen[stage.name]
        assert out.shape == (1, stage.channels, side(name) // stage.stride, side(name) // stage.stride)
    assert torch.equal(seen[net.last_stage], feats)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_nothing_downstream_overwrites_a_stage_output(name):
    """A tap may keep the features it saw (a feature loss): no later in-place op (ReLU) may change them.
    (VGG's conv4_3 read at the conv, not at its in-place ReLU, fails this.)"""
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3).train()
    keepers = {s.name: Keeper() for s in net.stages}
    for stage_name, keeper in keepers.items():
        net.attach(stage_name, keeper)
    net(torch.randn(2, 3, 64, 64)).sum().backward()
    for stage_name, keeper in keepers.items():
        assert torch.equal(keeper.seen.detach(), keeper.copy), stage_name


@pytest.mark.parametrize("name", BACKBONES.names())
def test_taps_train_with_inplace_relus(name):
    """Scale taps at every stage, training mode, backward: each tap gets a gradient and the output
    equals the untapped network's."""
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3).train()
    plain = copy.deepcopy(net)
    taps = {s.name: Scale() for s in net.stages}
    for stage_name, tap in taps.items():
        net.attach(stage_name, tap)
    x = torch.randn(2, 3, 64, 64)
    logits = net(x)
    logits.logsumexp(1).sum().backward()
    torch.testing.assert_close(logits, plain(x), rtol=1e-5, atol=1e-5)
    for stage_name, tap in taps.items():
        assert tap.s.grad is not None and torch.isfinite(tap.s.grad), stage_name


@pytest.mark.parametrize("name", ["small_cnn", "vgg16_wsol"])
def test_tap_output_replaces_the_stage_output(name):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        net.attach(net.last_stage, Scale())
        net.taps[tap_key(net.last_stage)].s.fill_(0.0)
        feats = net.forward_features(x)
        assert not feats.any()
        torch.testing.assert_close(net(x), net.fc.bias.expand(2, -1))  # logits of a zero map: the bias
        net.attach(net.stages[0].name, Scale())
        net.taps[tap_key(net.last_stage)].s.fill_(1.0)
        net.taps[tap_key(net.stages[0].name)].s.fill_(2.0)
        assert not torch.equal(net(x), before)  # an early tap changes what follows


def test_unknown_stage_and_second_tap_are_one_line_config_errors():
    net = create_backbone("small_cnn", num_classes=3, width=4)
    for call in (lambda: net.stage_module("layer9"), lambda: net.attach("layer9", nn.Identity())):
        with pytest.raises(ConfigError) as err:
            call()
        message = str(err.value)
        assert "'layer9'" in message and "stem, block1, block2, block3" in message and "\n" not in message
    net.attach("block2", nn.Identity())
    with pytest.raises(ConfigError, match="already has a module attached"):
        net.attach("block2", nn.Identity())
    assert list(net.taps) == ["block2"]


@pytest.mark.parametrize("name", ["small_cnn", "vgg16_wsol"])
def test_deepcopy_and_state_dict_round_trip_with_taps(name, tmp_path):
    torch.manual_seed(0)
    net = create_backbone(name, num_classes=3).eval()
    for stage in net.stages:
        net.attach(stage.name, channel_scale(stage.channels))
    with torch.no_grad():
        for p in net.taps.parameters():
            p.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        twin = copy.deepcopy(net)  # its hooks must call the copy's own taps
        torch.testing.assert_close(twin(x), expected, rtol=0, atol=0)
        twin.taps[tap_key(twin.last_stage)].weight.zero_()
        twin.taps[tap_key(twin.last_stage)].bias.zero_()
        assert not twin.forward_features(x).any()
        assert torch.equal(net(x), expected)  # the original is untouched
    torch.save(net.state_dict(), tmp_path / "tapped.pth")
    fresh = create_backbone(name, num_classes=3).eval()
    for stage in fresh.stages:
        fresh.attach(stage.name, channel_scale(stage.channels))
    fresh.load_state_dict(torch.load(tmp_path / "tapped.pth", weights_only=True))  # strict
    with torch.no_grad():
        assert torch.equal(fresh(x), expected)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """State dicts of torchvision's models with ``weights=None`` saved as files (keys and shapes of its
    ImageNet files), and own-layout files for the backbones torchvision does not have."""
    out = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    files = {}
    for arch in ("resnet18", "resnet50", "inception_v3"):
        kwargs = {"init_weights": True, "aux_logits": True} if arch == "inception_v3" else {}
        files[arch] = out / f"{arch}.pth"
        torch.save(models.get_model(arch, weights=None, **kwargs).state_dict(), files[arch])
    with torch.device("meta"):  # VGG16's classifier is 120M parameters: small stand-ins (never loaded)
        meta = models.vgg16(weights=None).state_dict()
    files["vgg16"] = out / "vgg16.pth"
    torch.save({k: (torch.randn(v.shape) if k.startswith("features.") else torch.zeros(1)) for k, v in meta.items()},
               files["vgg16"])
    for name in ("preresnet18", "small_cnn"):
        files[name] = out / f"{name}.pth"
        torch.save(create_backbone(name, num_classes=3).state_dict(), files[name])
    return files


@pytest.mark.parametrize("name", BACKBONES.names())
def test_weights_files_load_after_attaching_and_taps_are_new_layers(name, weight_files):
    torch.manual_seed(2)
    net = create_backbone(name, num_classes=5)
    keys = list(net.state_dict())
    for stage in net.stages:
        net.attach(stage.name, channel_scale(stage.channels))
    own = net.state_dict()
    assert [k for k in own if not k.startswith("taps.")] == keys  # no existing key moved
    tap_keys = {k for k in own if k.startswith("taps.")}
    assert tap_keys == {f"taps.{tap_key(s.name)}.{p}" for s in net.stages for p in ("weight", "bias")}
    tap_before = {k: own[k].clone() for k in tap_keys}

    path = weight_files[WEIGHTS_FROM[name] or name]
    net.init_weights_from(name, weights=path)
    info = net.weights_info
    assert info is not None and info.loaded and tap_keys <= set(info.missing)
    state = torch.load(path, weights_only=True)
    own = net.state_dict()
    for key in info.loaded:
        src = key if key in state else net_key_in_file(net, key, state)
        assert torch.equal(own[key], state[src]), key
    for key in tap_keys:
        assert torch.equal(own[key], tap_before[key]), key
    body = [k for k in own if not net._is_new(k) and not k.endswith("num_batches_tracked") and ".se." not in k]
    assert set(body) <= set(info.loaded)

    groups = {g["name"]: g for g in param_groups(net, lr=1.0, new_layer_lr_mult=10.0)}
    new = {id(p) for p in groups["new"]["params"]}
    tap_params = {id(p) for p in net.taps.parameters()}
    assert tap_params <= new and not tap_params & {id(p) for p in groups["body"]["params"]}
    assert {id(p) for p in groups["body"]["params"]} == {id(p) for p in net.pretrained_parameters()}


def net_key_in_file(net, key, state):
    """The file's name for the backbone's ``key`` (the inverse of ``net.map_weight_key``)."""
    return next(k for k in state if net.map_weight_key(k) == key)
