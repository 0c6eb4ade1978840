"""Start-up and default-run wall time of the installed `airush` (goals: <= 0.8 s start-up, <= 30 s default run).

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
}
COMMANDS = {
    "airush --help": ["--help"],
    "airush --cfg job": ["--cfg", "job"],
    "airush (default run)": [],
    "airush task=music": ["task=music"],
}


def wall_time(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        start = time.perf_counter()
        subprocess.run([AIRUSH, *args], cwd=tmp, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per start-up command (runs: 1 each)")
    args = parser.parse_args()
    print(f"{'command':<24} {'median s':>9} {'min s':>7} {'goal s':>7} {'goal/median':>12}")
    for name, argv in COMMANDS.items():
        repeats = args.repeats if name.endswith(("help", "job")) else 1
        times = [wall_time(argv) for _ in range(repeats)]
        median = statistics.median(times)
        print(
            f"{name:<24} {median:>9.3f} {min(times):>7.3f} {GOALS[name]:>7.1f} {GOALS[name] / median:>11.2f}x"
        )


if __name__ == "__main__":
    main()
