"""Each objective against a hand computation in plain Python (math, no torch)."""

import math

import pytest
import torch
import torch.nn.functional as F

from wsolbench.config import load_config
from wsolbench.errors import ConfigError
from wsolbench.objectives import (OBJECTIVES, build_objective, confidence_penalty, cross_entropy, kl_uniform,
                                  label_smoothing, predictive_entropy, soft_targets)


def ObjectiveConfig(name, **params):  # noqa: N802  (the section dict a config file would hold)
    return {"name": name, **params}


def effective_smoothing(cfg):
    return build_objective(cfg).effective_smoothing()


def loss_scale(cfg):
    return build_objective(cfg).loss_scale()

LOGITS = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
LABELS = [0, 2]


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def _hand(kind, param=0.0):
    """The batch mean of each formula, written out with math only."""
    total = 0.0
    for row, y in zip(LOGITS, LABELS):
        p = _softmax(row)
        C = len(p)
        ce = -math.log(p[y])
        mean_neg_log = sum(-math.log(pc) for pc in p) / C
        entropy = -sum(pc * math.log(pc) for pc in p)
        kl_u_p = sum((1 / C) * math.log((1 / C) / pc) for pc in p)
        if kind == "ce":
            total += ce
        elif kind == "ls":
            target = [(1 - param) * (c == y) + param / C for c in range(C)]
            total += -sum(t * math.log(pc) for t, pc in zip(target, p))
        elif kind == "cp":
            total += ce - param * entropy
        elif kind == "kl":
            total += ce + param * kl_u_p
            assert kl_u_p == pytest.approx(mean_neg_log - math.log(C))
    return total / len(LABELS)


@pytest.fixture
def batch():
    return torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS)


def test_cross_entropy_matches_hand(batch):
    assert cross_entropy(*batch).item() == pytest.approx(_hand("ce"), rel=1e-9)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_matches_hand_and_torch(batch, eps):
    assert label_smoothing(*batch, eps).item() == pytest.approx(_hand("ls", eps), rel=1e-9)
    assert label_smoothing(*batch, eps).item() == pytest.approx(
        F.cross_entropy(batch[0], batch[1], label_smoothing=eps).item(), rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5])
def test_confidence_penalty_matches_hand(batch, beta):
    assert confidence_penalty(*batch, beta).item() == pytest.approx(_hand("cp", beta), rel=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_kl_uniform_matches_hand(batch, lam):
    assert kl_uniform(*batch, lam).item() == pytest.approx(_hand("kl", lam), rel=1e-9)


def _soft(gen, n, k):
    """Random target distributions: CutMix-style two-label mixes and normalized multi-hot rows."""
    a, b = torch.randint(0, k, (n,), generator=gen), torch.randint(0, k, (n,), generator=gen)
    area = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    mixed = area * F.one_hot(a, k).double() + (1 - area) * F.one_hot(b, k).double()
    hot = (torch.rand(n, k, generator=gen) < 0.3).double()
    hot[hot.sum(1) == 0, 0] = 1.0
    return torch.where((torch.arange(n) % 2 == 0)[:, None], mixed, hot / hot.sum(1, keepdim=True))


@pytest.mark.parametrize("soft", [False, True], ids=["indices", "distributions"])
@pytest.mark.parametrize("lam", [0.1, 0.3, 1.0, 4.0])
def test_kl_uniform_is_scaled_label_smoothing(lam, soft):
    """CE + lam KL(u||p) == (1 + lam) LS(eps = lam / (1 + lam)) - lam log C, for any logits and targets."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=gen, dtype=torch.float64)
    y = _soft(gen, 16, 7) if soft else torch.randint(0, 7, (16,), generator=gen)
    eps = lam / (1 + lam)
    lhs = kl_uniform(logits, y, lam)
    rhs = (1 + lam) * label_smoothing(logits, y, eps) - lam * math.log(7)
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-10, abs=1e-12)
    cfg = ObjectiveConfig(name="kl_uniform", lam=lam)
    assert effective_smoothing(cfg) == pytest.approx(eps)
    assert loss_scale(cfg) == pytest.approx(1 + lam)


@pytest.mark.parametrize("soft", [False, True], ids=["indices", "distributions"])
def test_normalized_kl_uniform_has_the_gradient_of_label_smoothing(soft):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    y = _soft(gen, 8, 5) if soft else torch.randint(0, 5, (8,), generator=gen)
    lam = 0.5
    loss = build_objective(ObjectiveConfig(name="kl_uniform", lam=lam, normalize_loss_scale=True))
    (g_kl,) = torch.autograd.grad(loss(logits, y), logits)
    (g_ls,) = torch.autograd.grad(label_smoothing(logits, y, lam / (1 + lam)), logits)
    torch.testing.assert_close(g_kl, g_ls)
    plain = build_objective(ObjectiveConfig(name="kl_uniform", lam=lam))
    (g_plain,) = torch.autograd.grad(plain(logits, y), logits)
    torch.testing.assert_close(g_plain, (1 + lam) * g_ls)


def test_predictive_entropy_of_uniform_and_onehot():
    h = predictive_entropy(torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]))
    assert h[0].item() == pytest.approx(math.log(4))
    assert h[1].item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_is_finite_and_differentiable(name):
    logits = torch.randn(4, 3, requires_grad=True)
    loss = build_objective(ObjectiveConfig(name=name))(logits, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_unknown_objective_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown objective 'focal'.*kl_uniform"):
        build_objective(ObjectiveConfig(name="focal"))


def test_effective_smoothing_of_each_objective():
    assert effective_smoothing(ObjectiveConfig(name="ce")) == 0.0
    assert effective_smoothing(ObjectiveConfig(name="label_smoothing", eps=0.2)) == 0.2
    assert effective_smoothing(ObjectiveConfig(name="confidence_penalty", beta=0.5)) == 0.0
    assert loss_scale(ObjectiveConfig(name="label_smoothing")) == 1.0


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_one_hot_distributions_give_the_same_loss_as_indices(name):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=gen)
    loss = build_objective(name)
    assert loss(logits, soft_targets(y, 4).double()).item() == pytest.approx(loss(logits, y).item(), rel=1e-12)


def test_soft_cross_entropy_matches_hand():
    logits = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.75, 0.0]], dtype=torch.float64)
    p = _softmax(LOGITS[0])
    assert cross_entropy(logits, q).item() == pytest.approx(-(0.25 * math.log(p[0]) + 0.75 * math.log(p[1])))


def test_a_parameter_the_objective_does_not_have_is_refused_and_cannot_change_the_hash():
    with pytest.raises(ConfigError, match="'ce' has no parameter.*lam"):
        load_config(preset_name="smoke", overrides={"objective": {"name": "ce", "lam": 1.0}})
    a = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform"}})
    b = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform", "lam": a.objective.lam}})
    assert a.config_hash() == b.config_hash()  # the default written out is the same run
    c = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform", "lam": 1.0}})
    assert c.config_hash() != a.config_hash()
    # switching the class drops the old class's parameters instead of refusing them
    d = load_config(preset_name="smoke", overrides={"objective": {"name": "kl_uniform", "lam": 1.0}})
    e = load_config(preset_name=None, overrides={**d.to_dict(), "objective": {"name": "ce"}})
    assert e.objective.name == "ce" and e.config_hash() == load_config(preset_name="smoke").config_hash()
