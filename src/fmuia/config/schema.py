"""The rule book of every config section: plain dataclasses and one validator.

A section is a dataclass deriving from ``Section``; each of its fields is declared with
``key(default, help, **rules)``. The validator reads the field's type hint (``bool``,
``int``, ``float``, ``str``, ``list[T]``, ``dict[str, T]`` open mappings, ``X | None``,
nested sections) and the rules of its ``Spec`` (choices, ranges, a multiple, the names an
open mapping accepts at each level, one extra check), and every failure is a
``ConfigError`` naming the dotted key. The same rules run when a section is built
directly (``OptimConfig(lr=...)``) and when a config file is loaded, open mappings
included; the help texts are what ``fmuia config show`` and ``docs/config.md`` print.

``merge`` lays a plain mapping (a YAML file, overrides) over a section's ``to_dict()``
key by key, refusing unknown keys; ``build`` turns the result back into dataclasses.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

from fmuia.errors import ConfigError

__all__ = ["FLOAT_TEXT", "PRECISIONS", "Names", "Section", "Spec", "build", "check_choice", "key", "merge", "spec_of"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}

# A YAML 1.1 reader returns 3e-4 (exponent, no dot) as a string; it is meant as a number.
FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class Names:
    """The keys an open mapping accepts at one level: ``names()`` lists them (read when a
    config is checked, so kinds registered at run time count); None accepts any string
    (task ids, which only the data knows). ``noun`` names one of them in messages."""

    noun: str
    names: Callable[[], Sequence[str]] | None = None


@dataclass(frozen=True)
class Spec:
    """A key's help line and the rules its value follows besides its type.

    ``choices``: the allowed strings (or a function giving them); ``ge``/``gt``/``le``/
    ``lt``: bounds of a number (of every number inside an open mapping); ``what`` names
    such a number in messages; ``why`` explains a bound; ``multiple_of``/``multiple_why``:
    an integer's step; ``keys``: the ``Names`` of an open mapping, one per nesting level;
    ``check(path, value)``: one further check of the whole value, returning it (normalised)."""

    help: str
    choices: "Sequence[str] | Callable[[], Sequence[str]] | None" = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    what: str = "a number"
    why: str = ""
    multiple_of: int | None = None
    multiple_why: str = ""
    keys: tuple[Names, ...] = ()
    check: Callable[[str, Any], Any] | None = None


def key(default: Any = dataclasses.MISSING, help: str = "", **rules: Any) -> Any:
    """A config field: its default (lists and mappings are copied for each instance), its
    help line and its rules (see ``Spec``)."""
    if not help:
        raise ValueError("every config key needs a help line")
    metadata = {"spec": Spec(help=help, **rules)}
    if isinstance(default, (list, dict)):
        return field(default_factory=functools.partial(copy.deepcopy, default), metadata=metadata)
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata["spec"]


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@functools.lru_cache(maxsize=None)
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def section_type(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and issubclass(hint, Section) else None


def _nullable(hint: Any) -> tuple[Any, bool]:
    """(the hint without ``| None``, whether it allowed None)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
    return hint, False


# -- the validator ------------------------------------------------------------------------

def check(path: str, hint: Any, spec: Spec | None, value: Any, level: int = 0) -> Any:
    """``value`` checked against the type ``hint`` and the rules of ``spec``; returns it
    normalised (ints given for floats become floats, mappings become dicts)."""
    hint, nullable = _nullable(hint)
    if value is None and nullable:
        return None
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return value
    if section_type(hint) is not None:
        if not isinstance(value, hint):
            raise ConfigError(f"{path}: expected a {hint.__name__}, got {value!r}")
        return value
    if origin is dict:
        value = _check_mapping(path, typing.get_args(hint)[1], spec, value, level, nullable)
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list{' or null' if nullable else ''}, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        value = [check(f"{path}[{i}]", item, None, v) for i, v in enumerate(value)]
    else:
        value = _check_scalar(path, origin, value, nullable)
        if spec is not None:
            _check_rules(path, spec, value, nullable)
    if level == 0 and spec is not None and spec.check is not None:
        value = spec.check(path, value)
    return value


def _check_scalar(path: str, kind: type, value: Any, nullable: bool) -> Any:
    if kind is float and isinstance(value, str) and FLOAT_TEXT.fullmatch(value.strip()):
        value = float(value)
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{path}: expected {TYPE_NAMES.get(kind, kind.__name__)}{' or null' if nullable else ''}, got {value!r}")
    return value


def _check_mapping(path: str, value_hint: Any, spec: Spec | None, value: Any, level: int, nullable: bool) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping{' or null' if nullable else ''}, got {value!r}")
    names = spec.keys[level] if spec is not None and level < len(spec.keys) else None
    out = {}
    for name, item in value.items():
        where = f"{path}.{name}"
        if not isinstance(name, str):
            raise ConfigError(f"{where}: keys must be strings")
        if names is not None and names.names is not None:
            known = list(names.names())
            if name not in known:
                raise ConfigError(f"{where}: not {names.noun} (expected one of {', '.join(known)})")
        out[name] = check(where, value_hint, spec, item, level + 1)
    return out


def _fmt(x: float) -> str:
    return f"{x:g}"


def _check_rules(path: str, spec: Spec, value: Any, nullable: bool) -> None:
    if spec.choices is not None:
        check_choice(path, value, spec.choices() if callable(spec.choices) else spec.choices)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(path, spec, value, nullable)
        if spec.multiple_of and value % spec.multiple_of:
            why = f" ({spec.multiple_why})" if spec.multiple_why else ""
            raise ConfigError(f"{path}: must be a multiple of {spec.multiple_of}{why}, got {value}")


def _check_range(path: str, spec: Spec, value: float, nullable: bool) -> None:
    low, high = (spec.ge if spec.ge is not None else spec.gt), (spec.le if spec.le is not None else spec.lt)
    if (spec.ge is None or value >= spec.ge) and (spec.gt is None or value > spec.gt) and \
            (spec.le is None or value <= spec.le) and (spec.lt is None or value < spec.lt):
        return
    null = " or null" if nullable else ""
    why = f" ({spec.why})" if spec.why else ""
    if low is not None and high is not None:
        interval = f"{'[' if spec.ge is not None else '('}{_fmt(low)}, {_fmt(high)}{']' if spec.le is not None else ')'}"
        raise ConfigError(f"{path}: expected {spec.what} in {interval}{null}, got {value!r}")
    if isinstance(value, int) and spec.ge is not None and spec.ge >= 1:
        if nullable:
            wanted = "a positive integer" if spec.ge == 1 else f"an integer >= {_fmt(spec.ge)}"
            raise ConfigError(f"{path}: expected {wanted}{null}{why}, got {value!r}")
        raise ConfigError(f"{path}: must be at least {_fmt(spec.ge)}{why}, got {value!r}")
    bound = (f">= {_fmt(spec.ge)}" if spec.ge is not None and value < spec.ge else
             f"> {_fmt(spec.gt)}" if spec.gt is not None and value <= spec.gt else
             f"<= {_fmt(spec.le)}" if spec.le is not None and value > spec.le else f"< {_fmt(spec.lt)}")  # type: ignore[arg-type]
    raise ConfigError(f"{path}: must be {bound}{why}, got {value!r}")


def check_choice(path: str, value: Any, choices: Sequence[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{path}: expected one of {', '.join(map(str, choices))}, got {value!r}")


# -- sections ------------------------------------------------------------------------------

class Section:
    """A config section: each field checked by the validator when the section is made,
    then the section's own ``validate`` (checks that involve several keys)."""

    path: ClassVar[str]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            where = join(self.path, f.name)
            setattr(self, f.name, check(where, hints(type(self))[f.name], spec_of(f), getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Checks that involve more than one key's own rules."""

    @staticmethod
    def migrate(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """A whole-config mapping written for an older schema, in today's names (a root
        section overrides this; ``where`` names the file for its log note)."""
        return data

    def to_dict(self) -> dict[str, Any]:
        """The section as plain nested mappings, keys in schema order (what the YAML shows)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None):
        """The section from a mapping of some of its keys over the defaults."""
        return build(cls, merge(cls().to_dict(), data or {}, join(cls.path, ""), schema=cls))

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]):
        """The section from a mapping it wrote itself (a checkpoint's, an exported graph's):
        keys it lacks take the defaults, but each open mapping it holds replaces the
        default's instead of merging over it, so that it means what it meant when written
        (``model.heads: {}`` of a checkpoint saved before the defaults named a keypoint
        head is each kind's default head, not today's default entry)."""
        return build(cls, merge(_saved_base(cls, data), data, join(cls.path, ""), schema=cls))

    @classmethod
    def choices(cls, name: str) -> tuple:
        """The values key ``name`` of this section may take (its ``Spec.choices``)."""
        (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
        choices = spec_of(f).choices
        return tuple(choices() if callable(choices) else choices or ())

    @classmethod
    def summary(cls) -> str:
        """The section's help line: the first sentence of its docstring."""
        text = " ".join((cls.__doc__ or "").replace("``", "").split())
        return text.split(". ")[0].rstrip(".") + "." if text else ""


def build(cls: type, tree: Mapping[str, Any]) -> Any:
    """The section dataclass ``cls`` from a complete, merged mapping of its keys."""
    values = {}
    for f in dataclasses.fields(cls):
        sub = section_type(hints(cls)[f.name])
        values[f.name] = build(sub, tree[f.name]) if sub is not None else tree[f.name]
    return cls(**values)


def _saved_base(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of ``cls`` with each open mapping that ``data`` holds emptied."""
    base = cls().to_dict()
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        sub = section_type(hints(cls)[f.name])
        if sub is not None and isinstance(data[f.name], Mapping):
            base[f.name] = _saved_base(sub, data[f.name])
        elif sub is None and isinstance(base[f.name], dict):
            base[f.name] = {}
    return base


def merge(base: "Mapping[str, Any] | Section", update: Mapping[str, Any], prefix: str = "",
          schema: type | None = None) -> dict[str, Any]:
    """``update`` merged into a copy of ``base`` (a mapping, or a section taken as its
    ``to_dict()``) key by key: unknown keys are ``ConfigError``s naming the dotted key,
    open mappings merge key by key at every depth. ``schema``: the section class ``base``
    follows (default: the class of ``base``; a plain mapping needs it); the values' own
    checks run when the result is built."""
    if isinstance(base, Section):
        schema = schema or type(base)
        base = base.to_dict()
    if schema is None:
        raise TypeError("merge: a plain mapping as base needs its schema (the section class it follows)")
    if not isinstance(update, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {update!r}")
    out = copy.deepcopy(dict(base))
    for name, value in update.items():
        path = f"{prefix}{name}"
        if not isinstance(name, str):
            raise ConfigError(f"{path}: keys must be strings")
        if name not in out:
            known = ", ".join(sorted(out))
            raise ConfigError(f"unknown config key {path!r} (known at this level: {known})")
        sub = section_type(hints(schema)[name])
        if sub is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a mapping, got {value!r}")
            out[name] = merge(out[name], value, path + ".", schema=sub)
        elif isinstance(value, Mapping) and isinstance(out[name], dict):
            out[name] = _merge_open(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def _merge_open(base: dict, update: Mapping) -> dict:
    out = copy.deepcopy(base)
    for name, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(name), dict):
            out[name] = _merge_open(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


def walk(cls: type, prefix: str = ""):
    """Every key of a section class and those inside it, as (dotted path, field, hint, spec),
    sections before their keys; a section's own row has ``field`` None."""
    for f in dataclasses.fields(cls):
        path = join(prefix, f.name)
        hint = hints(cls)[f.name]
        sub = section_type(hint)
        if sub is not None:
            yield path, None, sub, Spec(help=sub.summary())
            yield from walk(sub, path)
        else:
            yield path, f, hint, spec_of(f)
