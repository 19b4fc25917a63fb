"""The package version, in a module of its own so that any module can read it without
importing the ``fmuia`` package's public API (keep it equal to pyproject.toml's)."""
__version__ = "0.1.0"
