"""Data: the challenge layout reader, validation, records, lazy datasets, transforms,
samplers and the resized-sample cache. The synthetic generator is ``fmuia.synthetic``."""
from fmuia.data.dataset import FMUIADataset, load_sample
from fmuia.io.images import read_image, read_mask
from fmuia.data.layout import Layout, Problem, read_layout
from fmuia.data.records import Entry, Sample
from fmuia.data.validate import ValidationReport, validate

__all__ = [
    "Entry",
    "FMUIADataset",
    "Layout",
    "Problem",
    "Sample",
    "ValidationReport",
    "load_sample",
    "read_image",
    "read_layout",
    "read_mask",
    "validate",
]
