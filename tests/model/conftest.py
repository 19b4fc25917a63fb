import pytest
import torch
from model_helpers import tiny_config

from fmuia.model import build_model
from fmuia.tasks import Kind, Task, TaskRegistry


@pytest.fixture(scope="session")
def small_registry() -> TaskRegistry:
    """One or two tasks of each kind (a second classification task to test mixing)."""
    return TaskRegistry([
        Task("seg", Kind.SEGMENTATION, 3),
        Task("cls", Kind.CLASSIFICATION, 4),
        Task("cls2", Kind.CLASSIFICATION, 2),
        Task("det", Kind.DETECTION, 1),
        Task("kp", Kind.KEYPOINTS, 3),
    ])


@pytest.fixture(scope="session")
def tiny_model(small_registry):
    torch.manual_seed(0)
    return build_model(tiny_config(), small_registry).eval()

