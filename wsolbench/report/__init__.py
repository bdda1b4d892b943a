"""Leaderboards and plots, built from run records only (torch-free)."""

from wsolbench.report.aggregate import SETTING, aggregate_seeds
from wsolbench.report.leaderboard import leaderboard_frame, record_row, runs_frame, write_leaderboard, write_runs
from wsolbench.report.plots import plot_entropy_vs_accuracy, plot_threshold_sweeps
from wsolbench.report.published import load_published
from wsolbench.report.significance import Interval, compare_to_baseline, paired_bootstrap
from wsolbench.report.sweep import choose_strength, sweep_markdown, sweep_summary

__all__ = ["SETTING", "Interval", "aggregate_seeds", "choose_strength", "compare_to_baseline", "leaderboard_frame",
           "load_published", "paired_bootstrap", "plot_entropy_vs_accuracy", "plot_threshold_sweeps", "record_row",
           "runs_frame", "sweep_markdown", "sweep_summary", "write_leaderboard", "write_runs"]
