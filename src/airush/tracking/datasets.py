"""A run's data as an MLflow dataset input: what fills the runs table's Dataset column and the dataset page.

The dataset is the data as loaded or generated, before the split: its name is the `data` option, its digest
airush's data fingerprint (`airush.data.fingerprint`, the run's `data.fingerprint` tag; MLflow keeps the
first 36 hex digits), its source the files or the generator it came from, its schema the columns of every
table hashed into the fingerprint, and its profile the row counts and the task's data stats.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

DIGEST_CHARS = 36  # MLflow's datasets.digest column is a VARCHAR(36)
CONTEXT = "train/valid/test"  # the dataset input's `mlflow.data.context`: every split comes from it
SEARCH_DEPTH = 3  # attribute levels searched for the frames a fingerprint hashed (prepared.log.events)
# numpy/pandas dtype kinds as MLflow's column types (mlflow.types.DataType names)
MLFLOW_TYPES = {"b": "boolean", "i": "long", "u": "long", "f": "double", "M": "datetime", "m": "long"}
# data settings that name where the data was read from, in the order they are reported
SOURCE_KEYS = ("root", "path", "events", "sessions", "interactions", "items", "playlists")


@dataclasses.dataclass(frozen=True)
class RunDataset:
    """What `TrackedRun.log_dataset` logs; `name` and `digest` also label the metrics computed on it."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str
    profile: str


def run_dataset(name: str, prepared: Any, data_cfg: Any, seed: int) -> RunDataset:
    """The dataset input of a run on `prepared` (a task's prepared data), read with `data_cfg` (the `data` node
    of its config)."""
    fingerprint = str(prepared.fingerprint)
    tables = table_names(prepared, getattr(prepared.fingerprint, "tables", ()))
    columns = [
        {"name": f"{table}.{column}", "type": mlflow_type(dtype), "required": True}
        for table, shape in tables
        for column, dtype in shape.columns
    ]
    profile: dict[str, Any] = {f"{table}_rows": shape.rows for table, shape in tables}
    if tables:
        profile["num_rows"] = tables[0][1].rows  # the first table's: what MLflow's own pandas datasets report
    profile.update({key: value for key, value in (getattr(prepared, "stats", None) or {}).items()})
    profile["fingerprint"] = fingerprint
    source_type, source = data_source(data_cfg, seed)
    return RunDataset(
        name=name,
        digest=fingerprint[:DIGEST_CHARS],
        source_type=source_type,
        source=json.dumps(source),
        schema=json.dumps({"mlflow_colspec": columns}),
        profile=json.dumps(profile, default=str),
    )


def dataset_input(dataset: RunDataset):
    """`dataset` as the `DatasetInput` MLflow's `log_inputs` takes."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    entity = Dataset(**dataclasses.asdict(dataset))  # the same fields, named as MLflow names them
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", CONTEXT)])


def table_names(prepared: Any, tables) -> list[tuple[str, Any]]:
    """(name, shape) of every hashed table, named by the attribute of `prepared` holding that frame
    (`events`, `interactions`; the dotted path when two share a name), else `table<N>`."""
    found = frame_paths(prepared, SEARCH_DEPTH)
    leaves = [path.rsplit(".", 1)[-1] for path in found.values()]
    named = []
    for number, shape in enumerate(tables, 1):
        path = found.get(shape.frame_id)
        if path is None:
            named.append((f"table{number}", shape))
        else:
            leaf = path.rsplit(".", 1)[-1]
            named.append((leaf if leaves.count(leaf) == 1 else path, shape))
    return named


def frame_paths(value: Any, depth: int, prefix: str = "") -> dict[int, str]:
    """id() -> attribute path of every pandas DataFrame reachable through dataclass fields or plain
    attributes, `depth` levels down; the shallowest path wins."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return {id(value): prefix.rstrip(".")}
    if depth == 0 or isinstance(value, (str, bytes, int, float, dict, list, tuple)) or value is None:
        return {}
    try:
        attributes = vars(value)
    except TypeError:
        return {}
    found: dict[int, str] = {}
    for key, attribute in attributes.items():
        if key.startswith("_"):
            continue
        for frame_id, path in frame_paths(attribute, depth - 1, f"{prefix}{key}.").items():
            found.setdefault(frame_id, path)
    return found


def mlflow_type(dtype: str) -> str:
    import numpy as np

    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # pandas extension dtypes (category, string, nullable ints)
        kind = "i" if dtype.startswith(("Int", "UInt")) else "f" if dtype.startswith("Float") else "O"
    return MLFLOW_TYPES.get(kind, "string")


def data_source(data_cfg: Any, seed: int) -> tuple[str, dict[str, Any]]:
    """("local", {"uri": ...}) for data read from files, ("code", {"tags": ...}) for generated data."""
    settings = dict(data_cfg or {})
    paths = [str(settings[key]) for key in SOURCE_KEYS if settings.get(key) not in (None, "", [])]
    if paths:
        return "local", {"uri": paths[0] if len(paths) == 1 else ", ".join(paths)}
    return "code", {
        "tags": {
            "mlflow.source.name": str(settings.get("_target_", "airush")),
            "mlflow.source.type": "LOCAL",
            "airush.seed": str(seed),
        }
    }
