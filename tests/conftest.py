"""Shared fixtures and options."""
import pytest
import torch
from dataset_builders import materialise, training_rows, valid_rows


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", default=False,
                     help="rewrite tests/snapshots/numerics.npz from the current code: only for a change that "
                          "is meant to move the numbers (see tests/numerics_snapshot.py)")


@pytest.fixture
def tiny_root(tmp_path):
    """A valid data root with all four kinds (32x32 images)."""
    root = str(tmp_path / "data")
    materialise(root, valid_rows())
    return root


@pytest.fixture(scope="session")
def train_root(tmp_path_factory):
    """A labelled data root for training: six 32x32 samples of each kind."""
    root = str(tmp_path_factory.mktemp("train") / "data")
    materialise(root, training_rows())
    return root


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and do not fight other processes for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def failing_writes(monkeypatch):
    """``failing_writes(errno_code, suffix)``: from then on every file fmuia writes whose
    name ends in ``suffix`` fails as the OS fails it (EROFS, EACCES, ENOSPC...), where
    the atomic writer creates it."""
    import errno as errno_names
    import os

    from fmuia.io import atomic

    create = atomic._temporary_file

    def install(code: int = errno_names.ENOSPC, suffix: str = "") -> None:
        def failing(path: str) -> str:
            if path.endswith(suffix):
                raise OSError(code, os.strerror(code), path)
            return create(path)

        monkeypatch.setattr(atomic, "_temporary_file", failing)

    return install
