"""The schema's help, written out: a resolved config as YAML with each key's help as a
comment (``fmuia config show``), and the reference page ``docs/config.md``
(``fmuia config docs``), both generated from the help lines of ``fmuia.config.schema``
and ``fmuia.config.catalogue``."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import yaml

from fmuia.config.catalogue import AUGMENTATIONS, HEAD_TYPES, LOSS_PARAMS
from fmuia.config.schema import Section, Spec, hints, join, section_type, spec_of, walk

__all__ = ["annotated_yaml", "entry_help", "leaf_keys", "reference_markdown"]

DOCS_PATH = "docs/config.md"


def entry_help(field_path: str, inner: tuple[str, ...], value: Any = None) -> str:
    """The help of an entry inside the open mapping ``field_path`` (``inner``: its keys,
    one per level; ``value``: the entry's value, for a head type)."""
    last = inner[-1]
    if field_path.startswith("augment.") and last in AUGMENTATIONS:
        return AUGMENTATIONS[last].help
    if field_path == "loss.params":
        if len(inner) == 2 and last in LOSS_PARAMS.get(inner[0], {}):
            return LOSS_PARAMS[inner[0]][last].help
        kind, _, head = inner[0].partition(".")
        return f"parameters of the {kind} {head} loss"
    if field_path == "model.heads" and isinstance(value, str) and value in HEAD_TYPES.get(last, {}):
        return HEAD_TYPES[last][value]
    if field_path.startswith("augment."):
        return f"the policy of {last}, entries over the one before"
    return ""


def _flow(value: Any) -> str:
    """``value`` as one line of YAML."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**9, sort_keys=False).strip()[1:-1]


def annotated_yaml(config: Section) -> str:
    """``config`` as YAML in schema order, each key preceded by its help as a comment; it
    loads back to the same config."""
    lines: list[str] = []
    _section_lines(config, "", 0, lines)
    return "\n".join(lines) + "\n"


def _section_lines(section: Section, prefix: str, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        path, value = join(prefix, f.name), getattr(section, f.name)
        sub = section_type(hints(type(section))[f.name])
        lines.append(f"{pad}# {sub.summary() if sub is not None else spec_of(f).help}")
        if sub is not None:
            lines.append(f"{pad}{f.name}:")
            _section_lines(value, path, depth + 1, lines)
        elif isinstance(value, dict) and value:
            lines.append(f"{pad}{f.name}:")
            _mapping_lines(value, path, (), depth + 1, lines)
        else:
            lines.append(f"{pad}{f.name}: {_flow(value)}")


def _mapping_lines(mapping: dict, field_path: str, inner: tuple[str, ...], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for name, value in mapping.items():
        keys = (*inner, name)
        text = entry_help(field_path, keys, value)
        if text:
            lines.append(f"{pad}# {text}")
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{_flow(name)}:")
            _mapping_lines(value, field_path, keys, depth + 1, lines)
        else:
            lines.append(f"{pad}{_flow(name)}: {_flow(value)}")


def leaf_keys(config: Section) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """Every leaf of ``config``: (the field's dotted path, the keys inside its open mapping
    (empty for a plain key), the value)."""
    for path, f, _hint, _spec in walk(type(config)):
        if f is None:
            continue
        value = config
        for part in path.split("."):
            value = getattr(value, part)
        yield from _leaves(path, (), value)


def _leaves(path: str, inner: tuple[str, ...], value: Any) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for name, item in value.items():
            yield from _leaves(path, (*inner, name), item)
    else:
        yield path, inner, value


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _allowed(spec: Spec) -> str:
    """The rules of a key in words: its choices, its bounds, its step."""
    parts = []
    if spec.choices is not None:
        parts.append(" \\| ".join(map(str, spec.choices() if callable(spec.choices) else spec.choices)))
    low = f">= {spec.ge:g}" if spec.ge is not None else f"> {spec.gt:g}" if spec.gt is not None else ""
    high = f"<= {spec.le:g}" if spec.le is not None else f"< {spec.lt:g}" if spec.lt is not None else ""
    parts += [b for b in (low, high) if b]
    if spec.multiple_of:
        parts.append(f"multiple of {spec.multiple_of}")
    if spec.keys:
        parts.append("keys: " + " / ".join(n.noun for n in spec.keys))
    return ", ".join(parts)


def _schema_table(schema: type) -> list[str]:
    rows = ["| key | default | allowed | help |", "| --- | --- | --- | --- |"]
    defaults = schema()
    for path, f, _hint, spec in walk(schema):
        if f is None:
            rows.append(f"| **`{path}`** | | | {_cell(spec.help)} |")
            continue
        value = defaults
        for part in path.split("."):
            value = getattr(value, part)
        rows.append(f"| `{path}` | `{_cell(_flow(value))}` | {_allowed(spec)} | {_cell(spec.help)} |")
    return rows


def reference_markdown() -> str:
    """The text of ``docs/config.md``."""
    from fmuia.config.pretrain import PretrainConfig
    from fmuia.config.sections import Config

    out = [
        "# Configuration reference",
        "",
        "Generated from the help of the schema (`src/fmuia/config/`) by `fmuia config docs`; "
        "do not edit by hand (a test fails when this page is stale).",
        "",
        "A config is YAML: any subset of the keys below, laid over the defaults. `fmuia config show --config FILE --set KEY=VALUE` prints "
        "the resolved config with each key's help. Every key is checked when the config is loaded "
        "(types, choices, ranges, and the names open mappings accept); an error names the file or "
        "override and the dotted key. Keys of older versions (`model.tta`, `model.box_voting`, the "
        "pretraining `encoder:` section) still load, with a note saying where they moved.",
        "",
        "The training defaults are the baseline recipe, `configs/fmuia2026_baseline.yaml` (the official code "
        "with its defects fixed): a config that names no recipe trains it.",
        "",
        "## Training (`fmuia train`, `fmuia finetune`)",
        "",
        *_schema_table(Config),
        "",
        "## Augmentations",
        "",
        "The names an augmentation policy (`augment.default`, `augment.kinds.KIND`, "
        "`augment.tasks.TASK_ID`) accepts; each value is a probability in [0, 1]. The default column: the "
        "probability of an augmentation that no policy names (`augment.default` names some).",
        "",
        "| augmentation | default | help |",
        "| --- | --- | --- |",
        *[f"| `{name}` | `{p.default}` | {_cell(p.help)} |" for name, p in AUGMENTATIONS.items()],
        "",
        "## Head types",
        "",
        "`model.heads` maps a kind to one of its head types; the first is the kind's default.",
        "",
        "| kind | head type | help |",
        "| --- | --- | --- |",
        *[f"| `{kind}` | `{name}` | {_cell(text)} |" for kind, heads in HEAD_TYPES.items() for name, text in heads.items()],
        "",
        "## Loss parameters",
        "",
        "`loss.params` maps `KIND.HEAD_TYPE` to some of that loss's parameters.",
        "",
        "| loss | parameter | default | help |",
        "| --- | --- | --- | --- |",
        *[f"| `{name}` | `{p}` | `{_flow(param.default)}` | {_cell(param.help)} |"
          for name, params in LOSS_PARAMS.items() for p, param in params.items()],
        "",
        "## Pretraining (`fmuia pretrain`)",
        "",
        "The same names as training for the same things (`model.encoder`, `model.pretrained`, "
        "`model.image_size`, `model.channels_last`, `schedule.*`).",
        "",
        *_schema_table(PretrainConfig),
        "",
    ]
    return "\n".join(out)
