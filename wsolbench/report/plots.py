"""The entropy-vs-accuracy plot: one point per run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from wsolbench._io import atomic_write  # noqa: E402

LOCALIZATION_METRICS = ("MaxBoxAccV2", "PxAP", "Top-1 Loc")


def plot_entropy_vs_accuracy(frame: pd.DataFrame, path: Path) -> Path:
    """Mean normalized predictive entropy on x; top-1 accuracy (left) and localization (right) on y."""
    fig, (ax_cls, ax_loc) = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    x = frame["entropy_norm"]
    labels = frame["name"]
    ax_cls.scatter(x, frame["top1"], color="tab:gray", zorder=3)
    for xi, yi, label in zip(x, frame["top1"], labels):
        ax_cls.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax_cls.set(xlabel="mean predictive entropy H(p) / log K", ylabel="top-1 accuracy (%)",
               title="classification")
    low = float(frame["top1"].min())
    ax_cls.set_ylim(max(0.0, low - 5.0), 100.5)  # accuracy cannot exceed 100 %
    markers = iter("osD^")
    for metric in LOCALIZATION_METRICS:
        if metric in frame and frame[metric].notna().any():
            ax_loc.scatter(x, frame[metric], marker=next(markers), label=metric, zorder=3)
    if "MaxBoxAccV2" in frame:
        for xi, yi, label in zip(x, frame["MaxBoxAccV2"], labels):
            ax_loc.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax_loc.set(xlabel="mean predictive entropy H(p) / log K", ylabel="localization (%)",
               title="localization (test)")
    ax_loc.legend(fontsize=8)
    for ax in (ax_cls, ax_loc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
