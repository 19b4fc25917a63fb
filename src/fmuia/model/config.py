"""The model configuration (the training config's ``model:`` section).

Defined in ``fmuia.config.model`` with the other sections of the training config, so
that the section is parsed once, by the config loader; the precision helpers are in
``fmuia.runtime``."""
from fmuia.config.model import ModelConfig

__all__ = ["ModelConfig"]
