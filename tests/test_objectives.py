"""Each objective against a hand computation in plain Python (math, no torch)."""

import math

import pytest
import torch
import torch.nn.functional as F

from wsolbench.config import ObjectiveConfig
from wsolbench.errors import ConfigError
from wsolbench.objectives import (OBJECTIVES, build_objective, confidence_penalty, cross_entropy,
                                  effective_smoothing, kl_uniform, label_smoothing, loss_scale,
                                  predictive_entropy)

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


@pytest.mark.parametrize("lam", [0.1, 0.3, 1.0, 4.0])
def test_kl_uniform_is_scaled_label_smoothing(lam):
    """CE + lam KL(u||p) == (1 + lam) LS(eps = lam / (1 + lam)) - lam log C, for any logits."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 7, (16,), generator=gen)
    eps = lam / (1 + lam)
    lhs = kl_uniform(logits, y, lam)
    rhs = (1 + lam) * label_smoothing(logits, y, eps) - lam * math.log(7)
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-10, abs=1e-12)
    cfg = ObjectiveConfig(name="kl_uniform", lam=lam)
    assert effective_smoothing(cfg) == pytest.approx(eps)
    assert loss_scale(cfg) == pytest.approx(1 + lam)


def test_normalized_kl_uniform_has_the_gradient_of_label_smoothing():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (8,), generator=gen)
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
