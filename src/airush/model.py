"""What every model shares, whatever its task: settings in `__init__`, learned state in `fit`, plain files.

Each task has its own small interface on top (`airush.abuse.models.Detector`,
`airush.music.models.Recommender`); a class implementing one declares its task through it, so a user's class
that subclasses the interface fits the task the same way airush's own do.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

PARAMS_FILE = "params.json"  # the constructor's settings, beside the model's own files


class Model:
    """Settings are checked before a run starts (`airush.config.schema`), the same way for airush's classes
    and a user's: their types come from `__init__`'s annotations (int, float, bool, str, `X | None`,
    `list[X]`, `tuple[X, ...]`, `dict[str, X]`, a TypedDict for a nested block), their ranges from the class
    attribute `ranges`, declared beside the settings; a key the class does not take is refused. Data sets,
    feature sets and tasks declare theirs the same way. `ranges` maps a setting (or `block.key` inside a
    TypedDict-typed block) to a rule:

        ">= 1"  "> 0"  "<= 1"  "< 1"       a bound
        "[0, 1)"  "(0, 1]"  "[0, 1]"       an interval; a square bracket includes its end
        "in {cosine, bm25}"                one of these values; `one_of(NAMES)` writes it from a tuple
        "odd >= 1"                         `odd` first: an odd whole number (here also >= 1)
        "non-empty >= 1"                   `non-empty` first: a list, mapping or string with at least one
                                           element (so not null either)
        ">= 0 (0 = no MLP)"                a note in brackets at the end is shown with the rule

    A rule on a list or mapping applies to each of its elements; null passes when the annotation allows None.
    Example: `ranges: ClassVar[dict[str, str]] = {"factors": ">= 1", "similarity": one_of(SIMILARITIES)}`
    (ClassVar keeps it out of a dataclass's fields).
    """

    task: str | None = None  # the task this model fits; set by each task's interface
    # setting -> rule (grammar above; types come from __init__'s annotations)
    ranges: ClassVar[dict[str, str]] = {}
    supports_gpu = False  # True: fit also takes `devices` (an `airush.compute.devices.DevicePlan`)
    supports_distributed = False  # True: it can train as N DDP ranks (devices.world_size > 1)

    def get_params(self) -> dict[str, Any]:
        """The constructor's settings (scikit-learn's convention: each is stored as an attribute of its name)."""
        return init_settings(self)

    def check_params(self) -> None:
        """These settings against their types and `ranges`, as the config check does before a run: for a
        model built by hand. One ConfigError naming the first bad setting."""
        check_settings("model", self)

    def training_steps(self) -> int:
        """How many steps `fit` reports to its progress bar at most (boosting rounds, epochs, iterations)."""
        return 1

    def save_params(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if _is_json(v)}
        (directory / PARAMS_FILE).write_text(json.dumps(params, indent=1, sort_keys=True))

    @classmethod
    def from_params(cls, directory: Path):
        """A new, unfitted instance with the settings `save_params` wrote (defaults for a folder without
        them, as written by older airush versions)."""
        path = directory / PARAMS_FILE
        params = json.loads(path.read_text()) if path.is_file() else {}
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in params.items() if k in accepted})


def one_of(values) -> str:
    """The `ranges` rule allowing exactly `values` (e.g. a module's tuple of names): "in {a, b}"."""
    return "in {" + ", ".join(str(v) for v in values) + "}"


def init_settings(obj: Any) -> dict[str, Any]:
    """`obj`'s constructor settings, read back from the attributes of the same names (dataclasses too)."""
    names = [
        name
        for name, p in inspect.signature(type(obj).__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return {name: getattr(obj, name) for name in names if hasattr(obj, name)}


def check_settings(group: str, obj: Any) -> None:
    """`obj`'s settings (a model, data set, feature set or task built by hand) against its class's
    annotations and `ranges`; messages name them `<group>.<setting>` as in the config."""
    from airush.config.schema import check_settings as check

    check(group, type(obj), init_settings(obj))


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
