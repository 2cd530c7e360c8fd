"""How long ``make grade`` takes on each exercise set's solution notebook (warm).

Runs ``python -m nncourse grade`` on every ``solutions/NN_*.ipynb`` in turn, the sets
alternated (01 02 03 04 01 02 ...), after one warm-up round that fills Numba's and the
OS's caches, and prints the median and best wall time of each, with the load average
before and after. The budget is 20 s a notebook on a 2-core machine. A script, not a
test: timings on a shared machine are too noisy to assert.

    .venv/bin/python benchmarks/bench_grading.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def grade_once(notebook: Path, results: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nncourse",
            "grade",
            str(notebook),
            "--root",
            str(ROOT),
            "--results",
            str(results),
            "--strict",
        ],
        capture_output=True,
        text=True,
        cwd=results,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:  # the solutions must score full marks, or the time means nothing
        raise SystemExit(
            f"{notebook.name} did not grade to full marks:\n{done.stdout}{done.stderr}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    notebooks = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    times: dict[str, list[float]] = {nb.name: [] for nb in notebooks}
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds + 1):
            for nb in notebooks:
                elapsed = grade_once(nb, Path(tmp))
                if round_:  # round 0 warms the caches
                    times[nb.name].append(elapsed)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"{'notebook':28} {'median':>8} {'best':>8}   ({args.rounds} runs, wall seconds)")
    for name, runs in times.items():
        print(f"{name:28} {statistics.median(runs):8.1f} {min(runs):8.1f}")


if __name__ == "__main__":
    main()
