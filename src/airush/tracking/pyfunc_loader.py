"""The load side of airush's MLflow pyfunc models: `mlflow.pyfunc.load_model` imports this module and calls
`_load_pyfunc(data_path)` on the model's `data/` folder.

Everything read here is plain files (npz, json, LightGBM text, torch weights): `airush_model.json` names the
model class, which loads its own folder with its `load(directory)`, and the task's serving wrapper
(`airush.<task>.serving`), which turns requests into the model's inputs. Both are imported only from the
trusted packages (`airush.trust`): the folder may come from a shared store anyone could write to.
"""

from __future__ import annotations

import json
from pathlib import Path

from airush.tracking.mlflow_model import MODEL_INFO
from airush.trust import check_trusted

# Models written before `airush_model.json` named its serving wrapper: by task (and raw-event input).
LEGACY_SERVING = {
    "music": "airush.music.serving.MusicRecommendations",
    "abuse": "airush.abuse.serving.AbuseScores",
    "abuse-events": "airush.abuse.serving.SessionEventScores",
}


def _load_pyfunc(data_path: str):
    from hydra.utils import get_class

    directory = Path(data_path)
    info = json.loads((directory / MODEL_INFO).read_text())
    legacy = f"{info.get('task')}-events" if "events" in info else str(info.get("task"))
    serving = str(info.get("serving") or LEGACY_SERVING.get(legacy, ""))
    check_trusted(str(info["class"]), f"model {directory}")
    check_trusted(serving, f"model {directory}")
    model = get_class(str(info["class"])).load(directory)
    return get_class(serving).from_info(model, directory, info)
