"""Prediction: the challenge submission writer, the Python API (``fmuia.load``), ONNX
export and the onnxruntime backend, test-time augmentation."""
from fmuia.predict.api import load
from fmuia.predict.pipeline import PredictionSummary, predict_dataset
from fmuia.predict.predictor import Predictor
from fmuia.predict.results import (
    ClassificationResult,
    DetectionResult,
    KeypointsResult,
    Result,
    SegmentationResult,
)

__all__ = [
    "ClassificationResult", "DetectionResult", "KeypointsResult", "PredictionSummary", "Predictor",
    "Result", "SegmentationResult", "load", "predict_dataset",
]
