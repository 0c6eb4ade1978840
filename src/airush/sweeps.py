"""A `-m` sweep in MLflow: one parent run per experiment, one child per job, failed and reused jobs on record,
and a summary on the parent when the sweep ends.

Jobs may run in other processes (joblib, submitit), so what they share lives in the sweep dir, never in
`MLFLOW_RUN_ID`: `mlflow_parents.json` (the parent run id per experiment) and `jobs/<num>.json` (a job that
failed, or that reused an identical finished run instead of training again).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from airush import tracking

PARENTS_FILE = "mlflow_parents.json"
JOBS_DIR = "jobs"

log = logging.getLogger(__name__)

# The sweep this process launched (set by the callback), and the failed jobs once it has ended: the CLI turns
# them into a non-zero exit naming the jobs, and Ctrl-C marks the parent runs KILLED.
active_sweep: tuple[str, Path] | None = None
failed_jobs: list[dict[str, Any]] = []


def read_parents(sweep_dir: Path) -> dict[str, str]:
    path = sweep_dir / PARENTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def sweep_parent_run(client, experiment_id: str, sweep_dir: Path) -> str:
    """The sweep's parent run in this experiment, created by whichever job gets here first."""
    with tracking._locked(sweep_dir / ".mlflow.lock"):
        parents = read_parents(sweep_dir)
        if experiment_id not in parents:
            info_path = sweep_dir / "sweep.json"
            info = json.loads(info_path.read_text()) if info_path.exists() else {}
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


def job_failed(err: BaseException) -> None:
    """A sweep job raised: keep its traceback (job dir, log, MLflow run), note it for the end of the sweep, and
    let the sweep go on. Returns the job's objective: None, which a sweeper records as a failed trial."""
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
    record_job(
        job_dir.parent,
        int(hydra_cfg.job.num),
        overrides,
        "FAILED",
        error=f"{type(err).__name__}: {line}"[:500],
        run_id=tracking.last_run_id,
        traceback=str(job_dir / "traceback.txt"),
    )
    print(f"airush: job #{hydra_cfg.job.num} ({' '.join(overrides)}) failed: {line}", file=sys.stderr)
    return None


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
        children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        reused = [client.get_run(r["run_id"]) for r in records if r["status"] == "REUSED"]
        reused = [run for run in reused if run.info.experiment_id == experiment_id]
        summary = sweep_summary(children, reused, [r for r in failed if not r.get("run_id")])
        client.log_text(parent_id, json.dumps(summary, indent=1), "sweep_summary.json")
        client.log_text(parent_id, children_csv(summary["children"]), "sweep_children.csv")
        best = summary.get("best")
        if best:
            for key in ("run_id", "metric", "value", "overrides"):
                client.set_tag(parent_id, f"best.{key}", str(best[key]))
        statuses = [row["status"] for row in summary["children"]]
        ok = statuses and all(s in ("FINISHED", "REUSED") for s in statuses) and not failed
        client.set_terminated(parent_id, "KILLED" if interrupted else "FINISHED" if ok else "FAILED")
    return failed


def sweep_summary(
    children: list, reused: list | None = None, failed_early: list | None = None
) -> dict[str, Any]:
    """Every job (status, overrides, primary metric, params) and the best one by its task's primary metric.
    `reused`: finished runs of earlier sweeps a resumed job stood in for; `failed_early`: jobs that failed
    before their MLflow run began (a config error in one job)."""
    rows = [_child_row(run, run.info.status) for run in children]
    rows += [_child_row(run, "REUSED") for run in reused or []]
    rows += [
        {"run_id": "", "status": "FAILED", "overrides": r["overrides"], "metric": None, "value": None}
        for r in failed_early or []
    ]
    scored = [r for r in rows if r["value"] is not None and r["status"] in ("FINISHED", "REUSED")]
    best = max(scored, key=lambda r: r["value"]) if scored else None
    return {"children": rows, "best": best}


def _child_row(run, status: str) -> dict[str, Any]:
    metric = run.data.tags.get("airush.primary_metric")
    return {
        "run_id": run.info.run_id,
        "status": status,
        "overrides": run.data.tags.get("hydra.overrides", ""),
        "metric": metric,
        "value": run.data.metrics.get(metric) if metric else None,
        "valid_value": run.data.metrics.get(f"valid_{metric}") if metric else None,
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
        overrides = list(config.hydra.overrides.task)
        (sweep_dir / "sweep.json").write_text(json.dumps({"overrides": overrides}, indent=1))
        active_sweep = (str(config.mlflow.tracking_uri), sweep_dir)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        global active_sweep
        _ensure_hydra_config(config)
        failed_jobs[:] = close_sweep(str(config.mlflow.tracking_uri), Path(config.hydra.sweep.dir))
        active_sweep = None


def _ensure_hydra_config(config) -> None:
    """Let `${hydra:…}` in the sweep dir resolve: Hydra sets its config only once jobs start."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        HydraConfig.instance().set_config(config)
