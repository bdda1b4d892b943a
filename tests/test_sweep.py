"""Choosing a regularizer's strength on val (never test), and the sweep's summary beside the baseline."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest

from wsolbench.errors import ConfigError
from wsolbench.report.sweep import (
    choose_strength,
    chosen_strengths,
    regularizer_of,
    sweep_markdown,
    sweep_summary,
    with_axis_names,
)


def _row(objective, strength, *, val, test, dataset="synthetic", method="cam", seeds=3, std=0.5):
    name, _, rest = objective.partition("(")
    strength_name = rest.split("=", 1)[0] if strength is not None else None
    return {"dataset": dataset, "backbone": "small_cnn", "method": method, "objective": objective, "cam": "cam",
            "method_name": method.split("(")[0], "objective_name": name, "strength_name": strength_name,
            "strength": strength, "seeds": seeds, "MaxBoxAccV2": test, "MaxBoxAccV2_std": std,
            "val_MaxBoxAccV2": val, "val_MaxBoxAccV2_std": std, "top1": 90.0, "top1_std": 1.0,
            "entropy_norm": 0.1 + (strength or 0.0), "entropy_norm_std": 0.01}


def _sweep(**overrides):
    """ce, and kl_uniform at 4 strengths where test would pick lam=1 and val picks lam=0.1."""
    rows = [_row("ce", None, val=60.0, test=61.0),
            _row("kl_uniform(lam=0.01)", 0.01, val=61.0, test=60.0),
            _row("kl_uniform(lam=0.1)", 0.1, val=64.0, test=62.0),
            _row("kl_uniform(lam=0.3)", 0.3, val=63.0, test=63.0),
            _row("kl_uniform(lam=1)", 1.0, val=58.0, test=66.0)]
    return pd.DataFrame(rows)


def test_choice_reads_val_not_test():
    frame = _sweep()
    assert frame.loc[frame["objective_name"] == "kl_uniform", "MaxBoxAccV2"].idxmax() == 4  # test's pick: lam=1
    chosen = choose_strength(frame, objective_name="kl_uniform")
    assert chosen["objective"] == "kl_uniform(lam=0.1)"
    assert chosen["strength"] == 0.1


def test_ties_go_to_the_smaller_strength_whatever_the_row_order():
    frame = _sweep()
    frame.loc[frame["objective"] == "kl_uniform(lam=0.3)", "val_MaxBoxAccV2"] = 64.0  # tie with lam=0.1
    for order in (frame, frame.iloc[::-1]):
        assert choose_strength(order, objective_name="kl_uniform")["strength"] == 0.1


def test_missing_val_values_are_skipped_and_none_left_is_an_error():
    frame = _sweep()
    frame.loc[frame["objective"] == "kl_uniform(lam=0.1)", "val_MaxBoxAccV2"] = math.nan
    assert choose_strength(frame, objective_name="kl_uniform")["objective"] == "kl_uniform(lam=0.3)"
    frame["val_MaxBoxAccV2"] = math.nan
    with pytest.raises(ConfigError, match="no val_MaxBoxAccV2 value"):
        choose_strength(frame, objective_name="kl_uniform")


def test_a_frame_without_the_objective_or_the_val_column_is_refused():
    with pytest.raises(ConfigError, match="no row of objective 'label_smoothing'.*objectives: ce, kl_uniform"):
        choose_strength(_sweep(), objective_name="label_smoothing")
    with pytest.raises(ConfigError, match="no val_MaxBoxAccV2 column"):
        choose_strength(_sweep().drop(columns="val_MaxBoxAccV2"), objective_name="kl_uniform")
    with pytest.raises(ConfigError, match="no val_PxAP column"):
        choose_strength(_sweep(), objective_name="kl_uniform", metric="PxAP")


def test_strengths_of_several_groups_are_not_compared():
    two = pd.concat([_sweep(), _sweep().assign(dataset="digits")], ignore_index=True)
    with pytest.raises(ConfigError, match="2 groups"):
        choose_strength(two, objective_name="kl_uniform")


def test_chosen_strengths_picks_per_group_and_regularizer():
    digits = _sweep().assign(dataset="digits")
    digits.loc[digits["objective"] == "kl_uniform(lam=1)", "val_MaxBoxAccV2"] = 70.0
    variant = _sweep().iloc[1:3].assign(objective=["kl_uniform(lam=0.01, normalize_loss_scale)",
                                                   "kl_uniform(lam=0.1, normalize_loss_scale)"],
                                        val_MaxBoxAccV2=[65.0, 50.0])
    picked = chosen_strengths(pd.concat([_sweep(), digits, variant], ignore_index=True))
    got = {(r["dataset"], r["objective"]) for _, r in picked.iterrows()}
    assert got == {("synthetic", "kl_uniform(lam=0.1)"), ("digits", "kl_uniform(lam=1)"),
                   ("synthetic", "kl_uniform(lam=0.01, normalize_loss_scale)")}
    assert chosen_strengths(_sweep().drop(columns="val_MaxBoxAccV2")).empty


def test_names_and_strength_come_from_labels_when_absent():
    old = pd.DataFrame({"objective": ["ce", "kl_uniform(lam=0.3)", "label_smoothing(eps=0.1, normalize_loss_scale)"],
                        "method": ["adl(drop_rate=0.75)"] * 3})
    frame = with_axis_names(old)
    assert list(frame["objective_name"]) == ["ce", "kl_uniform", "label_smoothing"]
    assert pd.isna(frame["strength_name"].iloc[0]) and list(frame["strength_name"].iloc[1:]) == ["lam", "eps"]
    assert pd.isna(frame["strength"].iloc[0])  # ce has none
    assert list(frame["strength"].iloc[1:]) == [0.3, 0.1]
    assert set(frame["method_name"]) == {"adl"}
    assert regularizer_of("label_smoothing(eps=0.1, normalize_loss_scale)", "eps") == \
        "label_smoothing(normalize_loss_scale)"
    assert regularizer_of("kl_uniform(lam=0.3)", "lam") == "kl_uniform"
    assert regularizer_of("ce", None) == "ce"


@dataclass(frozen=True)
class _Interval:
    diff: float
    low: float
    high: float
    n_images: int = 400


def test_summary_puts_the_val_choice_beside_the_baseline_with_its_interval():
    summary = sweep_summary(_sweep(), objective_name="kl_uniform",
                            intervals={"MaxBoxAccV2": _Interval(1.0, 0.4, 2.1)})
    assert list(summary["role"]) == ["baseline", "chosen"]
    assert list(summary["objective"]) == ["ce", "kl_uniform(lam=0.1)"]
    assert list(summary["MaxBoxAccV2"]) == [61.0, 62.0]  # test numbers at the val choice
    assert list(summary["val_MaxBoxAccV2"]) == [60.0, 64.0]
    assert list(summary["MaxBoxAccV2_std"]) == [0.5, 0.5]
    chosen = summary.iloc[1]
    assert (chosen["MaxBoxAccV2_diff"], chosen["MaxBoxAccV2_low"], chosen["MaxBoxAccV2_high"]) == (1.0, 0.4, 2.1)
    assert math.isnan(summary.iloc[0]["MaxBoxAccV2_diff"])
    text = sweep_markdown(summary)
    assert "62.00 ± 0.50" in text and "+1.00 [+0.40, +2.10] *" in text


def test_summary_keeps_the_leaderboards_interval_columns_and_refuses_a_missing_baseline():
    frame = _sweep().assign(MaxBoxAccV2_diff=math.nan, MaxBoxAccV2_low=math.nan, MaxBoxAccV2_high=math.nan)
    at = frame["objective"] == "kl_uniform(lam=0.1)"
    frame.loc[at, ["MaxBoxAccV2_diff", "MaxBoxAccV2_low", "MaxBoxAccV2_high"]] = [1.0, -0.5, 2.0]
    summary = sweep_summary(frame, objective_name="kl_uniform")
    assert summary.iloc[1]["MaxBoxAccV2_low"] == -0.5
    assert "+1.00 [-0.50, +2.00]" in sweep_markdown(summary) and "*" not in sweep_markdown(summary)
    one_seed = _sweep().assign(seeds=1, MaxBoxAccV2_std=math.nan)
    assert "| 62.00 " in sweep_markdown(sweep_summary(one_seed, objective_name="kl_uniform"))
    with pytest.raises(ConfigError, match="no baseline 'ce' row"):
        sweep_summary(_sweep().iloc[1:], objective_name="kl_uniform")
