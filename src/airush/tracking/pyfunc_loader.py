"""The load side of airush's MLflow pyfunc models: `mlflow.pyfunc.load_model` imports this module and calls
`_load_pyfunc(data_path)` on the model's `data/` folder.

Everything read here is plain files (npz, json, LightGBM text, torch weights): `airush_model.json` names the
model class, which loads its own folder with its `load(directory)`, and the task's serving wrapper
(`airush.<task>.serving`), which turns requests into the model's inputs. Both are imported only from the
trusted packages (`airush.trust`): the folder may come from a shared store anyone could write to. Before
either is imported or any file read, the folder's files are checked against the sha256 each had when airush
saved the model (`files` in `airush_model.json`): a model edited since is refused in one line. That catches
files swapped or edited in the store, not a writer who also rewrites `airush_model.json`; airush's own loading
path (`model_integrity.load_run_model`) checks the whole model against the hash its run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from airush.errors import UserError
from airush.tracking.mlflow_model import MODEL_INFO
from airush.tracking.model_integrity import changed_files
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
    check_files(directory, info)
    legacy = f"{info.get('task')}-events" if "events" in info else str(info.get("task"))
    serving = str(info.get("serving") or LEGACY_SERVING.get(legacy, ""))
    check_trusted(str(info["class"]), f"model {directory}")
    check_trusted(serving, f"model {directory}")
    model = get_class(str(info["class"])).load(directory)
    return get_class(serving).from_info(model, directory, info)


def check_files(directory: Path, info: dict) -> None:
    """One line unless every file of the folder (but `airush_model.json`) is the one airush saved. Models
    saved before airush recorded `files` have nothing to check against."""
    if "files" not in info:
        return
    expected = info["files"]
    if not isinstance(expected, dict):
        raise UserError(f"model {directory}: {MODEL_INFO} has no readable 'files'; not loading it")
    changed = changed_files(directory, expected, exclude=(MODEL_INFO,))
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise UserError(
            f"model {directory}: {changed[0]}{more} changed since airush saved the model; not loading it"
        )
