import os

import pytest

import fmuia.evaluate.predictions as evaluate_predictions
import fmuia.predict.paths as predict_paths
from fmuia.io.paths import relative_output_path, submission_mask_path


@pytest.mark.parametrize("mask_path, rel", [
    ("../a", "a"),
    ("../../a", "a"),
    ("./a", "a"),
    (".././a", "a"),
    ("..\\a\\b", "a/b"),
    ("../Segmentation/Two/x/MASKS/1.png", "Segmentation/Two/x/MASKS/1.png"),
    ("a/b.png", "a/b.png"),
    (" ../a.png ", "a.png"),
    ("a/../../b", "a/../../b"),  # only leading parents are removed; the safety check refuses the rest
    ("/a", "/a"),
])
def test_submission_mask_path_rule(mask_path, rel):
    assert submission_mask_path(mask_path) == rel


@pytest.mark.parametrize("mask_path, rel", [
    ("../a", "a"),
    ("../../a", "a"),
    ("./a", "a"),
    ("..\\a\\b", os.path.join("a", "b")),
    ("../x//./y.png", os.path.join("x", "y.png")),
])
def test_safe_relative_paths(mask_path, rel):
    assert relative_output_path(mask_path) == rel


@pytest.mark.parametrize("mask_path, reason", [
    ("/a", "absolute"),
    ("../../..//etc/x", "absolute"),
    ("C:\\masks\\x.png", "absolute"),
    ("C:x.png", "absolute"),
    ("\\\\host\\share\\x.png", "absolute"),
    ("a/../../b", "still contains '..'"),
    ("../a/..\\..\\b", "still contains '..'"),
    ("../", "empty"),
    ("./.", "names no file"),
])
def test_unsafe_paths_refused(mask_path, reason):
    with pytest.raises(ValueError, match=reason):
        relative_output_path(mask_path)


def test_writer_and_scorer_share_the_rule():
    assert evaluate_predictions.submission_mask_path is submission_mask_path
    assert predict_paths.relative_output_path is relative_output_path
