"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero."""


class FmuiaError(Exception):
    """Base class of errors caused by the user's input (files, config, arguments)."""


class DataError(FmuiaError):
    """A dataset file, row or label is missing or malformed."""


class ConfigError(FmuiaError):
    """A config file or override is invalid."""


class CheckpointError(FmuiaError):
    """A checkpoint is missing, corrupt, or does not match what is asked of it."""
