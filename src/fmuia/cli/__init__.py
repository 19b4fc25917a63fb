"""Command-line interface; see ``fmuia.cli.main``."""
