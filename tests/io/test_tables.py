"""CSV encodings: UTF-8 with or without BOM is read; anything else is a DataError that
names the file and says how to fix it."""
from __future__ import annotations

import csv
import re

import pytest

from fmuia.data import read_layout
from fmuia.errors import DataError
from fmuia.io.tables import open_csv, read_csv_text

HEADER = "task_id,task_name,num_classes,image_path,mask\n"
ROW = "breast_2cls,classification,2,../Classification/breast_2cls/\u00e9chographie_001.png,1\n"
TEXT = HEADER + ROW


def _rows(path):
    with open_csv(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_or_without_bom_is_read(tmp_path, encoding):
    path = tmp_path / "a.csv"
    path.write_bytes(TEXT.encode(encoding))
    rows = _rows(path)
    assert list(rows[0]) == ["task_id", "task_name", "num_classes", "image_path", "mask"]  # no BOM in the first name
    assert rows[0]["image_path"].endswith("\u00e9chographie_001.png")


def test_windows_line_endings_and_quoted_newlines_survive(tmp_path):
    path = tmp_path / "crlf.csv"
    path.write_bytes('a,b\r\n"x\r\ny",2\r\n'.encode())
    assert _rows(path) == [{"a": "x\r\ny", "b": "2"}]


def test_cp1252_is_refused_with_the_place_and_the_fix(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(TEXT.encode("cp1252"))
    message = re.escape(str(path)) + r": CSV file is not valid UTF-8 \(byte\(s\) e9 .* at line 2, column \d+.*save it as 'CSV UTF-8'"
    with pytest.raises(DataError, match=message):
        read_csv_text(str(path))


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-16-be", None), ("utf-32", "UTF-32")])
def test_utf16_and_utf32_are_refused(tmp_path, encoding, name):
    path = tmp_path / "unicode.csv"
    data = TEXT.encode(encoding)
    path.write_bytes(data)
    reason = f"encoded as {name}, not UTF-8" if name else "contains NUL bytes"
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + reason + ".*save it as 'CSV UTF-8'"):
        read_csv_text(str(path))


def test_binary_and_missing_files(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match=re.escape(str(path)) + ": not a text CSV file"):
        read_csv_text(str(path))
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_csv_text(str(tmp_path / "nope.csv"))


def test_layout_names_the_badly_encoded_csv(tmp_path):
    csv_dir = tmp_path / "csv_files"
    csv_dir.mkdir()
    (csv_dir / "good.csv").write_text(TEXT, encoding="utf-8")
    (csv_dir / "excel.csv").write_bytes(TEXT.encode("cp1252"))
    with pytest.raises(DataError, match=re.escape(str(csv_dir / "excel.csv")) + ": CSV file is not valid UTF-8"):
        read_layout(str(tmp_path))
