"""Views of recorded runs on a sqlite store of 1,000 airush runs, against reading that store with plain
`sqlite3` (goals: leaderboard, compare and `reproduce <unknown id>` <= 2 s; tab completion <= 0.5 s).

    python scripts/bench_views.py [--runs 1000] [--repeats 5] [--mlflow] [--rebuild]

The store is built once and reused (outputs/bench_views/mlflow-<runs>.db): two real runs (`airush` on small
abuse and music data) and, written through MLflow's client, runs shaped like theirs for every model of both
tasks: the params `airush` logs for that model's composed config, its tags, its metrics (with noise) and
training curves, over seeds and hyperparameter variants, with sweep parents and children, FAILED, KILLED and
RUNNING runs. Each command runs as the installed `airush`, in a fresh process; the sqlite3 baseline is a
fresh Python process reading what the view reads (every run with its params, tags and latest metrics for
the leaderboard; two runs for compare; one id for reproduce). `--mlflow` also times the views through
MLflow's client (AIRUSH_STORE_READER=mlflow), which is what every view did before.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRUSH = str(Path(sys.executable).parent / "airush")
SMALL = {
    "abuse": [
        "data.n_users=60",
        "data.sessions_per_user=5",
        "data.bot_share=0.15",
        "data.mouse_actions=[3,8]",
    ],
    "music": ["data.n_users=300", "data.n_items=400", "data.n_artists=40"],
}
REAL = {"abuse": "lgbm", "music": "als"}  # the runs made with `airush` itself: the others copy their metrics
MODELS = {"abuse": ["lgbm", "seq"], "music": ["als", "bpr", "content", "ease", "itemknn", "pop", "twotower"]}
GOALS = {"leaderboard": 2.0, "compare": 2.0, "reproduce": 2.0, "completion": 0.5}

BASELINE = {  # what each view reads, with plain sqlite3 in a fresh interpreter
    "leaderboard": """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
runs = {r[0]: [r, {}, {}, {}] for r in db.execute(
    "SELECT run_uuid, name, experiment_id, status, start_time FROM runs WHERE lifecycle_stage = 'active'")}
for table, i in (("params", 1), ("tags", 2), ("latest_metrics", 3)):
    for run_id, key, value in db.execute(f"SELECT run_uuid, key, value FROM {table}"):
        if run_id in runs:
            runs[run_id][i][key] = value
print(len(runs))
""",
    "compare": """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for prefix in sys.argv[2:]:
    (run_id,) = db.execute("SELECT run_uuid FROM runs WHERE run_uuid LIKE ?", (prefix + "%",)).fetchone()
    for table in ("params", "tags", "latest_metrics"):
        db.execute(f"SELECT key, value FROM {table} WHERE run_uuid = ?", (run_id,)).fetchall()
""",
    "reproduce": """
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
assert db.execute("SELECT 1 FROM runs WHERE run_uuid = ?", ("zzzz",)).fetchone() is None
""",
    "completion": "pass",  # a bare interpreter: what any Python answer costs (baseline of the TAB rows)
}


def real_run(task: str, uri: str, cwd: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(
        [AIRUSH, f"task={task}", f"model={REAL[task]}", *SMALL[task]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"airush task={task}: exit {done.returncode}\n{done.stderr[-2000:]}")


def shapes(task: str, model: str) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) `airush` records for this task and model with SMALL data, as runner.py makes them."""
    from omegaconf import OmegaConf

    from airush import compose
    from airush.config.identity import config_hash
    from airush.runner import build, run_params, run_tags, settings_tags, split_job
    from airush.tracking.run_record import code_fingerprint

    cfg, job = split_job(compose([f"task={task}", f"model={model}", *SMALL[task]]), None)
    built = build(cfg, job)
    config = config_hash(OmegaConf.to_container(built.cfg, resolve=True))
    tags = run_tags(built.cfg, job, config, code_fingerprint())
    tags |= settings_tags(built.cfg, Path(built.cfg.paths.run_dir))
    return run_params(built.cfg, built.model_cls), tags


def build_store(path: Path, n_runs: int) -> None:
    """Two real runs, then n_runs - 2 runs shaped like theirs for every model, through MLflow's client."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{path}"
    with tempfile.TemporaryDirectory() as tmp:
        for task in REAL:
            real_run(task, uri, Path(tmp))
    client = MlflowClient(tracking_uri=uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    real = {r.data.tags["airush.task"]: r for r in client.search_runs(list(experiments.values()))}
    history = {
        task: {k: client.get_metric_history(run.info.run_id, k) for k in run.data.metrics}
        for task, run in real.items()
    }
    rng = random.Random(0)
    models = [(task, model) for task in MODELS for model in MODELS[task]]
    shaped = {pair: shapes(*pair) for pair in models}
    now_ms = int(time.time() * 1000)
    parent = None
    for i in range(n_runs - 2):
        task, model = models[i % len(models)]
        params, tags = dict(shaped[task, model][0]), dict(shaped[task, model][1])
        seed = 1 + (i // len(models)) % 5
        variant = (i // (len(models) * 5)) % 4  # 4 configs per model, 5 seeds each, then again (reruns)
        numeric = sorted(k for k, v in params.items() if k.startswith("model.") and _is_number(v))
        for key in numeric[:1]:
            params[key] = str(float(params[key]) * (1 + variant)) if variant else params[key]
        params["seed"] = tags["seed"] = str(seed)
        tags["hydra.overrides"] = f"task={task} model={model} seed={seed}" + (
            f" {numeric[0]}={params[numeric[0]]}" if variant and numeric else ""
        )
        tags["airush.pid"] = str(4_000_000 + i)  # no such process: RUNNING ones show as dead
        tags["airush.host"] = socket.gethostname()
        status = rng.choices(["FINISHED", "FAILED", "KILLED", "RUNNING"], [90, 5, 3, 2])[0]
        if i % 50 == 0:  # a sweep: a parent, then the next runs are its children
            parent = client.create_run(
                experiments[task], start_time=now_ms - (n_runs - i) * 60_000, tags={"airush.sweep": "parent"}
            ).info.run_id
            client.set_terminated(parent, "FINISHED")
        if parent is not None and i % 50 < 10:
            tags["mlflow.parentRunId"] = parent
        start = now_ms - (n_runs - i) * 60_000
        run = client.create_run(experiments[task], start_time=start, tags=tags, run_name=f"{task}-{model}")
        run_id = run.info.run_id
        metrics = []
        if status == "FINISHED":
            for key, points in history[task].items():
                noise = 1 + rng.gauss(0, 0.02)
                metrics += [Metric(key, p.value * noise, start + p.step, p.step) for p in points]
        items = [Param(k, v) for k, v in params.items()]
        for chunk in range(0, len(items), 100):
            client.log_batch(run_id, params=items[chunk : chunk + 100])
        for chunk in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[chunk : chunk + 1000])
        client.log_batch(run_id, tags=[RunTag("airush.bench", "views")])
        if status != "RUNNING":
            client.set_terminated(run_id, status, end_time=start + 30_000)
        if i % 100 == 0:
            print(f"  {i}/{n_runs - 2} runs written", file=sys.stderr)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text not in ("True", "False")


def wall_time(argv: list[str], env: dict[str, str], cwd: Path, exit_code: int = 0) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `argv`; CPU time (user + system) moves less with the machine's load."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != exit_code:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}, expected {exit_code}\n{done.stderr[-2000:]}")
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlflow", action="store_true", help="also time the views through MLflow's client")
    parser.add_argument("--rebuild", action="store_true", help="build the store again")
    args = parser.parse_args()
    folder = REPO / "outputs" / "bench_views"
    path = folder / f"mlflow-{args.runs}.db"
    if args.rebuild or not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        print(f"building {path} ({args.runs} runs, once) ...", file=sys.stderr)
        build_store(partial, args.runs)
        partial.replace(path)
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (n_runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
    pair = [r[0][:8] for r in db.execute("SELECT run_uuid FROM runs WHERE status = 'FINISHED' LIMIT 2")]
    db.close()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{path}", "COLUMNS": "200"}
    env["XDG_CACHE_HOME"] = str(folder / "cache")  # the completion cache, primed below as one TAB would
    views = {
        "leaderboard": ([AIRUSH, "leaderboard"], 0),
        "compare": ([AIRUSH, "compare", *pair], 0),
        "reproduce": ([AIRUSH, "reproduce", "zzzz"], 2),
    }
    completions = {
        "airush lea<TAB>": "airush lea",
        "airush <TAB>": "airush ",
        "airush model=<TAB>": "airush model=",
        "airush task=music model.fa<TAB>": "airush task=music model.fa",
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)

        def median(
            argv: list[str], code: int = 0, extra: dict[str, str] | None = None
        ) -> tuple[float, float]:
            times = [wall_time(argv, {**env, **(extra or {})}, cwd, code) for _ in range(args.repeats)]
            return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)

        baseline = {
            name: median([sys.executable, "-c", code, str(path), *pair]) for name, code in BASELINE.items()
        }
        for name, (argv, code) in views.items():
            rows.append((f"airush {' '.join(argv[1:])}", name, median(argv, code), baseline[name]))
            if args.mlflow:
                slow = median(argv, code, {"AIRUSH_STORE_READER": "mlflow"})
                rows.append(("  same, through MLflow's client", name, slow, baseline[name]))
        for name, line in completions.items():
            comp = {"COMP_LINE": line, "COMP_POINT": str(len(line))}
            argv = [AIRUSH, "-sc", "query=bash"]
            wall_time(argv, {**env, **comp}, cwd)  # the first TAB fills the cache
            rows.append((name, "completion", median(argv, extra=comp), baseline["completion"]))
    print(f"store: {path} ({n_runs} runs, sweep parents included); machine load {os.getloadavg()[0]:.1f}")
    print("median of", args.repeats, "fresh processes; CPU s = user + system time of the process")
    print(
        f"{'command':<36} {'wall s':>7} {'CPU s':>6} {'sqlite3 wall':>13} {'CPU':>6} {'wall ratio':>10} {'CPU':>5}"
    )
    for command, kind, (wall, cpu), (base_wall, base_cpu) in rows:
        print(
            f"{command:<36} {wall:>7.3f} {cpu:>6.3f} {base_wall:>13.3f} {base_cpu:>6.3f} {wall / base_wall:>10.1f} "
            f"{cpu / base_cpu:>5.1f}  (goal {GOALS[kind]:.1f} s)"
        )


if __name__ == "__main__":
    main()
