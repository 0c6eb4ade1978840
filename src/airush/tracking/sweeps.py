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
import math
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from airush.tracking import run_record, store

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
    with store._locked(sweep_dir / ".mlflow.lock"):
        parents = read_parents(sweep_dir)
        if experiment_id not in parents:
            info = read_sweep_info(sweep_dir)
            commit, dirty = run_record.git_state(Path(__file__).parent)
            run = client.create_run(
                experiment_id,
                run_name=f"sweep {sweep_dir.name}",
                tags={
                    "airush.sweep": "parent",
                    "airush.sweep_dir": str(sweep_dir),
                    "hydra.overrides": store.redact_text(" ".join(info.get("overrides", []))),
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
    record = {"num": num, "overrides": store.redact_text(" ".join(overrides)), "status": status, **info}
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
    line = store.error_line(err)
    overrides = list(hydra_cfg.overrides.task)
    error = f"{type(err).__name__}: {line}"[:500]
    run_id = run_record.last_run_id
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
    shown = store.redact_text(" ".join(overrides))
    print(f"airush: job #{hydra_cfg.job.num} ({shown}) failed: {line}", file=sys.stderr)
    return None


def failed_start_run(cfg, sweep_dir: Path, overrides: list[str], error: str, text: str) -> str | None:
    """A FAILED child run (overrides, error, traceback) for a job that failed before its run began, so the
    MLflow record has every job; None when even that is impossible (its config does not resolve)."""
    try:
        client, experiment_id = store.open_experiment(
            str(cfg.mlflow.tracking_uri), str(cfg.mlflow.experiment), cfg.mlflow.artifact_location
        )
        tags = {
            "mlflow.parentRunId": sweep_parent_run(client, experiment_id, sweep_dir),
            "airush.task": str(cfg.task.name),
            "hydra.overrides": store.redact_text(" ".join(overrides)),
            "airush.error": error,
        }
        name = tags["hydra.overrides"][:250] or "job"
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        client.log_text(run.info.run_id, text, "traceback.txt")
        client.set_terminated(run.info.run_id, "FAILED")
        return run.info.run_id
    except Exception as err:  # the job's config itself is broken: the sweep dir keeps the record
        log.warning("job failed before its run began; no MLflow run for it: %s", store.error_line(err))
        return None


def close_sweep(tracking_uri: str, sweep_dir: Path, interrupted: bool = False) -> list[dict[str, Any]]:
    """End each parent run (FINISHED when every job finished, KILLED on Ctrl-C, else FAILED) with the best
    child tagged, `sweep_summary.json` and a `sweep_children.csv` table; returns the failed jobs."""
    records = job_records(sweep_dir)
    failed = [r for r in records if r["status"] == "FAILED"]
    parents = read_parents(sweep_dir)
    if not parents:
        return failed
    client = store.client_for(tracking_uri)
    for experiment_id, parent_id in parents.items():
        of_parent = f"tags.mlflow.parentRunId = '{parent_id}'"
        children = store.search_all(client, [experiment_id], of_parent)
        if interrupted and end_local_children(client, children):
            children = store.search_all(client, [experiment_id], of_parent)
        children = [run for run in children if not run_record.is_link(run)]  # reused runs come from records
        ids = {run.info.run_id for run in children}  # a job of this sweep may have reused a sibling's run
        reused = [
            client.get_run(r["run_id"]) for r in records if r["status"] == "REUSED" and r["run_id"] not in ids
        ]
        reused = [run for run in reused if run.info.experiment_id == experiment_id]
        summary = sweep_summary(children, reused, [r for r in failed if not r.get("run_id")])
        client.log_text(parent_id, json.dumps(summary, indent=1), "sweep_summary.json")
        client.log_text(parent_id, children_csv(summary["children"]), "sweep_children.csv")
        best = summary.get("best")
        if best:
            for key in ("run_id", "metric", "value", "valid_value", "selected_on", "overrides"):
                client.set_tag(parent_id, f"best.{key}", str(best[key]))
        client.set_tag(parent_id, "mlflow.runName", parent_name(read_sweep_info(sweep_dir), summary))
        statuses = [row["status"] for row in summary["children"]]
        ok = statuses and all(s in ("FINISHED", "REUSED") for s in statuses) and not failed
        client.set_terminated(parent_id, "KILLED" if interrupted else "FINISHED" if ok else "FAILED")
        if not interrupted:
            print("\n".join(summary_lines(tracking_uri, experiment_id, parent_id, summary)), flush=True)
    return failed


def parent_name(info: dict[str, Any], summary: dict[str, Any]) -> str:
    """What the sweep swept and how many jobs it ran (`sweep ×4: model=als,ease seed=1,2`): parents told apart
    at a glance in the UI, not by their time stamps."""
    swept = " ".join(o for o in info.get("overrides", []) if "," in o or "(" in o) or " ".join(
        info.get("overrides", [])
    )
    return store.redact_text(f"sweep ×{len(summary['children'])}: {swept or 'defaults'}")[:250]


def summary_lines(
    tracking_uri: str, experiment_id: str, parent_id: str, summary: dict[str, Any]
) -> list[str]:
    """The sweep's end in the terminal: its parent run, how its jobs ended, the best one (chosen on valid)
    and where to look at it."""
    from collections import Counter

    counts = Counter(row["status"] for row in summary["children"])
    ended = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))
    lines = [f"airush: sweep {parent_id}: {len(summary['children'])} jobs ({ended or 'none'})"]
    best = summary.get("best")
    if best:
        valid = best.get("valid_value")
        shown = f"valid_{best['metric']} {valid:.4f}, " if valid is not None else ""
        lines.append(
            f"airush: best job: run {best['run_id']} ({best['overrides'] or 'no overrides'}): "
            f"{shown}test {best['metric']} {best['value']:.4f} (chosen on {best['selected_on']})"
        )
        lines.append(f"airush: open it: {run_link(tracking_uri, experiment_id, best['run_id'])}")
    return lines


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page: on a tracking server its own address; a database store through `airush ui`."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}?workflowType={store.ML_WORKFLOW}"  # "Model training"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{store.redact_uri(tracking_uri).rstrip('/')}/{page}"
    return f"`airush ui` then http://127.0.0.1:5000/{page}"


def end_local_children(client, children: list) -> bool:
    """Ctrl-C: children still RUNNING on this host end KILLED (a parallel job's worker may die before it can
    mark its own run); those on other hosts (SLURM) may still be running and are only tagged. True when a
    status changed."""
    host = socket.gethostname()
    running = [child for child in children if child.info.status == "RUNNING"]
    local = [child for child in running if child.data.tags.get("airush.host") == host]
    for child in running:
        if child in local:
            client.set_terminated(child.info.run_id, "KILLED")
        else:
            client.set_tag(child.info.run_id, "airush.sweep_interrupted", "true")
    return bool(local)


def sweep_summary(
    children: list, reused: list | None = None, failed_early: list | None = None
) -> dict[str, Any]:
    """Every job (status, overrides, primary metric on test and valid) and the best one with its whole config,
    chosen by `best_row`. `reused`: finished runs of earlier sweeps a resumed job stood in for;
    `failed_early`: jobs that failed before any MLflow run of theirs existed."""
    rows = [_child_row(run, run.info.status) for run in children]
    rows += [_child_row(run, "REUSED") for run in reused or []]
    rows += [
        {"run_id": "", "status": "FAILED", "overrides": r["overrides"], "metric": None, "value": None}
        for r in failed_early or []
    ]
    best = best_row([r for r in rows if r["status"] in ("FINISHED", "REUSED")])
    if best is not None:
        run = next(r for r in [*children, *(reused or [])] if r.info.run_id == best["run_id"])
        best = {**best, "params": dict(sorted(run.data.params.items()))}
    return {"children": rows, "best": best}


def selection_value(metrics: dict[str, float], primary: str) -> float | None:
    """What a sweep chooses by (higher is better for every airush task): the primary metric on valid, so no
    choice looks at test; None when valid had nothing to score (NaN: a one-class valid set). The test value
    only for a metric the task does not validate at all (per-account verifiers; abuse f1/eer as primary),
    which the sweep's summary says (`best.selected_on`)."""
    value = metrics.get(f"valid_{primary}", metrics.get(primary))
    return None if value is None or math.isnan(value) else value


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest selection value; when some rows have a valid score, only those compete (a
    test value never outranks valid ones)."""
    scored = [r for r in rows if r.get("selection") is not None]
    validated = [r for r in scored if r.get("valid_value") is not None and not math.isnan(r["valid_value"])]
    pool = validated or scored
    return max(pool, key=lambda r: r["selection"]) if pool else None


def _child_row(run, status: str) -> dict[str, Any]:
    metric = run.data.tags.get("airush.primary_metric")
    return {
        "run_id": run.info.run_id,
        "status": status,
        "overrides": run.data.tags.get("hydra.overrides", ""),
        "metric": metric,
        "value": run.data.metrics.get(metric) if metric else None,
        "valid_value": run.data.metrics.get(f"valid_{metric}") if metric else None,
        "selection": selection_value(run.data.metrics, metric) if metric else None,
        "selected_on": "valid" if f"valid_{metric}" in run.data.metrics else "test",
    }


def children_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = ["run_id", "status", "overrides", "metric", "value", "valid_value"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def end_active_sweep(interrupted: bool) -> None:
    """A sweep that ended before Hydra's end-of-sweep callback (Ctrl-C: parents KILLED, each job's own run
    is marked by `tracked_run`; a sweeper's error: parents closed as their jobs went)."""
    if active_sweep is not None:
        try:
            close_sweep(*active_sweep, interrupted=interrupted)
        except Exception as err:  # the store itself may be what hung; the interrupt or error still wins
            print(
                f"airush: could not close the sweep's parent runs: {store.error_line(err)}",
                file=sys.stderr,
            )


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
        earlier_parents = set_aside_earlier_sweep(sweep_dir)
        info = {
            "overrides": list(config.hydra.overrides.task),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
        }
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=1))
        active_sweep = (uri, sweep_dir)
        close_dead_parents(uri, earlier_parents)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        global active_sweep
        _ensure_hydra_config(config)
        failed_jobs[:] = close_sweep(str(config.mlflow.tracking_uri), Path(config.hydra.sweep.dir))
        active_sweep = None


def set_aside_earlier_sweep(sweep_dir: Path) -> list[str]:
    """A sweep dir used before (an explicit hydra.sweep.dir, a rerun script): that sweep's records move to
    `previous/<n>/`, so this sweep gets a parent of its own and no stale failures. Returns that sweep's
    parent run ids."""
    stale = [sweep_dir / name for name in (PARENTS_FILE, JOBS_DIR, SWEEP_FILE) if (sweep_dir / name).exists()]
    if not stale:
        return []
    try:
        parents = list(read_parents(sweep_dir).values())
    except (OSError, ValueError):  # a torn or hand-edited file: set aside all the same
        parents = []
    previous = sweep_dir / PREVIOUS_DIR
    number = 1 + max((int(p.name) for p in previous.glob("[0-9]*") if p.name.isdigit()), default=-1)
    target = previous / str(number)
    target.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.rename(target / path.name)
    return parents


def close_dead_parents(tracking_uri: str, parent_ids: list[str]) -> None:
    """The earlier sweep's parents left RUNNING by a launcher that died end KILLED. Best effort, one by one:
    Hydra would only warn if a callback raised, and this sweep must start either way."""
    client = store.client_for(tracking_uri) if parent_ids else None
    for parent_id in parent_ids:
        try:
            parent = client.get_run(parent_id)
            if parent.info.lifecycle_stage == "active" and run_record.run_is_dead(parent):
                store.mark_dead(client, parent_id)
        except Exception as err:  # another store, deleted: nothing to close
            log.warning("earlier sweep parent %s left as it is: %s", parent_id, store.error_line(err))


def _ensure_hydra_config(config) -> None:
    """Let `${hydra:…}` in the sweep dir resolve: Hydra sets its config only once jobs start."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)
