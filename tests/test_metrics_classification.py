"""Classification accuracy and entropy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsolbench.errors import MetricInputError
from wsolbench.metrics import ClassificationAccumulator, entropy

pytestmark = pytest.mark.filterwarnings("error")


def test_entropy_hand_cases():
    probs = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    expected = [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), math.log(2), 0.0]
    np.testing.assert_allclose(entropy(probs), expected, rtol=1e-15)
    assert entropy(np.full((1, 10), 0.1))[0] == pytest.approx(math.log(10))


def test_accumulator_hand_case():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    labels = np.array([0, 1, 2, 1])
    acc = ClassificationAccumulator(3)
    acc.update(probs, labels)
    r = acc.compute()
    # argmax: 0 (right), 2 (wrong), 0 on the tie (wrong), 1 (right)
    assert r.count == 4
    assert r.top1 == 50.0
    h = [
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
        -(0.1 * math.log(0.1) * 2 + 0.8 * math.log(0.8)),
        math.log(3),
        0.0,
    ]
    assert r.mean_entropy == pytest.approx(sum(h) / 4)
    assert r.mean_normalized_entropy == pytest.approx(sum(h) / 4 / math.log(3))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["top1"] == 50.0 and d["count"] == 4


def probs_strategy(k):
    return st.lists(
        st.lists(st.floats(0, 1), min_size=k, max_size=k).filter(lambda r: sum(r) > 1e-3),
        min_size=2,
        max_size=8,
    ).map(lambda rows: np.array([np.array(r) / sum(r) for r in rows]))


@settings(max_examples=30, deadline=None)
@given(probs_strategy(4), st.data())
def test_merge_of_halves_equals_whole(probs, data):
    n = len(probs)
    labels = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    split = data.draw(st.integers(1, n - 1))
    whole = ClassificationAccumulator(4)
    whole.update(probs, labels)
    first, second = ClassificationAccumulator(4), ClassificationAccumulator(4)
    first.update(probs[:split], labels[:split])
    second.update(probs[split:], labels[split:])
    merged = first.merge(second).compute()
    expected = whole.compute()
    assert merged.count == expected.count
    assert merged.top1 == expected.top1
    assert merged.mean_entropy == pytest.approx(expected.mean_entropy, rel=1e-12, abs=1e-15)
    assert 0 <= merged.mean_normalized_entropy <= 1 + 1e-12


def test_errors():
    acc = ClassificationAccumulator(3)
    with pytest.raises(MetricInputError, match="no images were evaluated"):
        acc.compute()
    with pytest.raises(MetricInputError, match="row 1"):
        acc.update(np.array([[0.5, 0.5, 0.0], [2.0, -1.0, 0.0]]), np.array([0, 1]))
    with pytest.raises(MetricInputError, match="row 0 .*softmax"):
        acc.update(np.array([[0.5, 0.6, 0.0]]), np.array([0]))
    with pytest.raises(MetricInputError, match="label 3 of row 0"):
        acc.update(np.array([[0.5, 0.5, 0.0]]), np.array([3]))
    with pytest.raises(MetricInputError, match=r"shape \(B, 3\)"):
        acc.update(np.array([[0.5, 0.5]]), np.array([0]))
    with pytest.raises(ValueError):
        ClassificationAccumulator(1)
    with pytest.raises(ValueError):
        acc.merge(ClassificationAccumulator(4))


def test_reset():
    acc = ClassificationAccumulator(2)
    acc.update(np.array([[0.5, 0.5]]), np.array([0]))
    acc.reset()
    assert acc.count == 0 and acc.correct == 0 and acc.entropy_sum == 0.0
