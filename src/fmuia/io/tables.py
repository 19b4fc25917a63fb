"""Opening the dataset's CSV files with one explicit encoding policy.

A CSV must be UTF-8, with or without a byte-order mark. Spreadsheet programs offer
other encodings under names like "CSV" too (Windows-1252, UTF-16 "Unicode text"),
and reading those as UTF-8 either fails with a bare ``UnicodeDecodeError`` or, worse,
changes an image path. So anything that is not valid UTF-8 is a ``DataError`` naming
the file, where the first bad byte is, and the fix.
"""
from __future__ import annotations

import codecs
import io
import os

from fmuia.errors import DataError

__all__ = ["FIX", "open_csv", "read_csv_text"]

FIX = "save it as 'CSV UTF-8' (comma-separated, UTF-8 encoded)"

# Byte-order marks of encodings that are not UTF-8, longest first (UTF-32 LE starts
# with the UTF-16 LE mark).
_FOREIGN_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def read_csv_text(path: str) -> str:
    """The text of a UTF-8 CSV file (a leading byte-order mark removed)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the CSV file ({exc.strerror or exc})") from None
    for bom, name in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise DataError(f"{path}: CSV file is encoded as {name}, not UTF-8; {FIX}")
    if b"\x00" in data:
        raise DataError(f"{path}: not a text CSV file (it contains NUL bytes: binary, or UTF-16 without a byte-order mark); {FIX}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_and_column(data, exc.start)
        bad = data[exc.start : exc.start + 4].hex(" ")
        raise DataError(
            f"{path}: CSV file is not valid UTF-8 (byte(s) {bad} at line {line}, column {column}; "
            f"Windows-1252/Latin-1 text, as some spreadsheet programs write it?); {FIX}"
        ) from None


def open_csv(path: str | os.PathLike) -> io.StringIO:
    """A text stream over a UTF-8 CSV file for ``csv.reader`` / ``csv.DictReader``
    (line endings left as they are, as ``open(..., newline="")`` would)."""
    return io.StringIO(read_csv_text(os.fspath(path)), newline="")
