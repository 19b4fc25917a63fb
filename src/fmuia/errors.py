"""User-facing errors. The CLI prints their message (no traceback) and exits non-zero."""
from __future__ import annotations



class FmuiaError(Exception):
    """Base class of errors caused by the user's input (files, config, arguments)."""


class DataError(FmuiaError):
    """A dataset file, row or label is missing or malformed."""


class ConfigError(FmuiaError):
    """A config file or override is invalid."""


class CheckpointError(FmuiaError):
    """A checkpoint is missing, corrupt, or does not match what is asked of it."""


class OutputError(FmuiaError):
    """An output file or folder cannot be written (permission, read-only file system,
    name too long, disk full, a parent that is a file). ``errno`` is the OS's code."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class FolderInUseError(FmuiaError):
    """Another fmuia process is writing the same output folder (it holds its lock)."""
