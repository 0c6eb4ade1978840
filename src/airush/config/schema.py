"""The typed check of a composed config: every bad value is one line naming the key, the value and what is
allowed (a ConfigError), raised before any run directory or MLflow run exists.

Where each rule is declared, so it lives in one place:
- `seed`, `lr`, `resume`: `TOP_LEVEL` below; `gpus` and `trainer.*`: `airush.compute.devices.check_requests`,
  beside the device planning that reads them;
- `task`, `model`, `data`, `features`: the class each `_target_` names, airush's or a user's alike: types
  from its `__init__` annotations, ranges from its `ranges` (the grammar is in `airush.model.Model`'s
  docstring); a key the class does not take is refused with the ones it does;
- `task.primary_metric`: the task's `reported_metrics()`.
An object built by hand runs the same check (`airush.model.check_settings`).
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from airush.errors import ConfigError

# The shorthands of conf/config.yaml: (type, rule), as a class declares its settings.
TOP_LEVEL: dict[str, tuple[Any, str]] = {
    "seed": (int, ">= 0"),
    "lr": (float | None, "> 0 (null = the model's own learning rate)"),
    "resume": (bool, ""),
}


def check_config(cfg: DictConfig, classes: dict[str, type]) -> None:
    """The shorthands and `trainer`, then each group's settings against its class (`classes`: group -> the
    class its `_target_` names)."""
    from airush.compute.devices import check_requests

    for key, (kind, rule) in TOP_LEVEL.items():
        if key in cfg:
            check_value(key, cfg.get(key), kind, rule)
    check_requests(cfg.get("gpus", 0), cfg.get("trainer") or {})
    for group, cls in classes.items():
        try:
            values = OmegaConf.to_container(cfg[group], resolve=True)
        except Exception as err:  # an interpolation that does not resolve
            raise ConfigError(f"{group}: {str(err).splitlines()[0]}") from None
        check_settings(group, cls, values)


def check_primary_metric(task) -> None:
    """`task.primary_metric` is one of the metrics the task reports (`reported_metrics()`; `<name>` in one
    stands for any word, e.g. `recall_<kind>`); a task that declares none is not checked."""
    reported = list(task.reported_metrics())
    metric = str(task.primary_metric)
    if not reported or any(re.fullmatch(_metric_pattern(name), metric) for name in reported):
        return
    raise ConfigError(
        f"task.primary_metric '{metric}' is not a metric the {task.name} task reports; "
        f"choose from: {', '.join(reported)}"
    )


def check_settings(group: str, cls: type, values: dict[str, Any]) -> None:
    """`values` (a group's config, or the settings of an object built by hand) against `cls`: every key one
    its `__init__` takes (keys starting with `_`, such as `_target_`, are Hydra's), every value of its
    annotated type and within its declared range."""
    params, takes_any = _parameters(cls)
    rules = _rules(cls)
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if OmegaConf.is_config(value):  # an object built by `instantiate` without _convert_ holds these
            value = OmegaConf.to_container(value, resolve=True)
        if key not in params:
            if takes_any:  # **kwargs: the class takes any key
                continue
            raise ConfigError(f"{group}.{key} unknown; choose from: {', '.join(params)}")
        _check(f"{group}.{key}", key, value, params[key], rules)


def check_value(name: str, value: Any, kind: Any, rule: Rule | str | None) -> None:
    """One value: of type `kind` (an annotation), within `rule` (element by element for a list or mapping;
    a mapping's elements are named by their keys, `task.split.ratios.train`)."""
    if isinstance(rule, str):
        rule = parse_rule(rule)
    non_empty = rule is not None and rule.non_empty
    if (value is None and non_empty) or not _conforms(value, kind):
        raise ConfigError(f"{name} must be {_allowed(kind, rule)}, got {value!r}")
    if non_empty and hasattr(value, "__len__") and len(value) == 0:
        raise ConfigError(f"{name} is empty; it must be {_allowed(kind, rule)}, got {value!r}")
    if value is None or rule is None:
        return
    values_kind = _mapping_values(kind)
    if isinstance(value, dict) and values_kind is not None:
        for key, element in value.items():
            check_value(f"{name}.{key}", element, values_kind, replace(rule, non_empty=False))
        return
    if isinstance(value, list | tuple):
        for element in value:
            if rule.choices is not None and element not in rule.choices:
                raise ConfigError(f"{name} {element!r} unknown; choose from: {rule.choice_list()}")
            if not rule.holds(element):
                raise ConfigError(f"{name} must be {_allowed(kind, rule)}, got {value!r}")
        return
    if rule.choices is not None and value not in rule.choices:
        raise ConfigError(f"{name} {value!r} unknown; choose from: {rule.choice_list()}")
    if not rule.holds(value):
        raise ConfigError(f"{name} must be {rule.describe()}, got {value!r}")


@dataclass(frozen=True)
class Rule:
    """A parsed `ranges` rule (grammar: `airush.model.Model`)."""

    odd: bool = False
    non_empty: bool = False
    op: str | None = None  # a bound: ">=", ">", "<=", "<" against `bound`
    bound: float = 0.0
    interval: tuple[float, float, bool, bool] | None = None  # (low, high, low included, high included)
    choices: tuple | None = None
    note: str = ""

    def holds(self, value: Any) -> bool:
        """Whether a single value (not a list) satisfies the bound, interval and oddness."""
        if self.odd and not (_is_whole(value) and value % 2 == 1):
            return False
        if self.op is None and self.interval is None:
            return True
        if not _is_number(value) or math.isnan(value):
            return False
        if self.op is not None:
            return _COMPARE[self.op](value, self.bound)
        low, high, low_in, high_in = self.interval
        return (low <= value if low_in else low < value) and (value <= high if high_in else value < high)

    def condition(self) -> str:
        """The bound, interval or choice as the user reads it: ">= 1", "in [0, 1)", "in {a, b}"."""
        if self.op is not None:
            return f"{self.op} {_number_text(self.bound)}"
        if self.interval is not None:
            low, high, low_in, high_in = self.interval
            opening, closing = "[" if low_in else "(", "]" if high_in else ")"
            return f"in {opening}{_number_text(low)}, {_number_text(high)}{closing}"
        if self.choices is not None:
            return "in {" + self.choice_list() + "}"
        return ""

    def describe(self) -> str:
        """What a value of the right type must also be, with the note: "odd and >= 1 (centred windows)"."""
        parts = " and ".join(p for p in ("odd" if self.odd else "", self.condition()) if p)
        return parts + (f" ({self.note})" if self.note else "")

    def choice_list(self) -> str:
        return ", ".join(str(c) for c in self.choices or ())


def parse_rule(text: str) -> Rule:
    """A `ranges` rule; ValueError for text outside the grammar."""
    body, note = text.strip(), ""
    noted = re.fullmatch(r"(.*?)\s+\(([^()]*)\)", body)
    if noted:
        body, note = noted.group(1), noted.group(2)
    fields: dict[str, Any] = {"note": note}
    for modifier, field in (("odd", "odd"), ("non-empty", "non_empty")):
        if body == modifier or body.startswith(modifier + " "):
            fields[field] = True
            body = body[len(modifier) :].strip()
    if (bound := re.fullmatch(r"(>=|<=|>|<)\s*(\S+)", body)) is not None:
        fields |= {"op": bound.group(1), "bound": float(bound.group(2))}
    elif (interval := re.fullmatch(r"([\[(])\s*([^,\s]+)\s*,\s*([^,\s\])]+)\s*([\])])", body)) is not None:
        low, high = float(interval.group(2)), float(interval.group(3))
        fields["interval"] = (low, high, interval.group(1) == "[", interval.group(4) == "]")
    elif (choice := re.fullmatch(r"in\s*\{(.*)\}", body)) is not None:
        fields["choices"] = tuple(
            _literal(item.strip()) for item in choice.group(1).split(",") if item.strip()
        )
    elif body:
        raise ValueError(f"cannot read '{text}'")
    return Rule(**fields)


_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def _check(name: str, path: str, value: Any, kind: Any, rules: dict[str, Rule]) -> None:
    """A setting, or a key of a TypedDict-typed block (`path` = its dotted place in the class's settings)."""
    block = _typed_dict(kind)
    if block is None or not isinstance(value, dict):
        check_value(name, value, kind, rules.get(path))
        for where, config in _target_configs(name, value):
            target = _importable(config["_target_"])
            if target is not None:
                check_settings(where, target, config)
        return
    if path in rules:  # the block's own rule, e.g. "non-empty"
        check_value(name, value, kind, rules[path])
    fields = typing.get_type_hints(block)
    for key, element in value.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key} unknown; choose from: {', '.join(fields)}")
        _check(f"{name}.{key}", f"{path}.{key}", element, fields[key], rules)


def _target_configs(name: str, value: Any) -> list[tuple[str, dict]]:
    """Objects configured inside a setting (`features.parts`: a list of `_target_` blocks), each named as
    the message will name it."""
    if isinstance(value, dict) and "_target_" in value:
        return [(name, value)]
    if isinstance(value, list | tuple):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value) if isinstance(v, dict) and "_target_" in v]
    return []


def _importable(target: Any) -> type | None:
    """The class a nested `_target_` names; None when it names none (instantiate says why)."""
    from hydra.utils import get_class

    try:
        return get_class(str(target))
    except Exception:
        return None


@cache
def _parameters(cls: type) -> tuple[dict[str, Any], bool]:
    """(setting -> annotation, whether `__init__` takes **kwargs); Any where an annotation cannot be read."""
    try:
        signature = inspect.signature(cls.__init__, eval_str=True)
    except Exception:  # an annotation naming what only a type checker imports: read the others one by one
        signature = inspect.signature(cls.__init__)
    namespace = getattr(cls.__init__, "__globals__", {})
    params, takes_any = {}, False
    for name, p in signature.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            takes_any = True
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[name] = _annotation(p.annotation, namespace)
    return params, takes_any


def _annotation(annotation: Any, namespace: dict) -> Any:
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, dict(namespace))
        except Exception:
            return Any
    return annotation


@cache
def _rules(cls: type) -> dict[str, Rule]:
    """The class's `ranges`, parsed; a rule outside the grammar or naming no setting is the class's mistake,
    said in one line."""
    params, _ = _parameters(cls)
    rules = {}
    for key, text in dict(getattr(cls, "ranges", None) or {}).items():
        where = f"{cls.__module__}.{cls.__qualname__}.ranges['{key}']"
        if key.split(".")[0] not in params:
            raise ConfigError(f"{where} names no setting of its __init__ ({', '.join(params)})")
        try:
            rules[key] = parse_rule(str(text))
        except ValueError as err:
            raise ConfigError(f"{where}: {err}; see the grammar in airush.model.Model") from None
    return rules


def _arms(kind: Any) -> tuple[Any, ...]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _mapping_values(kind: Any) -> Any:
    """The value type of a (possibly optional) `dict[str, X]` annotation; None for any other."""
    for arm in _arms(kind):
        if arm is dict or typing.get_origin(arm) is dict:
            args = typing.get_args(arm)
            return args[1] if len(args) == 2 else Any
    return None


def _typed_dict(kind: Any) -> type | None:
    """The TypedDict a (possibly optional) annotation names, if it names one."""
    blocks = [arm for arm in _arms(kind) if typing.is_typeddict(arm)]
    return blocks[0] if len(blocks) == 1 else None


def _conforms(value: Any, kind: Any) -> bool:
    """Whether `value` (plain YAML: None, bool, int, float, str, list, dict) is of the annotated type; a type
    of the class's own (a nested `_target_` config) is left to its constructor."""
    arms = _arms(kind)
    if len(arms) > 1:
        return any(_conforms(value, arm) for arm in arms)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if kind is None or kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return _is_whole(value)
    if kind is float:
        return _is_number(value)
    if kind is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if typing.is_typeddict(kind) or kind is dict or origin is dict:
        if not isinstance(value, dict):
            return False
        values_kind = args[1] if len(args) == 2 else Any
        return typing.is_typeddict(kind) or all(_conforms(v, values_kind) for v in value.values())
    if kind in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))
        return all(_conforms(v, args[0] if args else Any) for v in value)
    return True


_SINGULAR = {int: "a whole number", float: "a finite number", bool: "true or false", str: "a string"}
_PLURAL = {int: "whole numbers", float: "finite numbers", bool: "true/false values", str: "strings"}


def _allowed(kind: Any, rule: Rule | None) -> str:
    """What may be given, as one phrase: "null or a whole number >= 1", "a non-empty list of strings"."""
    arms = _arms(kind)
    optional = (type(None) in arms or None in arms) and not (rule is not None and rule.non_empty)
    phrases = list(
        dict.fromkeys(_type_phrase(a, rule) for a in arms if a is not None and a is not type(None))
    )
    text = " or ".join(phrases) if phrases else "null"
    if optional and phrases:
        text = f"null or {text}"
    return text + (f" ({rule.note})" if rule is not None and rule.note else "")


def _type_phrase(kind: Any, rule: Rule | None) -> str:
    condition = rule.condition() if rule is not None else ""
    odd = rule is not None and rule.odd
    non_empty = "non-empty " if rule is not None and rule.non_empty else ""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind in (list, tuple) or origin in (list, tuple):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        element = args[0] if args else Any
        count = f"{len(args)} " if fixed else ""
        of = _PLURAL.get(element, "values")
        return _join(f"a {non_empty}list of {count}{'odd ' if odd else ''}{of}", condition)
    if typing.is_typeddict(kind):
        return f"a {non_empty}mapping with keys {', '.join(typing.get_type_hints(kind))}"
    if kind is dict or origin is dict:
        values = _PLURAL.get(args[1], "values") if len(args) == 2 else "values"
        return _join(f"a {non_empty}mapping of names to {values}", condition)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if kind in _SINGULAR:
        singular = "an odd whole number" if odd else _SINGULAR[kind]
        return _join(f"{'a non-empty string' if non_empty and kind is str else singular}", condition)
    if kind is Any:
        return _join("a value", condition)
    return f"a {getattr(kind, '__name__', str(kind))}"


def _join(phrase: str, condition: str) -> str:
    return f"{phrase} {condition}" if condition else phrase


def _literal(text: str) -> Any:
    """A choice as written in a rule: a number when it reads as one, else the text."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _metric_pattern(name: str) -> str:
    return re.sub(r"<[^<>]+>", r"\\w+", re.escape(name))


def _is_whole(value: Any) -> bool:
    """A whole number that fits in 64 bits (numpy and the libraries beneath take no more)."""
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _is_number(value: Any) -> bool:
    """A finite number: inf or NaN would pass a bound or a setting without one, then break what reads it."""
    return math.isfinite(value) if isinstance(value, float) else _is_whole(value)
