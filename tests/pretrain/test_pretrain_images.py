"""The images a pretraining run reads: folders (recursively), data roots, files, DICOM."""
import os
import shutil

import pytest

from fmuia.errors import DataError
from fmuia.pretrain.images import collect_images, read_pixels
from pretrain_helpers import write_grey_images


def test_folders_are_searched_recursively_and_files_listed_once(tmp_path):
    folder = write_grey_images(str(tmp_path / "images"), count=4)
    (tmp_path / "images" / ".hidden.png").write_bytes(b"")
    (tmp_path / "images" / "notes.txt").write_text("x")
    found = collect_images([folder, os.path.join(folder, "frame0.png")])
    assert [os.path.relpath(p, folder) for p in found] == ["frame0.png", "frame2.png", "sub/frame1.png", "sub/frame3.png"]
    assert read_pixels(found[0]).shape == (40, 48, 3)


def test_a_data_root_gives_the_images_of_its_rows(train_root):
    found = collect_images([train_root])
    assert found and all(p.startswith(os.path.join(train_root, "")) for p in found)
    assert len(found) == len(set(found))


def test_dicom_files_are_read(tmp_path):
    data = pytest.importorskip("pydicom.data")
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(data.get_testdata_file("US1_UNCR.dcm"), folder / "us.dcm")
    write_grey_images(str(folder), count=1)
    found = collect_images([str(folder)])
    assert [os.path.basename(p) for p in found] == ["frame0.png", "us.dcm"]
    image = read_pixels(found[1])
    assert image.ndim == 3 and image.shape[2] == 3


def test_too_few_images_is_an_error_naming_the_sources(tmp_path):
    folder = write_grey_images(str(tmp_path / "images"), count=1)
    with pytest.raises(DataError, match=r"1 image\(s\) found in .*images; pretraining needs at least 2"):
        collect_images([folder])
