"""Reading the challenge dataset layout: every ``*.csv`` under ``<root>/csv_files/``.

Paths in the CSVs are relative to ``csv_files/``. This module parses rows into
``Entry`` records (the label cells by the task's kind, ``TaskKind.parse_label``) and collects every problem it can see without opening images;
``fmuia.data.validate`` adds the checks that need the pixels.
"""
from __future__ import annotations

import csv
import difflib
import fnmatch
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field

from fmuia import kinds
from fmuia.config.sections import DataConfig
from fmuia.data.records import Entry
from fmuia.errors import DataError
from fmuia.io.tables import open_csv
from fmuia.kinds.base import LabelError
from fmuia.tasks import Kind, Task, TaskRegistry, fmuia2026

log = logging.getLogger(__name__)

CSV_DIR = "csv_files"
# Files that the OS or an editor leaves next to the CSVs, never data: macOS resource
# forks ("._a.csv") and folder settings, the lock files of Office ("~$a.csv") and
# LibreOffice (".~lock.a.csv#"). Skipped with one note; any other unreadable CSV is
# still refused.
DEBRIS_PATTERNS = ("._*", "~$*", ".~lock.*#", ".DS_Store")
REQUIRED_COLUMNS = ("task_id", "task_name", "num_classes", "image_path")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, located as precisely as possible."""

    where: str  # "csv_files/a.csv line 7", or a file path for file-level problems
    reason: str
    task_id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict:
        return {"where": self.where, "task_id": self.task_id, "reason": self.reason}


@dataclass
class Layout:
    """The parsed CSVs of one data root."""

    root: str
    entries: list[Entry]
    registry: TaskRegistry  # the tasks present, in the base registry's order, then new ones
    problems: list[Problem] = field(default_factory=list)
    csv_files: list[str] = field(default_factory=list)
    # One per task id the base registry does not know (at its first row): usually a
    # typo, sometimes a genuinely new task. ``unknown_task_problems`` decides which.
    unknown_tasks: list[Problem] = field(default_factory=list)


UNKNOWN_TASKS = DataConfig.choices("unknown_tasks")


def unknown_task_problems(layout: Layout, policy: str) -> list[Problem]:
    """What the ``policy`` for task ids outside the registry makes of ``layout``'s:
    ``warn`` logs each (once) and returns none, ``error`` returns them as problems."""
    if policy not in UNKNOWN_TASKS:
        raise ValueError(f"policy must be one of {UNKNOWN_TASKS}, got {policy!r}")
    if policy == "error":
        return [Problem(p.where, f"{p.reason}; refused, as unknown task ids are errors in strict mode", p.task_id)
                for p in layout.unknown_tasks]
    for p in layout.unknown_tasks:
        _note_once(f"warning: {p}; kept as a new task", logging.WARNING, layout.root)
    return []


def csv_dir(root: str) -> str:
    return os.path.join(root, CSV_DIR)


def _is_label_column(name: str) -> bool:
    return any(k.is_label_column(name) for k in kinds.all_kinds())


def _known_columns() -> list[str]:
    """Every column a CSV may have (for spelling hints)."""
    return sorted(set(REQUIRED_COLUMNS).union(*(k.label_columns for k in kinds.all_kinds())))


def _parse_int(text: str) -> int:
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


def list_csv_files(root: str) -> list[str]:
    folder = csv_dir(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: data root not found")
    if not os.path.isdir(folder):
        raise DataError(f"{root}: no '{CSV_DIR}/' folder (expected the FM_UIA layout: {CSV_DIR}/*.csv plus image folders)")
    names = sorted(os.listdir(folder))
    debris = [f for f in names if is_debris(f)]
    if debris:
        _note_once(f"note: {folder}: skipped {len(debris)} file(s) left by the OS or an editor, not data: "
                   + ", ".join(debris))
    files = [f for f in names if f.lower().endswith(".csv") and f not in debris]
    if not files:
        raise DataError(f"{folder}: no *.csv files")
    return [os.path.join(folder, f) for f in files]


def is_debris(name: str) -> bool:
    """Whether a file name in ``csv_files/`` is OS or editor debris (``DEBRIS_PATTERNS``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DEBRIS_PATTERNS)


_NOTED: set[str] = set()


def _note_once(text: str, level: int = logging.INFO, root: str = "") -> None:
    """Log a note once per process and data root: a command reads the same CSVs several times."""
    key = f"{root}\0{text}"
    if key not in _NOTED:
        _NOTED.add(key)
        log.log(level, text)


def read_layout(root: str, base: TaskRegistry | None = None) -> Layout:
    """Parse every CSV of ``root`` into entries, collecting all row problems.

    ``base`` is the registry of known tasks (default: FM_UIA 2026). A task id it
    does not know defines a new task from its rows (kind and ``num_classes``).
    """
    base = fmuia2026() if base is None else base
    problems: list[Problem] = []
    entries: list[Entry] = []
    new_tasks: dict[str, Task] = {}
    seen_tasks: set[str] = set()
    first_seen: dict[tuple[str, str], str] = {}
    files = list_csv_files(root)
    folder = csv_dir(root)

    for path in files:
        rel = os.path.relpath(path, root)
        with open_csv(path) as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing and len(header) == 1 and ";" in header[0]:
                problems.append(Problem(f"{rel} line 1", "the columns are separated by ';', not ','; save it as "
                                                         "comma-separated CSV (a spreadsheet's 'CSV UTF-8')"))
                continue
            for col in header:
                if col and col not in REQUIRED_COLUMNS and not _is_label_column(col):
                    hint = difflib.get_close_matches(col, _known_columns(), n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    problems.append(Problem(f"{rel} line 1", f"unknown column {col!r}{extra}"))
            if missing:
                problems.append(Problem(f"{rel} line 1", f"missing required column(s): {', '.join(missing)}"))
                continue
            data_rows = 0
            for row in reader:
                data_rows += 1
                line = reader.line_num
                where = f"{rel} line {line}"
                entry = _parse_row(row, where, rel, line, folder, header, base, new_tasks, problems)
                if entry is None:
                    continue
                seen_tasks.add(entry.task_id)
                key = (entry.task_id, entry.image_path)
                if key in first_seen:
                    problems.append(
                        Problem(where, f"duplicate row: task {entry.task_id} image {entry.image_path!r} already at {first_seen[key]}", entry.task_id)
                    )
                    continue
                first_seen[key] = where
                entries.append(entry)
            if not data_rows:
                problems.append(Problem(rel, "no data rows, only a header (an export of an empty sheet?)"))

    tasks = [t for t in base if t.task_id in seen_tasks] + [t for tid, t in new_tasks.items() if tid in seen_tasks]
    unknown = []
    rows_of_new = Counter(e.task_id for e in entries if e.task_id in new_tasks)
    first_row = {e.task_id: e.where for e in reversed(entries) if e.task_id in new_tasks}
    for task_id, count in rows_of_new.items():
        hint = difflib.get_close_matches(task_id, base.task_ids, n=1)
        extra = f" (did you mean {hint[0]}?)" if hint else ""
        unknown.append(Problem(first_row[task_id], f"task id {task_id!r} is not in the task registry{extra}: its "
                                                   f"{count} row(s) form a new {new_tasks[task_id].kind.value} task", task_id))
    return Layout(root=root, entries=entries, registry=TaskRegistry(tasks), problems=problems, csv_files=files,
                  unknown_tasks=unknown)


def _parse_row(row, where, rel, line, folder, header, base, new_tasks, problems) -> Entry | None:
    def bad(reason: str, task_id: str | None = None) -> None:
        problems.append(Problem(where, reason, task_id))

    task_id = (row.get("task_id") or "").strip()
    if not task_id:
        bad("empty task_id")
        return None
    try:
        kind = Kind.from_csv(row.get("task_name") or "")
    except ValueError as exc:
        bad(f"task_name: {exc}", task_id)
        return None
    try:
        n = _parse_int(row.get("num_classes") or "")
    except ValueError:
        bad(f"num_classes {row.get('num_classes')!r} is not an integer", task_id)
        return None

    task = base.get(task_id) or new_tasks.get(task_id)
    if task is None:
        try:
            task = Task(task_id=task_id, kind=kind, n=n)
        except ValueError as exc:
            bad(str(exc), task_id)
            return None
        new_tasks[task_id] = task
    else:
        source = "the task registry" if task_id in base else "earlier rows of this task"
        if task.kind is not kind:
            bad(f"task_name {row.get('task_name')!r} disagrees with {source} ({task.kind.csv_name!r})", task_id)
            return None
        if task.n != n:
            bad(f"num_classes {n} disagrees with {source} ({task.n})", task_id)
            return None

    image_path = (row.get("image_path") or "").strip()
    if not image_path:
        bad("empty image_path", task_id)
        return None
    image_file = os.path.normpath(os.path.join(folder, image_path))
    try:
        cells = kinds.kind_of(kind).parse_label(row, task, header, folder)
    except LabelError as exc:
        bad(str(exc), task_id)
        return None

    return Entry(
        task_id=task_id,
        kind=kind,
        image_path=image_path,
        image_file=image_file,
        csv_file=rel,
        line=line,
        mask_path=cells.mask_path,
        mask_file=cells.mask_file,
        label=cells.label,
        has_mask_label=cells.has_mask_label,
    )
