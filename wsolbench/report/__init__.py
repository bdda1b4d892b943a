"""Leaderboards and plots, built from run records only (torch-free)."""

from wsolbench.report.leaderboard import leaderboard_frame, write_leaderboard
from wsolbench.report.plots import plot_entropy_vs_accuracy

__all__ = ["leaderboard_frame", "plot_entropy_vs_accuracy", "write_leaderboard"]
