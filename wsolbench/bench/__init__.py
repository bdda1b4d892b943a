"""Benches: expanding a base config into runs and executing them."""

from wsolbench.bench.grid import bench_configs
from wsolbench.bench.executor import BenchOutcome, run_bench

__all__ = ["BenchOutcome", "bench_configs", "run_bench"]
