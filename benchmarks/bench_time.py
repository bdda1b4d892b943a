"""Wall time of the two benches a user meets first, against their budgets (issue: the two-regime default bench).

Each is the whole command as typed, in a fresh process and a fresh output folder (interpreter start-up,
imports, data generation, training, evaluation, leaderboards and plots included):

    smoke:   wsolbench bench --preset smoke            budget 30 s   (CI)
    default: wsolbench bench                            budget 600 s  (the README's first command)

    python benchmarks/bench_time.py                     # both (about 10 minutes on 2 cores)
    python benchmarks/bench_time.py --only smoke        # the smoke bench only

Prints each wall time and its ratio to the budget (<= 1.0 meets it). The runs' own timings (train / eval per
run) are in their records; the thread count is torch's default unless --threads is given.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = {"smoke": (["--preset", "smoke"], 30.0), "default": ([], 600.0)}


def time_bench(args: list[str], threads: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = ["wsolbench", "bench", *args, "--output-dir", str(Path(tmp) / "runs"), "--no-progress"]
        if threads is not None:
            command += ["--threads", str(threads)]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(BENCHES), default=None)
    parser.add_argument("--threads", type=int, default=None)
    opts = parser.parse_args()
    for name, (args, budget) in BENCHES.items():
        if opts.only and name != opts.only:
            continue
        seconds = time_bench(args, opts.threads)
        verdict = "meets" if seconds <= budget else "MISSES"
        print(f"{name:8s} {seconds:7.1f} s   budget {budget:5.0f} s   ratio {seconds / budget:.2f}  {verdict} the budget")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
