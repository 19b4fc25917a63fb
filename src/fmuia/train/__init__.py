"""Training: losses, task samplers, learning-rate groups and schedule, the engine,
validation with the challenge's metrics, checkpoints and resume, several processes."""
from fmuia.train import heatmap_losses  # noqa: F401 - registers the losses of the heatmap/centre heads
from fmuia.train.engine import NonFiniteLossError, RunResult, Trainer, train

__all__ = ["NonFiniteLossError", "RunResult", "Trainer", "train"]
