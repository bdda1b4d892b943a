"""Parameter groups (new layers at lr x mult) and schedules that keep the ratio."""

import pytest
import torch
from torch import nn

from wsolbench.backbones import create_backbone
from wsolbench.config import OptimConfig
from wsolbench.engine import build_optimizer, build_scheduler
from wsolbench.engine.optim import param_groups
from wsolbench.methods import create_method
from wsolbench.objectives import build_objective


def groups_by_name(optimizer):
    return {g["name"]: g for g in optimizer.param_groups}


def ids(params):
    return {id(p) for p in params}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_new_layers_get_the_multiplier_and_every_parameter_one_group(optimizer):
    net = create_backbone("resnet50_wsol", num_classes=3)
    opt = build_optimizer(net, OptimConfig(optimizer=optimizer, lr=0.01), new_layer_lr_mult=10.0)
    groups = groups_by_name(opt)
    assert set(groups) == {"body", "new"}
    assert groups["body"]["lr"] == pytest.approx(0.01) and groups["new"]["lr"] == pytest.approx(0.1)
    new = ids(groups["new"]["params"])
    assert new == ids(net.features.layer4.parameters()) | ids(net.fc.parameters())
    assert ids(groups["body"]["params"]) == ids(net.parameters()) - new
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_groups_inside_a_method_and_method_parameters_count_as_new():
    net = create_backbone("vgg16_wsol", num_classes=3)
    method = create_method("cam", net=net, objective=build_objective("ce"))
    method.extra = nn.Linear(2, 2)  # a layer a method adds outside the backbone
    for p in net.features[0].parameters():
        p.requires_grad_(False)  # frozen parameters are in no group
    groups = {g["name"]: g for g in param_groups(method, lr=1.0, new_layer_lr_mult=5.0)}
    new = ids(groups["new"]["params"])
    assert new == ids(net.conv6.parameters()) | ids(net.fc.parameters()) | ids(method.extra.parameters())
    assert groups["new"]["lr"] == 5.0 and groups["new"]["lr_mult"] == 5.0
    body = ids(groups["body"]["params"])
    assert not body & new and not body & ids(net.features[0].parameters())
    assert body | new == {id(p) for p in method.parameters() if p.requires_grad}


def test_multiplier_defaults_to_the_config_and_empty_groups_are_dropped():
    net = create_backbone("small_cnn", num_classes=3, width=4)
    cfg = OptimConfig(lr=0.1)
    groups = groups_by_name(build_optimizer(net, cfg))
    assert groups["new"]["lr"] == pytest.approx(0.1 * cfg.new_layer_lr_mult)
    head_only = param_groups(net.fc, lr=0.1, new_layer_lr_mult=10.0)  # not a backbone: all new
    assert [g["name"] for g in head_only] == ["new"]


def _lrs_over(schedule, optimizer="sgd", steps_per_epoch=4, epochs=3, step_every=1):
    net = create_backbone("small_cnn", num_classes=3, width=4)
    cfg = OptimConfig(optimizer=optimizer, lr=0.02, epochs=epochs, schedule=schedule, warmup=0.25,
                      step_every=step_every)
    opt = build_optimizer(net, cfg, new_layer_lr_mult=10.0)
    sched = build_scheduler(opt, cfg, steps_per_epoch=steps_per_epoch)
    history = []
    for _ in range(epochs * steps_per_epoch):
        history.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return torch.tensor(history, dtype=torch.float64)  # (steps, groups): body, new


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("schedule", ["onecycle", "step", "constant"])
def test_schedules_keep_the_new_layer_ratio(schedule, optimizer):
    lrs = _lrs_over(schedule, optimizer)
    torch.testing.assert_close(lrs[:, 1], 10.0 * lrs[:, 0])
    if schedule == "onecycle":  # each group peaks at its own max_lr
        assert lrs[:, 0].max().item() == pytest.approx(0.02)  # warmup 0.25 of 12 steps: the peak is step 2
        assert lrs[:, 1].max().item() == pytest.approx(0.2)
    if schedule == "step":
        assert lrs[0].tolist() == pytest.approx([0.02, 0.2])
        assert lrs[4].tolist() == pytest.approx([0.002, 0.02])
    if schedule == "constant":
        assert (lrs == lrs[0]).all()
