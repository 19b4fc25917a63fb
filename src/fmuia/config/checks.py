"""Value checks shared by the config sections and the loader. Every failure is a
``ConfigError`` naming the dotted key and what is wrong with its value."""
from __future__ import annotations

import re
from typing import Any, Iterable

from fmuia.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}

# A YAML 1.1 reader returns 3e-4 (exponent, no dot) as a string; it is meant as a number.
FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def check_value(path: str, default: Any, value: Any, nullable: tuple[type, ...] | None = None) -> Any:
    """``value`` checked against the type of the key's ``default``; ints are accepted for
    floats (and become floats). ``nullable``: the types a key that may be null takes."""
    if value is None and (default is None or nullable is not None):
        return None
    if default is None:
        if nullable is None:
            return value
        ok = isinstance(value, nullable) and not (isinstance(value, bool) and bool not in nullable)
        if not ok:
            names = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in nullable)
            raise ConfigError(f"{path}: expected {names} or null, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if isinstance(default, (str, list)) and not isinstance(value, type(default)):
        raise ConfigError(f"{path}: expected {TYPE_NAMES[type(default)]}, got {value!r}")
    return value


def check_choice(path: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{path}: expected one of {', '.join(choices)}, got {value!r}")


def check_positive_or_null(path: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{path}: expected a positive integer or null, got {value!r}")


def check_weights(path: str, weights: Any) -> None:
    """An open mapping of names to non-negative numbers (loss weights, rate multipliers)."""
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{path}.{name}: expected a number >= 0, got {value!r}")
