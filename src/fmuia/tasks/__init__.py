"""The task registry: what a task is, and the FM_UIA 2026 tasks as data."""
from fmuia.tasks.registry import Kind, Task, TaskRegistry, fmuia2026

__all__ = ["Kind", "Task", "TaskRegistry", "fmuia2026"]
