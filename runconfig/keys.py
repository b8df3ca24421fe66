"""How a config key is declared: its default and the rule its value must follow.

`key(default, rule)` is a dataclass field whose metadata carries the `Rule`; `runconfig.schema`
declares every key of a run this way, once.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from envs.config import ConfigError

_SCHEDULE = re.compile(r"^\s*linear\(\s*([^,]+),\s*([^,]+),\s*([^,\)]+)\)\s*$")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Rule:
    ok: Callable[[Any], bool]
    allowed: str                 # what the error message offers instead
    native: bool = True          # False: both engines read the key
    when: str | None = None      # an agent name, "pixels" or an env name: read only then


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(low: int, high: int | None = None, **kw: Any) -> Rule:
    text = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return Rule(lambda v: _is_int(v) and v >= low and (high is None or v <= high), text, **kw)


def number(low: float, high: float = float("inf"), low_open: bool = False, **kw: Any) -> Rule:
    above = (lambda v: v > low) if low_open else (lambda v: v >= low)
    text = f"a number in {'(' if low_open else '['}{low}, {high}]"
    return Rule(lambda v: _is_num(v) and above(v) and v <= high, text, **kw)


def boolean(**kw: Any) -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false", **kw)


def one_of(*choices: Any, **kw: Any) -> Rule:
    return Rule(lambda v: not isinstance(v, bool) and v in choices, ", ".join(map(repr, choices)), **kw)


def demo_source(high: int, **kw: Any) -> Rule:
    """`demos`: a number of scripted-expert episodes, or the path of a LeRobotDataset v3.0 directory."""
    return Rule(lambda v: (_is_int(v) and 0 <= v <= high) or (isinstance(v, str) and v.strip() != ""),
                f"an integer from 0 to {high} (scripted-expert episodes) or the path of a LeRobotDataset v3.0 "
                "directory", **kw)


def uses_demos(v: Any) -> bool:
    """Whether a `demos` value asks for demos: episodes > 0, or a dataset path."""
    return isinstance(v, str) or v > 0


def or_null(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"null or {rule.allowed}", rule.native, rule.when)


def _schedule(v: Any) -> bool:
    """A stddev >= 0, or 'linear(init,final,duration)' with init, final >= 0 and duration > 0 frames."""
    if _is_num(v):
        return v >= 0
    m = _SCHEDULE.match(str(v))
    try:
        return m is not None and float(m.group(1)) >= 0 and float(m.group(2)) >= 0 and float(m.group(3)) > 0
    except ValueError:
        return False


def auto_or_bool(**kw: Any) -> Rule:
    return Rule(lambda v: v == "auto" or isinstance(v, bool), "'auto', true or false", **kw)


def device_name(**kw: Any) -> Rule:
    return Rule(lambda v: isinstance(v, str) and bool(_DEVICE.match(v)), "'auto', 'cpu', 'cuda' or 'cuda:<index>'",
                **kw)


def check_flat_keys(values: Mapping[str, Any], rules: Mapping[str, Rule], groups: tuple[str, ...] = ()) -> None:
    """A script's flat config: every key is one of `rules` (or a config group in `groups`, checked
    by its own schema) and every value allowed. ConfigError names the key, the value and what is allowed."""
    for name, value in values.items():
        if name in groups:
            continue
        if name not in rules:
            raise ConfigError(f"{name}={value!r} is invalid: unknown key; allowed {sorted(rules)}, " + ", ".join(groups))
        if not rules[name].ok(value):
            raise ConfigError(f"{name}={value!r} is invalid: allowed {rules[name].allowed}")


def key(default: Any, rule: Rule | None = None, doc: str = "") -> Any:
    """A declared key: its default (lists as tuples), the rule its value follows (None: any value
    the code accepts) and what it means."""
    if isinstance(default, (list, dict)):
        raise TypeError("declare list defaults as tuples and maps as nested dataclasses")
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc})


def stddev_schedule(**kw: Any) -> Rule:
    return Rule(_schedule, "a stddev >= 0 or 'linear(init,final,duration)' with a positive duration in env frames",
                **kw)
