import os

import numpy as np
import pytest

from fmuia.errors import OutputError
from fmuia.io.atomic import find_folder, publish_folder, recover_folder, write_bytes, write_file, write_json, write_with


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_writers_replace_whole_files_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    write_bytes(target, b"one")
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    write_json(tmp_path / "v.json", {"x": [1, 2]})
    assert (tmp_path / "v.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    write_file(tmp_path / "arrays.npz", lambda fh: np.savez(fh, a=np.arange(3)))
    with np.load(tmp_path / "arrays.npz") as z:
        assert z["a"].tolist() == [0, 1, 2]

    def half_then_fail(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_with(target, half_then_fail)
    assert target.read_bytes() == b"two"
    assert _entries(target.parent) == ["a.bin"]


def test_publish_folder_creates_and_replaces_as_one_unit(tmp_path):
    target = tmp_path / "ckpt"
    with publish_folder(target) as staging:
        (staging / "a").write_text("old")
        assert not target.exists()
    assert _entries(target) == ["a"]
    with publish_folder(target) as staging:
        (staging / "b").write_text("new")
        assert _entries(target) == ["a"]  # the old folder stays in place while the new one is built
    assert _entries(target) == ["b"] and _entries(tmp_path) == ["ckpt"]


def test_publish_folder_failure_keeps_the_old_folder(tmp_path):
    target = tmp_path / "ckpt"
    with publish_folder(target) as staging:
        (staging / "a").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with publish_folder(target) as staging:
            (staging / "b").write_text("half")
            raise RuntimeError("boom")
    assert _entries(target) == ["a"] and _entries(tmp_path) == ["ckpt"]


def test_publish_folder_refuses_to_replace_a_file_or_symlink(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        with publish_folder(tmp_path / "file"):
            pass
    os.symlink(tmp_path, tmp_path / "link")
    with pytest.raises(OutputError, match="not a folder"):
        with publish_folder(tmp_path / "link"):
            pass


def test_interrupted_publish_is_found_and_recovered(tmp_path):
    """The state a crash between the two renames leaves: the target gone, the old folder
    aside, the new one still staged."""
    target = tmp_path / "last"
    token = "0" * 32
    aside, staged = tmp_path / f".last.{token}.old", tmp_path / f".last.{'1' * 32}.new"
    aside.mkdir()
    (aside / "a").write_text("old")
    staged.mkdir()
    (staged / "a").write_text("new")
    assert find_folder(target) == aside  # readers find the old folder without changing anything
    assert aside.is_dir() and not target.exists()
    recover_folder(target)
    assert (target / "a").read_text() == "old" and _entries(tmp_path) == ["last"]
    # a crash after the second rename: the new folder in place, the old one aside
    aside.mkdir()
    (aside / "a").write_text("older")
    assert find_folder(target) == target
    with publish_folder(target) as staging:  # every publish recovers first
        (staging / "a").write_text("newest")
    assert (target / "a").read_text() == "newest" and _entries(tmp_path) == ["last"]


def test_unrelated_hidden_folders_are_left_alone(tmp_path):
    (tmp_path / ".last.keep.old").mkdir()
    (tmp_path / ".lastx.00000000000000000000000000000000.old").mkdir()
    recover_folder(tmp_path / "last")
    assert not (tmp_path / "last").exists()
    assert _entries(tmp_path) == [".last.keep.old", ".lastx.00000000000000000000000000000000.old"]
