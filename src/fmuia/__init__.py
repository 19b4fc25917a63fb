"""fmuia: multi-task ultrasound image analysis, one shared network with many task heads."""
from __future__ import annotations

from typing import Any

from fmuia._version import __version__

__all__ = ["__version__", "load"]


def load(path: str, **kwargs: Any):
    """Load a checkpoint and return a ready-to-use predictor (see ``fmuia.predict``)."""
    # Imported on call: ``import fmuia`` (the CLI, the version) stays free of torch.
    from fmuia.predict.api import load as _load

    return _load(path, **kwargs)
