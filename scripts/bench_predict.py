"""Abuse predictions over a large events file: wall time and peak memory (goal: 100 M events within 8 GB).

    python scripts/bench_predict.py [--events 100000000] [--format csv|parquet] [--chunk-events 2000000]

Trains a small LightGBM run on synthetic data (its own sqlite store in a temporary folder), writes an events
file of `--events` rows chunk by chunk (copies of a generated log under new session ids, sessions interleaved
in time within each chunk, epoch ms, event and button as text: a user's raw log), then scores it with
`airush.abuse.predict.predictions` in a child process, whose peak RSS (`ru_maxrss`, itself and its children)
is the number reported. Writing the file is bounded too (one chunk at a time).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_BYTES = 8 << 30
SMALL = ["data.n_users=60", "data.sessions_per_user=5", "data.bot_share=0.15", "data.mouse_actions=[3,8]"]
BASE_SESSIONS = dict(n_users=100, sessions_per_user=5, bot_share=0.05)  # ~1,100 events per session
COPIES_PER_CHUNK = 8  # copies of the base log interleaved and written at once (~4.4 M events)


def train(folder: Path) -> tuple[str, str]:
    """(tracking URI, run id) of a small LightGBM run."""
    import mlflow
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import airush.cli  # noqa: F401  (registers the resolvers airush's configs use)
    from airush.runner import run

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with initialize_config_module("airush.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, "model.num_boost_round=100"], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.run_dir = str(folder / "run")
        cfg.mlflow.tracking_uri = uri
        del cfg["hydra"]
    run(cfg)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("abuse").experiment_id
    (found,) = client.search_runs([experiment], max_results=1)
    return uri, found.info.run_id


def write_events(path: Path, n_events: int, fmt: str) -> int:
    """An events file of at least `n_events` rows, written chunk by chunk; the rows written."""
    import numpy as np
    import pyarrow as pa

    from airush.abuse.data.synthetic import SyntheticSessions

    base = SyntheticSessions(**BASE_SESSIONS).load(seed=0).events
    base = base.astype({"event": str, "button": str})
    n_sessions = int(base["session_id"].max()) + 1
    rng = np.random.default_rng(0)
    written, copy, writer = 0, 0, None
    try:
        while written < n_events:
            frames = []
            for _ in range(COPIES_PER_CHUNK):
                frame = base.copy()
                frame["session_id"] += copy * n_sessions
                start = 1.7e12 + rng.uniform(0, 3.6e6, n_sessions)  # sessions overlap within the hour
                frame["t_ms"] += start[base["session_id"].to_numpy()]
                frames.append(frame)
                copy += 1
            import pandas as pd

            chunk = pd.concat(frames, ignore_index=True).sort_values("t_ms", kind="stable")
            chunk = chunk.head(n_events - written)
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = _writer(path, table.schema, fmt)
            writer.write_table(table)
            written += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return written


def _writer(path: Path, schema, fmt: str):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    from pyarrow import csv

    return csv.CSVWriter(path, schema)


def score(uri: str, run_id: str, events: Path, chunk_events: int) -> None:
    """Child process: predictions over `events`; prints a JSON line of what it measured."""
    from types import SimpleNamespace

    import mlflow

    from airush.abuse.data.events import EventFiles
    from airush.abuse.predict import predictions
    from airush.inference.predict import PredictOptions
    from airush.tracking.model_integrity import load_run_model

    run = mlflow.MlflowClient(uri).get_run(run_id)
    trained = SimpleNamespace(model=load_run_model(uri, run_id), config=None, metrics=run.data.metrics)
    start = time.perf_counter()
    sessions = flagged = chunks = 0
    for frame in predictions(trained, EventFiles(str(events)), PredictOptions(chunk_events=chunk_events)):
        sessions += len(frame)
        flagged += int(frame["flagged"].sum())
        chunks += 1
    seconds = time.perf_counter() - start
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    line = {"seconds": seconds, "peak_bytes": peak * 1024, "sessions": sessions, "flagged": flagged}
    print(json.dumps(line | {"chunks": chunks}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--chunk-events", type=int, default=2_000_000)
    parser.add_argument("--folder", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--score", nargs=3, metavar=("URI", "RUN_ID", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.score:
        score(*args.score[:2], Path(args.score[2]), args.chunk_events)
        return
    with tempfile.TemporaryDirectory(prefix="airush-bench-predict-", dir=args.folder) as name:
        folder = Path(name)
        uri, run_id = train(folder)
        events = folder / f"events.{args.format}"
        start = time.perf_counter()
        n = write_events(events, args.events, args.format)
        print(
            f"wrote {n:,} events ({events.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s"
        )
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--chunk-events",
                str(args.chunk_events),
                "--score",
                uri,
                run_id,
                str(events),
            ],
            capture_output=True,
            text=True,
        )
        if child.returncode:
            sys.exit(child.stderr[-3000:])
        measured = json.loads(child.stdout.strip().splitlines()[-1])
    peak = measured["peak_bytes"]
    print("| events | format | wall time | events/s | peak RSS | goal | peak / goal | sessions | flagged |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {n:,} | {args.format} | {measured['seconds']:.1f} s | {n / measured['seconds']:,.0f} | "
        f"{peak / 2**30:.2f} GB | {GOAL_BYTES / 2**30:.0f} GB | {peak / GOAL_BYTES:.2f} | "
        f"{measured['sessions']:,} | {measured['flagged']:,} |"
    )


if __name__ == "__main__":
    main()
