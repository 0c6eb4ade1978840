"""Markdown table of a protocol reproduction: our models (mean ± std over seeds) next to published numbers.

    python scripts/protocol_table.py outputs/recbole_lastfm/<stamp>/final/* [--out table.md]

Each argument is the sweep dir of one model's seed sweep (`airush -m ... seed=1,2,3 hydra.sweep.dir=DIR`,
as scripts/recbole_lastfm.sh runs them). The runs are read back from MLflow: the sweep's own children plus
the finished runs it reused (resume), so the table shows exactly the runs that sweep stands for, never an
older config of the same model. std is the sample standard deviation (ddof=1), like `airush leaderboard`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

# RecBole-GNN, results/social/lastfm.md (RUCAIBox/RecBole-GNN): same data, binary interactions, per-user
# random 8:1:1, full ranking, train+valid masked, tuned on valid NDCG@10, embedding size 64, one run each.
PUBLISHED = [
    ("BPR", "learning_rate=0.0005", 0.1674, 0.1761),
    ("NeuMF", "learning_rate=0.0005 dropout_prob=0.1", 0.1604, 0.1696),
    ("NGCF", "learning_rate=0.0005 hidden_size_list=[64,64,64]", 0.1898, 0.1960),
    ("LightGCN", "learning_rate=0.001 n_layers=3", 0.1972, 0.2064),
]
PUBLISHED_SOURCE = "RecBole-GNN results/social/lastfm.md"
METRICS = ("ndcg_at_10", "recall_at_10")
# Overrides every run of the protocol shares, or that only say where a run goes: not part of "settings".
COMMON_KEYS = {"seed", "experiment", "task", "model", "data.root", "resume"}
COMMON_PREFIXES = ("mlflow.", "hydra.", "hydra/")


@dataclass
class ModelRow:
    model: str
    settings: str
    seeds: list[str]
    values: dict[str, list[float]]

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.values[metric])

    def std(self, metric: str) -> float | None:
        return statistics.stdev(self.values[metric]) if len(self.values[metric]) > 1 else None


def sweep_runs(client, sweep_dir: Path) -> list:
    """Finished runs of one sweep: its children and the runs it reused, one per seed (the latest)."""
    from airush.tracking.sweeps import job_records, read_parents

    runs = []
    for experiment_id, parent_id in read_parents(sweep_dir).items():
        runs += client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    runs += [client.get_run(r["run_id"]) for r in job_records(sweep_dir) if r["status"] == "REUSED"]
    by_seed: dict[str, object] = {}
    for run in runs:
        if run.info.status != "FINISHED" or any(m not in run.data.metrics for m in METRICS):
            continue
        seed = run.data.tags.get("seed", run.data.params.get("seed", "?"))
        if seed not in by_seed or run.info.start_time > by_seed[seed].info.start_time:
            by_seed[seed] = run
    return [by_seed[s] for s in sorted(by_seed, key=lambda s: (len(s), s))]


def sweep_settings(sweep_dir: Path) -> str:
    """The sweep's command-line overrides that set the model up (tuned params), without the shared ones."""
    info = sweep_dir / "sweep.json"
    overrides = json.loads(info.read_text()).get("overrides", []) if info.exists() else []
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    kept = [o for o, k in zip(overrides, keys, strict=True) if k not in COMMON_KEYS]
    kept = [o for o in kept if not o.lstrip("+~").startswith(COMMON_PREFIXES)]
    return " ".join(_short(o.removeprefix("model.")) for o in kept) or "defaults"


def _short(override: str) -> str:
    """key=541.0804729769964 -> key=541.1: four significant digits are enough to read (the script keeps all)."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    if value.lstrip("-").isdigit():
        return override
    text = f"{number:.4g}"
    return f"{key}={text if any(c in text for c in '.en') else text + '.0'}"  # a float stays one: 1.0


def model_row(client, sweep_dir: Path) -> ModelRow | None:
    runs = sweep_runs(client, sweep_dir)
    if not runs:
        return None
    models = {r.data.tags.get("airush.model", "?") for r in runs}
    return ModelRow(
        model="/".join(sorted(models)),
        settings=sweep_settings(sweep_dir),
        seeds=[r.data.tags.get("seed", "?") for r in runs],
        values={m: [float(r.data.metrics[m]) for r in runs] for m in METRICS},
    )


def _cell(row: ModelRow, metric: str, bold: bool) -> str:
    mean, std = row.mean(metric), row.std(metric)
    text = f"{mean:.4f}"
    text = f"**{text}**" if bold else text
    return text + (f" ± {std:.4f}" if std is not None else "")


def markdown(rows: list[ModelRow], missing: list[str]) -> str:
    rows = sorted(rows, key=lambda r: -r.mean("ndcg_at_10"))
    best = max(
        [r.mean("ndcg_at_10") for r in rows] + [p[2] for p in PUBLISHED], default=None
    )  # the best NDCG@10 overall is bold
    lines = [
        "| Last.fm 2K, RecBole protocol | settings (tuned on valid NDCG@10) | NDCG@10 | Recall@10 | n |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| airush {row.model} | {row.settings} | {_cell(row, 'ndcg_at_10', row.mean('ndcg_at_10') == best)}"
            f" | {_cell(row, 'recall_at_10', False)} | {len(row.seeds)} (seeds {','.join(row.seeds)}) |"
        )
    for name in missing:
        lines.append(f"| airush {name} | no finished run (see the script's log) | – | – | 0 |")
    for name, settings, ndcg, recall in PUBLISHED:
        ndcg_text = f"**{ndcg:.4f}**" if ndcg == best else f"{ndcg:.4f}"
        lines.append(f"| {name} (published) | {settings} | {ndcg_text} | {recall:.4f} | 1 |")
    lines.append("")
    lines.append(f"Published rows: {PUBLISHED_SOURCE}. Ours: mean ± sample std over the seeds shown.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="one seed sweep dir per model")
    parser.add_argument(
        "--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///<cwd>/outputs/mlflow.db"
    )
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)

    import mlflow

    uri = (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path.cwd()}/outputs/mlflow.db"
    )
    client = mlflow.MlflowClient(uri)
    rows, missing = [], []
    for sweep_dir in args.sweep_dirs:
        row = model_row(client, sweep_dir) if sweep_dir.is_dir() else None
        if row is None:
            missing.append(sweep_dir.name)
        else:
            rows.append(row)
    table = markdown(rows, missing)
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
