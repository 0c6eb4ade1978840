"""Start-up and default-run wall time of the installed `airush` (goals: <= 0.8 s start-up, <= 30 s default run,
< 1 s to refuse a missing input file).

    python scripts/bench_cli.py [--repeats 5]

Each command runs in a fresh temporary directory with its own sqlite store, as a user's first run would
(so the default run includes creating the MLflow database).
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

AIRUSH = str(Path(sys.executable).parent / "airush")
GOALS = {
    "airush --help": 0.8,
    "airush --cfg job": 0.8,
    "airush (default run)": 30.0,
    "airush task=music": 30.0,
    "airush (missing file)": 1.0,
}
MISSING_FILE = ["data=events", "data.events=nope.csv", "data.sessions=nope.csv"]  # answers exit 2, one line
COMMANDS = {
    "airush --help": ["--help"],
    "airush --cfg job": ["--cfg", "job"],
    "airush (default run)": [],
    "airush task=music": ["task=music"],
    "airush (missing file)": MISSING_FILE,
}
EXIT_CODES = {"airush (missing file)": 2}  # 0 for the others


def wall_time(args: list[str], exit_code: int = 0) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        start = time.perf_counter()
        done = subprocess.run([AIRUSH, *args], cwd=tmp, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != exit_code:
            sys.exit(f"airush {' '.join(args)}: exit {done.returncode}, expected {exit_code}\n{done.stderr}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per start-up command (runs: 1 each)")
    args = parser.parse_args()
    print(f"{'command':<24} {'median s':>9} {'min s':>7} {'goal s':>7} {'goal/median':>12}")
    for name, argv in COMMANDS.items():
        repeats = args.repeats if GOALS[name] <= 1 else 1  # answers within a second repeat; whole runs once
        times = [wall_time(argv, EXIT_CODES.get(name, 0)) for _ in range(repeats)]
        median = statistics.median(times)
        print(
            f"{name:<24} {median:>9.3f} {min(times):>7.3f} {GOALS[name]:>7.1f} {GOALS[name] / median:>11.2f}x"
        )


if __name__ == "__main__":
    main()
