"""Whether a recorded MLflow Model is the one airush wrote: its flavor and a content hash of its files.

A run's model lives in a store anyone with write access could edit, and MLflow's own loader executes whatever
flavor a model declares (a cloudpickled pyfunc runs its payload while loading). So airush's own loading paths
download the model, refuse a flavor airush did not write, compare the files with the hash the run recorded
when it logged them (tag `airush.model_sha256`), and only then load. What this does not protect against: a
store user who can rewrite both the files and the run's tag; MLflow's authentication limits who that is.

The hash: sha256 over the manifest `<sha256 of the file>  <relative path>\\n`, one line per file in sorted path
order (what `sha256sum` prints), so one changed, added, removed or renamed file changes it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airush.errors import UserError

MODEL_SHA256_TAG = "airush.model_sha256"  # on the run that logged the model, and on its registry versions
MODEL_ARTIFACT = "model"  # the name of a run's logged model (`runs:/<run id>/model`)
MODEL_ID_TAG = "airush.model_id"  # on the run: the id of its logged model (runs recorded before: none)
OUR_PYFUNC_LOADER = "airush.tracking.pyfunc_loader"
MLMODEL = "MLmodel"
MLMODEL_MAX_BYTES = 1 << 20  # ours are a few kB (most of it the signature)
# What a flavor airush wrote may say. Anything else (`code` paths put on sys.path, `model_code_path`,
# `python_model` cloudpickles, `predict_fn`, `model_config`) changes what MLflow imports or calls.
PYFUNC_KEYS = frozenset({"loader_module", "data", "env", "python_version", "streamable", "code"})
LIGHTGBM_KEYS = frozenset(
    {"code", "data", "lgb_version", "model_class", "serialization_format", "skops_trusted_types"}
)
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"  # booster text; the sklearn classes would be a pickle or skops


def file_digests(directory: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 (hex) of every file under `directory` by its relative path (posix), but the paths in `exclude`."""
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(directory).as_posix()
        if relative in exclude:
            continue
        if path.is_symlink():  # a downloaded model holds none; one here could point anywhere
            raise UserError(f"model {directory}: {relative} is a symbolic link; not loading it")
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digests[relative] = digest.hexdigest()
    return digests


def model_sha256(directory: Path) -> str:
    """The content hash of an MLflow Model directory (see the module's docstring)."""
    manifest = "".join(f"{sha}  {path}\n" for path, sha in file_digests(Path(directory)).items())
    return hashlib.sha256(manifest.encode()).hexdigest()


def changed_files(directory: Path, expected: dict[str, str], exclude: tuple[str, ...] = ()) -> list[str]:
    """The files that differ from `expected` (path -> sha256): changed, added or missing, in path order."""
    actual = file_digests(directory, exclude)
    return sorted(p for p in actual.keys() | expected.keys() if actual.get(p) != expected.get(p))


def verify_model(directory: Path, expected: str, run_id: str) -> None:
    """Refuse the model in `directory` in one line unless its content hash is `expected`."""
    actual = model_sha256(directory)
    if actual != expected:
        raise UserError(
            f"run {run_id}'s model: its files changed since the run recorded them (sha256 {actual[:12]}, "
            f"recorded {expected[:12]}); not loading it"
        )


def check_flavor(directory: Path, run_id: str) -> None:
    """Refuse in one line a model whose MLmodel declares a flavor airush did not write: only our pyfunc loader
    (`airush.tracking.pyfunc_loader`), with or without MLflow's LightGBM flavor on booster text beside it (or,
    recorded by an older airush, that LightGBM flavor alone as the pyfunc). Read as YAML text; nothing in the
    model is imported or unpickled."""
    import yaml

    what = f"run {run_id}'s model"
    path = Path(directory) / MLMODEL
    if not path.is_file():
        raise UserError(f"{what} has no {MLMODEL} file: not an MLflow Model")
    if path.stat().st_size > MLMODEL_MAX_BYTES:
        raise UserError(f"{what}: its {MLMODEL} is {path.stat().st_size} bytes, not one airush wrote")
    try:
        flavors = (yaml.safe_load(path.read_text()) or {}).get("flavors")
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        flavors = None
    problem = flavor_problem(flavors)
    if problem is not None:
        raise UserError(f"{what} {problem}, not a flavor airush wrote: airush will not load it")


def flavor_problem(flavors: Any) -> str | None:
    """What an MLmodel's `flavors` mapping declares that airush did not write, or None for one it did."""
    if not isinstance(flavors, dict) or not all(isinstance(conf, dict) for conf in flavors.values()):
        return "has no readable flavors"
    names = ", ".join(sorted(map(str, flavors)))
    pyfunc = flavors.get("python_function")
    if pyfunc is None or set(flavors) - {"python_function", "lightgbm"}:
        return f"declares the flavors {names}"
    # our pyfunc loader; a LightGBM detector also lists MLflow's lightgbm flavor on its booster text (runs
    # recorded before abuse models took raw events: that flavor's own pyfunc loader, booster over features)
    expected_loaders = {OUR_PYFUNC_LOADER}
    if "lightgbm" in flavors:
        lightgbm = flavors["lightgbm"]
        if lightgbm.get("model_class") != LIGHTGBM_BOOSTER:
            return f"declares a lightgbm flavor of {lightgbm.get('model_class')!r} (not booster text)"
        extra = sorted(map(str, set(lightgbm) - LIGHTGBM_KEYS))
        if extra or lightgbm.get("code") is not None:
            return f"declares a lightgbm flavor with {', '.join(extra) or 'code'}"
        expected_loaders.add("mlflow.lightgbm")
    if pyfunc.get("loader_module") not in expected_loaders:
        return f"declares a python_function flavor loaded by {pyfunc.get('loader_module')}"
    extra = sorted(map(str, set(pyfunc) - PYFUNC_KEYS))
    if extra or pyfunc.get("code") is not None:
        return f"declares a python_function flavor with {', '.join(extra) or 'code'}"
    return None


def fetch_run_model(client, run_id: str, destination: Path) -> tuple[Path, str]:
    """Download run `run_id`'s MLflow Model into `destination`, check its flavor and its files against the hash
    the run recorded; its local folder and that hash. One line (UserError) for anything amiss."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise UserError(f"cannot read run {run_id}: {err.message.splitlines()[0]}") from None
    expected = run.data.tags.get(MODEL_SHA256_TAG)
    if expected is None:
        raise UserError(
            f"run {run_id} recorded its model without a content hash (tag {MODEL_SHA256_TAG}; an older "
            f"airush): record it again with `airush reproduce {run_id}` and use the new run"
        )
    local = download_run_model(client, run, Path(destination))
    check_flavor(local, run_id)
    verify_model(local, expected, run_id)
    return local, expected


def run_logged_model(client, run):
    """The logged model the run tagged as its own (`airush.model_id`), None for a run recorded before airush
    logged models (its `model` artifact holds the MLflow Model). One line when the tag names no model of it."""
    from mlflow.exceptions import MlflowException

    run_id, model_id = run.info.run_id, run.data.tags.get(MODEL_ID_TAG)
    if model_id is None:
        return None
    try:
        logged = client.get_logged_model(model_id)
    except MlflowException as err:
        raise UserError(f"run {run_id}'s logged model {model_id}: {err.message.splitlines()[0]}") from None
    if logged.source_run_id != run_id:
        raise UserError(f"logged model {model_id} was not logged by run {run_id}; not using it")
    return logged


def run_model_source(client, run) -> tuple[str, str | None]:
    """(URI of the run's MLflow Model, its logged model id): `models:/<id>` for its logged model, else its
    `model` artifact and None. One line when the run has neither."""
    logged = run_logged_model(client, run)
    if logged is not None:
        return f"models:/{logged.model_id}", logged.model_id
    run_id = run.info.run_id
    if f"{MODEL_ARTIFACT}/{MLMODEL}" not in {f.path for f in client.list_artifacts(run_id, MODEL_ARTIFACT)}:
        raise UserError(f"run {run_id} has no MLflow Model (no logged model, no model/MLmodel artifact)")
    return f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", None


def download_run_model(client, run, destination: Path) -> Path:
    """The run's MLflow Model downloaded into `destination`; its local folder."""
    from mlflow.artifacts import download_artifacts

    logged = run_logged_model(client, run)
    if logged is None:
        return Path(client.download_artifacts(run.info.run_id, MODEL_ARTIFACT, str(destination)))
    local = destination / MODEL_ARTIFACT
    local.mkdir(parents=True, exist_ok=True)
    uri = logged.artifact_location  # a server's `mlflow-artifacts:` location resolves against its host
    return Path(download_artifacts(artifact_uri=uri, dst_path=str(local), tracking_uri=client.tracking_uri))


def load_run_model(client_or_uri, run_id: str):
    """Run `run_id`'s MLflow Model as a pyfunc, checked first (`fetch_run_model`): how airush itself loads a
    recorded model. The files are read into memory while loading; their download is removed afterwards."""
    import mlflow.pyfunc

    from airush.tracking.store import client_for

    client = client_for(client_or_uri) if isinstance(client_or_uri, str) else client_or_uri
    folder = Path(tempfile.mkdtemp(prefix="airush-model-"))
    try:
        local, _ = fetch_run_model(client, run_id, folder)
        return mlflow.pyfunc.load_model(str(local))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
