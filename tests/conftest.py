"""Shared fixtures."""
import pytest
from dataset_builders import materialise, valid_rows


@pytest.fixture
def tiny_root(tmp_path):
    """A valid data root with all four kinds (32x32 images)."""
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    return root
