"""Training: losses, task samplers, learning-rate groups and schedule, the engine,
validation with the challenge's metrics, checkpoints and resume, several processes."""
from fmuia.train.engine import NonFiniteLossError, RunResult, Trainer, train

__all__ = ["NonFiniteLossError", "RunResult", "Trainer", "train"]
