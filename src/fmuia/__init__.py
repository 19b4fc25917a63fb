"""fmuia: multi-task ultrasound image analysis, one shared network with many task heads."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path: str, **kwargs: Any):
    """Load a checkpoint and return a ready-to-use predictor (see ``fmuia.predict``)."""
    from fmuia.predict.api import load as _load

    return _load(path, **kwargs)
