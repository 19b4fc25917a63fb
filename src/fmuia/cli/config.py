"""``fmuia config show|docs``: the resolved config with each key's help; the reference page."""
from __future__ import annotations

import argparse

COMMAND = "config"
HELP = "show a resolved config with each key's help (show), or write docs/config.md (docs)"
ORDER = 25
DESCRIPTION = (
    "show: the config that --config FILE(s) and --set KEY=VALUE overrides resolve to (over the "
    "defaults), as YAML with each key's help as a comment; the output "
    "loads back to the same config. docs: write the configuration reference generated from "
    "the same help."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    show = verbs.add_parser("show", help="the resolved config as YAML, each key's help as a comment")
    show.add_argument("--config", action="append", default=[], metavar="FILE",
                      help="YAML config; repeatable, later files override earlier ones key by key")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key, value parsed as YAML (repeatable): --set train.epochs=2")
    show.add_argument("--pretrain", action="store_true", help="a pretraining config (fmuia pretrain's) instead of training's")
    docs = verbs.add_parser("docs", help="write the configuration reference (Markdown) generated from the keys' help")
    docs.add_argument("--out", default="docs/config.md", metavar="FILE", help="where to write it (default docs/config.md)")


def run(args: argparse.Namespace) -> int:
    from fmuia.config.describe import annotated_yaml, reference_markdown

    if args.config_verb == "docs":
        from fmuia.io.atomic import write_text

        write_text(args.out, reference_markdown())
        print(f"wrote {args.out}")
        return 0
    if args.pretrain:
        from fmuia.config.pretrain import load_pretrain_config as load
    else:
        from fmuia.config import load_config as load
    print(annotated_yaml(load(args.config or None, args.overrides)), end="")
    return 0
