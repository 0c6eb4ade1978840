"""Hydra sweep overrides -> an Optuna search space, and a trial's values -> Hydra overrides again.

`choice(...)` and plain `a,b` lists are categorical, `range(...)` is a stepped int/float (Hydra's end is
exclusive, so is ours), `interval(a, b)` is uniform and `tag(log, interval(a, b))` log-uniform. Hydra parses
interval bounds as floats; an interval is searched over ints when both bounds are whole and the config's
current value at that key is an int (`num_leaves: 31`), so yaml spaces need no type annotations.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from airush.errors import ConfigError

PRIMITIVES = (str, int, float, bool, type(None))


@dataclass
class Param:
    """One searched key: its Optuna distribution and, for categoricals, Hydra's own string per choice."""

    key: str
    distribution: Any
    choice_strings: list[str] = field(default_factory=list)

    def override(self, value: Any) -> str:
        return f"{self.key}={self.format(value)}"

    def format(self, value: Any) -> str:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        if isinstance(self.distribution, CategoricalDistribution):
            choices = self.distribution.choices  # by type too: 1 == True, but `x=1` is not `x=true`
            return next(
                self.choice_strings[i] for i, c in enumerate(choices) if type(c) is type(value) and c == value
            )
        if isinstance(self.distribution, IntDistribution):
            return str(int(value))
        return repr(float(value))

    def point(self, value: Any) -> Any:
        """The config's own value as a point of this space (None if outside it), so it can be enqueued."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        dist = self.distribution
        number = _is_number(value)
        if isinstance(dist, CategoricalDistribution):
            same = (
                c
                for c in dist.choices
                if (type(c) is type(value) or (number and _is_number(c))) and c == value
            )
            return next(same, None)
        if not number or not math.isfinite(value) or not dist.low <= value <= dist.high:
            return None
        if isinstance(dist, IntDistribution) and value != int(value):
            return None
        if dist.step is not None:
            steps = (Decimal(str(value)) - Decimal(str(dist.low))) / Decimal(str(dist.step))
            if steps != steps.to_integral_value():
                return None
        return int(value) if isinstance(dist, IntDistribution) else float(value)


@dataclass
class Space:
    params: dict[str, Param]
    fixed: list[str]  # overrides every trial gets as they are

    def overrides(self, values: dict[str, Any]) -> list[str]:
        return [*self.fixed, *(self.params[k].override(v) for k, v in values.items())]

    def probe(self) -> list[str]:
        """One point of the space, to let Hydra compose a trial before any study is touched."""
        from optuna.distributions import CategoricalDistribution

        return self.overrides(
            {
                k: p.distribution.choices[0]
                if isinstance(p.distribution, CategoricalDistribution)
                else p.distribution.low
                for k, p in self.params.items()
            }
        )

    def fingerprint(self, direction: str) -> str:
        """Stable short hash of what a study's values depend on: fixed overrides, the space, direction.

        Where runs are recorded (`mlflow.*`) changes no value, so it is left out."""
        from optuna.distributions import distribution_to_json

        fixed = sorted(f for f in self.fixed if not f.lstrip("+~").startswith(("mlflow.", "hydra.")))
        space = {k: distribution_to_json(p.distribution) for k, p in sorted(self.params.items())}
        blob = json.dumps({"fixed": fixed, "space": space, "direction": direction}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


def parse_space(
    params: dict[str, Any], arguments: list[str], current: dict[str, Any], config_loader: Any = None
) -> Space:
    """`params` (the sweeper's `params:` block) then the command line's overrides, later keys winning.

    `current` maps keys to the composed config's values (for int intervals)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create(config_loader=config_loader)
    lines = [(f"hydra.sweeper.params.{k}", f"{k}={_as_override_value(v)}") for k, v in params.items()]
    lines += [("command line", a) for a in arguments]
    by_key: dict[str, Any] = {}
    for where, line in lines:
        try:
            override = parser.parse_override(line)
        except HydraException as err:
            raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None
        key = override.get_key_element()
        by_key.pop(key, None)  # keep the order of last appearance
        if override.is_sweep_override():
            by_key[key] = _param(key, override, current.get(key.lstrip("+~")), where)
        else:
            by_key[key] = line
    return Space(
        params={k: v for k, v in by_key.items() if isinstance(v, Param)},
        fixed=[v for v in by_key.values() if isinstance(v, str)],
    )


def _param(key: str, override: Any, current: Any, where: str) -> Param:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = override.value()
    tags = set(getattr(value, "tags", set()) or ())
    unknown = tags - {"log"}
    if unknown:
        raise ConfigError(f"{where}: unknown tag {sorted(unknown)[0]!r} on {key}; only 'log' is understood")
    log = "log" in tags
    if log and not override.is_interval_sweep():
        raise ConfigError(f"{where}: tag(log, ...) on {key} needs an interval(low, high)")

    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator())
        strings = list(override.sweep_string_iterator())
        if not all(isinstance(c, PRIMITIVES) for c in choices):
            choices = strings  # lists/dicts: Optuna wants hashable primitives, Hydra's strings are exact
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}: {key} lists a choice twice")
        return Param(key, CategoricalDistribution(choices), strings)

    if override.is_range_sweep():
        points = list(override.sweep_iterator())
        if not points:
            raise ConfigError(f"{where}: {override.input_line} is empty")
        step = value.step
        low, n = min(value.start, points[-1]), len(points) - 1
        if all(isinstance(x, int) for x in (value.start, value.stop, step)):
            return Param(key, IntDistribution(low, low + n * abs(step), step=abs(step)))
        exact = Decimal(str(abs(step)))  # Hydra's float points drift (0.30000000000000004); Optuna checks
        high = float(Decimal(str(low)) + n * exact)
        return Param(key, FloatDistribution(float(low), high, step=float(exact)))

    if override.is_interval_sweep():
        low, high = value.start, value.end
        if not low < high:
            raise ConfigError(f"{where}: {key}: interval needs low < high, got {override.input_line}")
        if log and low <= 0:
            raise ConfigError(f"{where}: {key}: tag(log, ...) needs an interval above 0, got {low}")
        whole = float(low).is_integer() and float(high).is_integer()
        if whole and isinstance(current, int) and not isinstance(current, bool):
            return Param(key, IntDistribution(int(low), int(high), log=log))
        return Param(key, FloatDistribution(float(low), float(high), log=log))

    raise ConfigError(f"{where}: {override.input_line} is not a sweep Optuna can search")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _as_override_value(value: Any) -> str:
    """A `params:` entry as written in yaml: sweep expressions are strings; fixed numbers/bools may not be."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
