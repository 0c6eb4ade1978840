"""The input paths a data config declares, checked before anything heavy is imported.

A data class names its settings that are paths to the user's input in `inputs`, setting -> "file" or
"folder": `inputs: ClassVar[dict[str, str]] = {"events": "file", "sessions": "file"}`. The CLI reads that
from the class's source, as it reads `task` (`airush.config.declared`), and checks the paths as soon as the
job's config is composed: a missing input is one line within a second, before pandas, the task's code or
MLflow are imported. The loaders check again on their own (the Python API, a source that declares nothing).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airush.errors import DataError

KINDS = ("file", "folder")
ENV_DEFAULT = re.compile(r"oc\.env:\s*([A-Za-z_]\w*)")  # a path that an environment variable can move


def resolve_path(path: str | Path) -> Path:
    """A relative path means relative to where airush was started (Hydra jobs keep that as original cwd)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(str(path)) if HydraConfig.initialized() else Path(path).absolute())


def declared_inputs(target: str) -> dict[str, str]:
    """setting -> "file" / "folder" for the class `target` names; {} when it declares none (or the
    declaration cannot be read without importing the class)."""
    from airush.config.declared import declared_literal

    inputs = declared_literal(target, "inputs")
    if not isinstance(inputs, dict):
        return {}
    return {str(key): kind for key, kind in inputs.items() if kind in KINDS}


def check_inputs(cfg: Any, group: str = "data") -> None:
    """Each input path the group's class declares exists; one DataError naming the first that does not.
    Settings not set yet (`???`), null, not text, or whose interpolation fails are left to the config check."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    node = cfg.get(group) if isinstance(cfg, DictConfig) else None
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(target, str):
        return
    for key, kind in declared_inputs(target).items():
        try:
            if key not in node or OmegaConf.is_missing(node, key):
                continue
            value = node[key]
            written = OmegaConf.to_container(node, resolve=False).get(key)
        except OmegaConfBaseException:
            continue
        if isinstance(value, str) and value.strip():
            _check_exists(resolve_path(value), kind, f"{group}.{key}", str(written))


def _check_exists(path: Path, kind: str, setting: str, written: str) -> None:
    try:
        found = path.is_file() if kind == "file" else path.is_dir()
    except OSError as err:  # e.g. a parent folder the user may not list
        raise DataError(f"cannot be read: {err.strerror or err}", path=path) from None
    if found:
        return
    if kind == "file":
        raise DataError("file not found", path=path)
    variables = " or ".join(sorted(set(ENV_DEFAULT.findall(written))))
    raise DataError(
        f"folder not found (set {setting}=...{' or ' + variables if variables else ''})", path=path
    )
