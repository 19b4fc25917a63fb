"""What a task is: a small typed value, and an ordered, serialisable registry of them.

The FM_UIA 2026 tasks ship as data (``fmuia2026.yaml``); a dataset whose CSVs name
an unknown task id defines a new task from its rows, so adding a task needs no code.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, ClassVar, Iterable, Iterator, Mapping

import yaml

from fmuia.errors import ConfigError


class _KindType(type):
    """Iteration over ``Kind`` yields every registered kind, in registration order."""

    def __iter__(cls) -> Iterator["Kind"]:
        return iter(list(cls._registered.values()))

    def __len__(cls) -> int:
        return len(cls._registered)


class Kind(str, metaclass=_KindType):
    """A task kind: an interned name, extensible at run time.

    Why not an ``enum.Enum``: an enum is closed, so a new kind would mean editing this
    file. ``Kind`` is a ``str`` whose instances are interned by name: ``Kind("detection")
    is Kind.DETECTION``, identity comparisons work, it pickles by name and serialises as
    its name. ``Kind.register`` adds a kind (``fmuia.kinds.register_kind`` calls it), and
    every ``Kind(...)``/``Task`` then accepts it. What a kind *does* lives in its module
    under ``fmuia.kinds``; here is only what a task needs to exist: the name, the CSV
    spelling of ``task_name`` and the allowed range of ``n``.

    ``value`` is the name used in configs and code; ``csv_name`` is how the challenge CSVs
    spell it in the ``task_name`` column.
    """

    _registered: dict[str, "Kind"] = {}
    _csv_names: dict[str, str] = {}
    _n_range: dict[str, tuple[int, int | None]] = {}

    SEGMENTATION: ClassVar["Kind"]
    CLASSIFICATION: ClassVar["Kind"]
    DETECTION: ClassVar["Kind"]
    KEYPOINTS: ClassVar["Kind"]

    def __new__(cls, name: "str | Kind") -> "Kind":
        try:
            return cls._registered[str(name)]
        except KeyError:
            raise ValueError(f"{name!r} is not a task kind (known: {', '.join(cls._registered)})") from None

    @classmethod
    def register(cls, name: str, csv_name: str | None = None, min_n: int = 1, max_n: int | None = None) -> "Kind":
        """Add a kind (idempotent for the same definition). ``min_n``/``max_n`` bound a task's ``n``."""
        if not name or not isinstance(name, str) or name != name.strip().lower():
            raise ValueError(f"a kind name must be a non-empty lower-case string, got {name!r}")
        csv_name = csv_name or name
        if name in cls._registered:
            if cls._csv_names[name] != csv_name or cls._n_range[name] != (min_n, max_n):
                raise ValueError(f"kind {name!r} is already registered with another definition")
            return cls._registered[name]
        for other, spelling in cls._csv_names.items():
            if csv_name.lower() in (spelling.lower(), other):
                raise ValueError(f"CSV spelling {csv_name!r} of kind {name!r} is already used by kind {other!r}")
        kind = str.__new__(cls, name)
        cls._registered[name] = kind
        cls._csv_names[name] = csv_name
        cls._n_range[name] = (min_n, max_n)
        return kind

    @classmethod
    def unregister(cls, name: str) -> None:
        """Remove a kind added at run time (tests); the built-in kinds stay."""
        if name in _BUILT_IN:
            raise ValueError(f"kind {name!r} is built in")
        for table in (cls._registered, cls._csv_names, cls._n_range):
            table.pop(name, None)

    def __reduce__(self):
        return (Kind, (str(self),))

    def __repr__(self) -> str:
        return f"Kind({str(self)!r})"

    def __str__(self) -> str:
        return str.__str__(self)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def csv_name(self) -> str:
        return Kind._csv_names[self.value]

    def check_n(self, task_id: str, n: int) -> None:
        """Raise ``ValueError`` when ``n`` is outside this kind's range."""
        low, high = Kind._n_range[self.value]
        if high is not None and low == high and n != low:
            raise ValueError(f"task {task_id}: {self.value} tasks have n == {low}, got {n}")
        if n < low or (high is not None and n > high):
            bound = f">= {low}" if high is None else f"in {low}..{high}"
            raise ValueError(f"task {task_id}: {self.value} needs n {bound}, got {n}")

    @classmethod
    def from_csv(cls, text: str) -> "Kind":
        """Parse the CSV ``task_name`` spelling (``Regression`` means keypoints).

        Matching ignores case and surrounding blanks; the canonical names are
        accepted too. Raises ``ValueError`` naming the accepted spellings."""
        key = str(text).strip().lower()
        for name, csv_name in cls._csv_names.items():
            if key in (csv_name.lower(), name):
                return cls._registered[name]
        accepted = ", ".join(repr(n) for n in cls._csv_names.values())
        raise ValueError(f"unknown task kind {text!r} (expected one of {accepted})")

    @classmethod
    def parse(cls, text: "str | Kind") -> "Kind":
        if isinstance(text, Kind):
            return text
        return cls.from_csv(text)


Kind.SEGMENTATION = Kind.register("segmentation", "segmentation", min_n=2)
Kind.CLASSIFICATION = Kind.register("classification", "classification", min_n=2)
Kind.DETECTION = Kind.register("detection", "detection", min_n=1, max_n=1)
Kind.KEYPOINTS = Kind.register("keypoints", "Regression", min_n=1)
_BUILT_IN = frozenset(Kind._registered)


@dataclass(frozen=True)
class Task:
    """One task of the benchmark.

    ``n`` is the CSV's ``num_classes`` column, stored under that one name in the task
    registry file and in checkpoints, whatever it counts for the task's kind:

    * segmentation: mask classes including background (class ids 0..n-1);
    * classification: classes (labels 0..n-1);
    * keypoints: points per image (the CSV's point_1..point_n columns);
    * detection: always 1 (one box per image).

    Code that means one of these counts reads ``num_classes`` or ``num_points``, which
    say so and refuse a task of another kind; ``n`` itself is for the kind-neutral
    places (the CSV, the saved registry, a task's identity in a checkpoint).
    """

    task_id: str
    kind: Kind
    n: int
    class_names: tuple[str, ...] = ()
    description: str = ""
    orientation_sensitive: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind.parse(self.kind))
        if not self.task_id or not isinstance(self.task_id, str):
            raise ValueError(f"task_id must be a non-empty string, got {self.task_id!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"task {self.task_id}: n must be a positive integer, got {self.n!r}")
        self.kind.check_n(self.task_id, self.n)
        names = tuple(str(c) for c in self.class_names)
        if names and len(names) != self.n:
            raise ValueError(f"task {self.task_id}: {len(names)} class names given for n = {self.n}")
        object.__setattr__(self, "class_names", names)

    @property
    def num_classes(self) -> int:
        """Classes (segmentation: including background). Raises for keypoints/detection."""
        if self.kind not in (Kind.SEGMENTATION, Kind.CLASSIFICATION):
            raise AttributeError(f"task {self.task_id} ({self.kind.value}) has no classes")
        return self.n

    @property
    def num_points(self) -> int:
        """Points per image. Raises for every kind but keypoints."""
        if self.kind is not Kind.KEYPOINTS:
            raise AttributeError(f"task {self.task_id} ({self.kind.value}) has no points")
        return self.n

    def class_name(self, index: int) -> str:
        if self.class_names:
            return self.class_names[index]
        return str(index)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task_id": self.task_id, "kind": self.kind.value, "n": self.n}
        if self.class_names:
            out["class_names"] = list(self.class_names)
        if self.description:
            out["description"] = self.description
        if self.orientation_sensitive:
            out["orientation_sensitive"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        known = {"task_id", "kind", "n", "class_names", "description", "orientation_sensitive"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"task entry {dict(data)!r}: unknown field(s) {sorted(unknown)}")
        return cls(
            task_id=str(data["task_id"]),
            kind=Kind.parse(data["kind"]),
            n=int(data["n"]),
            class_names=tuple(data.get("class_names") or ()),
            description=str(data.get("description") or ""),
            orientation_sensitive=bool(data.get("orientation_sensitive", False)),
        )


@dataclass
class TaskRegistry:
    """An ordered collection of tasks, keyed by ``task_id``.

    The order is stable and meaningful: it is the order of the model's heads and of
    every per-task table.
    """

    _tasks: dict[str, Task] = field(default_factory=dict)

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._tasks = {}
        for task in tasks:
            self.add(task)

    # -- collection protocol -------------------------------------------------
    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __getitem__(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise KeyError(f"unknown task {task_id!r}; known tasks: {', '.join(self._tasks)}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskRegistry) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"TaskRegistry({len(self)} tasks: {', '.join(self._tasks)})"

    @property
    def task_ids(self) -> list[str]:
        return list(self._tasks)

    def index(self, task_id: str) -> int:
        """Position of a task in the registry (stable integer id for tensors)."""
        try:
            return self.task_ids.index(task_id)
        except ValueError:
            raise KeyError(f"unknown task {task_id!r}") from None

    def of_kind(self, kind: "Kind | str") -> list[Task]:
        kind = Kind.parse(kind)
        return [t for t in self if t.kind is kind]

    def get(self, task_id: str, default: Task | None = None) -> Task | None:
        return self._tasks.get(task_id, default)

    # -- building ------------------------------------------------------------
    def add(self, task: Task) -> None:
        if task.task_id in self._tasks:
            raise ValueError(f"task {task.task_id!r} is already registered")
        self._tasks[task.task_id] = task

    def subset(self, task_ids: Iterable[str]) -> "TaskRegistry":
        """A registry of the given tasks, in this registry's order."""
        wanted = set(task_ids)
        missing = wanted - set(self._tasks)
        if missing:
            raise KeyError(f"unknown task(s): {', '.join(sorted(missing))}")
        return TaskRegistry(t for t in self if t.task_id in wanted)

    def with_task(self, task: Task) -> "TaskRegistry":
        reg = TaskRegistry(self)
        reg.add(task)
        return reg

    def replace(self, task_id: str, **changes: Any) -> "TaskRegistry":
        return TaskRegistry(replace(t, **changes) if t.task_id == task_id else t for t in self)

    # -- serialisation -------------------------------------------------------
    def to_list(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> "TaskRegistry":
        return cls(Task.from_dict(item) for item in items)

    def to_yaml(self) -> str:
        return yaml.safe_dump({"tasks": self.to_list()}, sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "TaskRegistry":
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            raise ValueError("a task registry file must be a mapping with a 'tasks' list")
        return cls.from_list(data["tasks"])

    @classmethod
    def from_file(cls, path: str) -> "TaskRegistry":
        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_yaml(fh.read())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read task registry ({exc.strerror})") from None
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: invalid task registry: {exc}") from None


def fmuia2026() -> TaskRegistry:
    """The 27 tasks of the FM_UIA 2026 benchmark."""
    text = resources.files("fmuia.tasks").joinpath("fmuia2026.yaml").read_text(encoding="utf-8")
    return TaskRegistry.from_yaml(text)
