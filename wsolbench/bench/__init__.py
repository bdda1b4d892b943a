"""Benches: expanding a grid of axes into runs, the results store with run claims, and executors (local, Ray)."""

from wsolbench.bench.executor import EXECUTORS, BenchOutcome, grid_records, report_lock, run_bench
from wsolbench.bench.grid import bench_configs, expand_grid, name_by_dataset
from wsolbench.bench.gridfile import GridFile, axes_from_sets, grid_configs, read_grid_file
from wsolbench.bench.plan import Plan, plan_bench, plan_lines
from wsolbench.bench.store import ResultsStore

__all__ = ["EXECUTORS", "BenchOutcome", "GridFile", "Plan", "ResultsStore", "axes_from_sets", "bench_configs",
           "expand_grid", "grid_configs", "grid_records", "name_by_dataset", "plan_bench", "plan_lines",
           "read_grid_file", "report_lock", "run_bench"]
