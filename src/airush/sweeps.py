"""A `-m` sweep in MLflow: one parent run per experiment, one child per job, failed and reused jobs on record,
and a summary on the parent when the sweep ends.

Jobs may run in other processes (joblib, submitit), so what they share lives in the sweep dir, never in
`MLFLOW_RUN_ID`: `sweep.json` (overrides, the launching process), `mlflow_parents.json` (the parent run id per
experiment) and `jobs/<num>.json` (a job that failed, or that reused an identical finished run). A new sweep in
a dir an earlier sweep used moves that sweep's records to `previous/<n>/`: it gets its own parent.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from airush import tracking

PARENTS_FILE = "mlflow_parents.json"
JOBS_DIR = "jobs"
SWEEP_FILE = "sweep.json"
PREVIOUS_DIR = "previous"

log = logging.getLogger(__name__)

# The sweep this process launched (set by the callback), and the failed jobs once it has ended: the CLI turns
# them into a non-zero exit naming the jobs, and Ctrl-C marks the parent runs KILLED.
active_sweep: tuple[str, Path] | None = None
failed_jobs: list[dict[str, Any]] = []


def read_parents(sweep_dir: Path) -> dict[str, str]:
    path = sweep_dir / PARENTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def read_sweep_info(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def sweep_parent_run(client, experiment_id: str, sweep_dir: Path) -> str:
    """The sweep's parent run in this experiment, created by whichever job gets here first."""
    with tracking._locked(sweep_dir / ".mlflow.lock"):
        parents = read_parents(sweep_dir)
        if experiment_id not in parents:
            info = read_sweep_info(sweep_dir)
            commit, dirty = tracking.git_state(Path(__file__).parent)
            run = client.create_run(
                experiment_id,
                run_name=f"sweep {sweep_dir.name}",
                tags={
                    "airush.sweep": "parent",
                    "airush.sweep_dir": str(sweep_dir),
                    "hydra.overrides": " ".join(info.get("overrides", [])),
                    "git.commit": commit,
                    "git.dirty": dirty,
                    "mlflow.source.git.commit": commit,
                    # the launching process: a parent left RUNNING by a SIGKILLed sweep is recognised as dead
                    "airush.host": info.get("host", socket.gethostname()),
                    "airush.pid": str(info.get("pid", os.getpid())),
                },
            )
            parents[experiment_id] = run.info.run_id
            (sweep_dir / PARENTS_FILE).write_text(json.dumps(parents, indent=1))
        return parents[experiment_id]


def record_job(sweep_dir: Path, num: int, overrides: list[str], status: str, **info: Any) -> None:
    """One file per job (written whole, then renamed): parallel jobs never share a file."""
    folder = sweep_dir / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"num": num, "overrides": " ".join(overrides), "status": status, **info}
    tmp = folder / f".{num}.json.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(folder / f"{num}.json")


def job_records(sweep_dir: Path) -> list[dict[str, Any]]:
    folder = sweep_dir / JOBS_DIR
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(records, key=lambda r: r["num"])


def job_failed(err: BaseException, cfg=None) -> None:
    """A sweep job raised: keep its traceback (job dir, log, MLflow run), note it for the end of the sweep, and
    let the sweep go on. Returns the job's objective: None, which a sweeper records as a failed trial.
    A job that failed before its run began (a config error in this job only) gets a FAILED run of its own."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    text = "".join(traceback.format_exception(err))
    job_dir = Path(hydra_cfg.runtime.output_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "traceback.txt").write_text(text)
    from airush.errors import UserError

    if isinstance(err, UserError):  # the user's mistake: one line, as in a single run
        log.error("job failed: %s", err)
    else:
        log.error("job failed:\n%s", text)
    line = str(err).splitlines()[0] if str(err) else type(err).__name__
    overrides = list(hydra_cfg.overrides.task)
    error = f"{type(err).__name__}: {line}"[:500]
    run_id = tracking.last_run_id
    if run_id is None and cfg is not None:
        run_id = failed_start_run(cfg, job_dir.parent, overrides, error, text)
    record_job(
        job_dir.parent,
        int(hydra_cfg.job.num),
        overrides,
        "FAILED",
        error=error,
        run_id=run_id,
        traceback=str(job_dir / "traceback.txt"),
    )
    print(f"airush: job #{hydra_cfg.job.num} ({' '.join(overrides)}) failed: {line}", file=sys.stderr)
    return None


def failed_start_run(cfg, sweep_dir: Path, overrides: list[str], error: str, text: str) -> str | None:
    """A FAILED child run (overrides, error, traceback) for a job that failed before its run began, so the
    MLflow record has every job; None when even that is impossible (its config does not resolve)."""
    try:
        client, experiment_id = tracking.open_experiment(
            str(cfg.mlflow.tracking_uri), str(cfg.mlflow.experiment), cfg.mlflow.artifact_location
        )
        tags = {
            "mlflow.parentRunId": sweep_parent_run(client, experiment_id, sweep_dir),
            "airush.task": str(cfg.task.name),
            "hydra.overrides": tracking.redact_text(" ".join(overrides)),
            "airush.error": error,
        }
        run = client.create_run(experiment_id, run_name=" ".join(overrides)[:250] or "job", tags=tags)
        client.log_text(run.info.run_id, text, "traceback.txt")
        client.set_terminated(run.info.run_id, "FAILED")
        return run.info.run_id
    except Exception as err:  # the job's config itself is broken: the sweep dir keeps the record
        log.warning("job failed before its run began; no MLflow run for it: %s", str(err).splitlines()[0])
        return None


def all_runs(client, experiment_ids: list[str], filter_string: str = "") -> list:
    """Every matching run, page by page (one search returns at most 1000)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def close_sweep(tracking_uri: str, sweep_dir: Path, interrupted: bool = False) -> list[dict[str, Any]]:
    """End each parent run (FINISHED when every job finished, KILLED on Ctrl-C, else FAILED) with the best
    child tagged, `sweep_summary.json` and a `sweep_children.csv` table; returns the failed jobs."""
    records = job_records(sweep_dir)
    failed = [r for r in records if r["status"] == "FAILED"]
    parents = read_parents(sweep_dir)
    if not parents:
        return failed
    client = tracking.client_for(tracking_uri)
    for experiment_id, parent_id in parents.items():
        children = all_runs(client, [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        if interrupted:  # a parallel job's worker may die before it can mark its own run
            for child in children:
                if child.info.status == "RUNNING":
                    client.set_terminated(child.info.run_id, "KILLED")
            children = all_runs(client, [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        reused = [client.get_run(r["run_id"]) for r in records if r["status"] == "REUSED"]
        reused = [run for run in reused if run.info.experiment_id == experiment_id]
        summary = sweep_summary(children, reused, [r for r in failed if not r.get("run_id")])
        client.log_text(parent_id, json.dumps(summary, indent=1), "sweep_summary.json")
        client.log_text(parent_id, children_csv(summary["children"]), "sweep_children.csv")
        best = summary.get("best")
        if best:
            for key in ("run_id", "metric", "value", "valid_value", "overrides"):
                client.set_tag(parent_id, f"best.{key}", str(best[key]))
        statuses = [row["status"] for row in summary["children"]]
        ok = statuses and all(s in ("FINISHED", "REUSED") for s in statuses) and not failed
        client.set_terminated(parent_id, "KILLED" if interrupted else "FINISHED" if ok else "FAILED")
    return failed


def sweep_summary(
    children: list, reused: list | None = None, failed_early: list | None = None
) -> dict[str, Any]:
    """Every job (status, overrides, primary metric on test and valid) and the best one with its whole config.
    Best = highest primary metric on valid, as the sweeper optimises (choosing on test would leak it into the
    choice); on test only for runs with no valid score. `reused`: finished runs of earlier sweeps a resumed
    job stood in for; `failed_early`: jobs that failed before any MLflow run of theirs existed."""
    rows = [_child_row(run, run.info.status) for run in children]
    rows += [_child_row(run, "REUSED") for run in reused or []]
    rows += [
        {"run_id": "", "status": "FAILED", "overrides": r["overrides"], "metric": None, "value": None}
        for r in failed_early or []
    ]
    scored = [r for r in rows if r.get("selection") is not None and r["status"] in ("FINISHED", "REUSED")]
    best = max(scored, key=lambda r: r["selection"]) if scored else None
    if best is not None:
        run = next(r for r in [*children, *(reused or [])] if r.info.run_id == best["run_id"])
        best = {**best, "params": dict(sorted(run.data.params.items()))}
    return {"children": rows, "best": best}


def selection_value(run) -> float | None:
    """What a sweep chooses by: the primary metric on valid (higher is better for every airush task), on test
    only for a run that reports no valid score; None without the metric."""
    metric = run.data.tags.get("airush.primary_metric")
    if not metric:
        return None
    metrics = run.data.metrics
    return metrics.get(f"valid_{metric}", metrics.get(metric))


def _child_row(run, status: str) -> dict[str, Any]:
    metric = run.data.tags.get("airush.primary_metric")
    return {
        "run_id": run.info.run_id,
        "status": status,
        "overrides": run.data.tags.get("hydra.overrides", ""),
        "metric": metric,
        "value": run.data.metrics.get(metric) if metric else None,
        "valid_value": run.data.metrics.get(f"valid_{metric}") if metric else None,
        "selection": selection_value(run),
    }


def children_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = ["run_id", "status", "overrides", "metric", "value", "valid_value"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def interrupt_active_sweep() -> None:
    """Ctrl-C during a sweep: its parent runs end KILLED (each job's own run is marked by `tracked_run`)."""
    if active_sweep is not None:
        try:
            close_sweep(*active_sweep, interrupted=True)
        except Exception as err:  # the store itself may be what hung; the interrupt still wins
            print(f"airush: could not mark the sweep's parent runs KILLED: {err}", file=sys.stderr)


try:  # Hydra callbacks run in the launching process, around the whole sweep.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a hard dependency
    Callback = object  # type: ignore[assignment,misc]


class SweepCallback(Callback):
    """Records the sweep's overrides and closes the parent runs when the sweep ends."""

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        global active_sweep
        _ensure_hydra_config(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        uri = str(config.mlflow.tracking_uri)
        set_aside_earlier_sweep(uri, sweep_dir)
        info = {
            "overrides": list(config.hydra.overrides.task),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
        }
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        active_sweep = (uri, sweep_dir)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        global active_sweep
        _ensure_hydra_config(config)
        failed_jobs[:] = close_sweep(str(config.mlflow.tracking_uri), Path(config.hydra.sweep.dir))
        active_sweep = None


def set_aside_earlier_sweep(tracking_uri: str, sweep_dir: Path) -> None:
    """A sweep dir used before (an explicit hydra.sweep.dir, a rerun script): that sweep's records move to
    `previous/<n>/`, so this sweep gets a parent of its own and no stale failures; its parents left RUNNING by
    a killed launcher end KILLED."""
    stale = [sweep_dir / name for name in (PARENTS_FILE, JOBS_DIR, SWEEP_FILE) if (sweep_dir / name).exists()]
    if not stale:
        return
    parents = read_parents(sweep_dir)
    if parents:
        client = tracking.client_for(tracking_uri)
        for parent_id in parents.values():
            try:
                parent = client.get_run(parent_id)
            except Exception:  # another store, or deleted: nothing to close
                continue
            if tracking.run_is_dead(parent):
                client.set_tag(parent_id, "airush.dead", "true")
                client.set_terminated(parent_id, "KILLED")
    previous = sweep_dir / PREVIOUS_DIR
    number = 1 + max((int(p.name) for p in previous.glob("[0-9]*") if p.name.isdigit()), default=-1)
    target = previous / str(number)
    target.mkdir(parents=True)
    for path in stale:
        path.rename(target / path.name)


def _ensure_hydra_config(config) -> None:
    """Let `${hydra:…}` in the sweep dir resolve: Hydra sets its config only once jobs start."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)
