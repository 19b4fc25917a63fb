"""The contract of a task kind: everything the project does differently per kind.

A kind module (``fmuia.kinds.segmentation``, ...) subclasses ``TaskKind`` and fills in
the hooks below; the rest of the project (layout reader, validator, transforms, model,
losses, predictor, submission reader, scorer, validation, report) asks the kind of a
task through ``fmuia.kinds.kind_of`` and never branches on the kind itself.

The life of a label, hook by hook:

1. CSV: ``parse_label`` reads a row's label cells (``label_columns``);
   ``label_to_columns`` is its inverse (the synthetic writer, round-trip tests).
2. Checks: ``check_label`` sees the label and the image size (``fmuia validate``);
   ``counts`` is what the per-task statistics count; ``class_range`` the classes whose
   balance is reported.
3. Targets: ``transform_inputs`` gives albumentations its keyword arguments;
   ``encode_target`` turns the transformed label into the tensor the loss sees (in the
   model's frame); ``resized_label`` keeps the label in resized pixels (the cache).
4. Model: ``head_types`` pairs each head class with its loss and the loss's default
   parameters (``add_head``, called by ``register_heads`` on first use: heads and
   losses are torch code in ``fmuia.kinds.<kind>_heads``, which the other hooks never
   import); ``default_head`` and ``default_route`` (``top`` encoder features or the
   ``fpn`` map) are what a config does not override.
5. Prediction: a head's ``decode`` gives normalised predictions; ``flip_back`` undoes a
   horizontal test-time flip; ``results`` brings decoded rows to original pixels.
6. Submission: ``prediction_file`` names the JSON file (None: one file per sample, e.g.
   masks); ``record_fields`` writes a result, ``parse_record`` reads it back strictly.
7. Scoring: ``prediction_value`` is the per-sample value a submission holds (the same
   for ``fmuia evaluate``, which parses the file, and training validation, which gets it
   from ``results``); ``score_sample`` scores it against the truth and ``task_result``
   aggregates a task.
   Model selection (``train.select``): ``official_selection_metrics`` are the kind's
   columns of the official script's validation table; ``chance_results`` is the kind's
   uninformed constant prediction, which ``chance_values`` turns into scored values.
8. Drawing: ``draw_label`` (the synthetic gallery) and ``draw_prediction`` (the report).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from fmuia.config import catalogue
from fmuia.kinds.drawing import thumbnail
from fmuia.tasks import Kind, Task

if TYPE_CHECKING:
    import torch

    from fmuia.data.records import Entry
    from fmuia.kinds.head import Head, LossFn
    from fmuia.metrics.results import TaskResult

__all__ = ["HeadType", "LabelCells", "LabelError", "SampleScore", "TaskKind", "TOP", "FPN", "as_numpy"]

# Feature sources a head can read (see fmuia.model.routing).
TOP = "top"
FPN = "fpn"


def as_numpy(decoded: "np.ndarray | torch.Tensor", dtype=np.float64) -> np.ndarray:
    """Decoded rows as a NumPy array of ``dtype`` (None: float32 or float64 as given). A
    torch tensor (any device; bf16 and fp16 as float32) is read without this module
    importing torch, so that prediction from a graph backend never does."""
    if hasattr(decoded, "detach"):  # a torch tensor
        decoded = decoded.detach()
        if decoded.dtype.itemsize < 4:
            decoded = decoded.float()
        decoded = decoded.cpu().numpy()
    return np.asarray(decoded, dtype=dtype)

Size = tuple[int, int]  # original (height, width)



def __getattr__(name: str) -> Any:
    """``Head`` and ``LossFn`` live in ``fmuia.kinds.head`` (torch); importing them from
    here, as kinds written against this module do, still works and imports torch then."""
    if name in ("Head", "LossFn"):
        from fmuia.kinds import head

        return getattr(head, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

class LabelError(ValueError):
    """A row's label cells or a prediction record is malformed; the caller adds where."""


@dataclass(frozen=True)
class HeadType:
    """A head class with its loss and the loss's parameters (with defaults; the config's
    ``loss.params["<kind>.<head type>"]`` overrides them)."""

    name: str
    head: type[Head]
    loss: LossFn
    loss_defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelCells:
    """What a CSV row says about its label: ``label`` (None: unlabelled) and, for kinds
    whose labels are files, the verbatim ``mask_path``, its resolved ``mask_file`` and
    whether that file exists."""

    label: Any = None
    mask_path: str | None = None
    mask_file: str | None = None
    has_mask_label: bool = False


@dataclass
class SampleScore:
    """One scored sample: ``score`` its share of the task score in [0, 1] (ranks samples
    worst first in the report), ``details`` its JSON-ready fields of ``samples.json``,
    ``data`` what ``task_result`` aggregates, ``resized`` whether the prediction had to be
    resized to the truth first."""

    score: float
    details: dict
    data: Any
    resized: bool = False


def floats(values: Any) -> list[float]:
    """Plain Python floats (JSON must never see numpy scalars)."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def parse_int(text: Any) -> int:
    """An integer cell ("3", "3.0"); ``ValueError`` otherwise."""
    value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)


def number_list(item: Mapping, key: str, length: int | None) -> np.ndarray:
    """A record's list of finite numbers under ``key``, of ``length`` values when given."""
    value = item.get(key)
    if not isinstance(value, list):
        raise LabelError(f"{key!r} must be a list of numbers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise LabelError(f"{key!r} has {len(value)} values, expected {length}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise LabelError(f"{key!r}[{i}] = {v!r} is not a finite number")
    return np.asarray(value, dtype=np.float64)


class TaskKind:
    """The behaviour of one kind of task. Subclasses set the class attributes and
    override the hooks; one instance per kind lives in the registry (``fmuia.kinds``)."""

    # -- identity --------------------------------------------------------------
    name: ClassVar[str]  # the Kind's value ("segmentation")
    csv_name: ClassVar[str]  # the CSV task_name spelling ("segmentation", "Regression")
    min_n: ClassVar[int] = 1  # allowed range of a task's n
    max_n: ClassVar[int | None] = None
    metric_names: ClassVar[tuple[str, ...]] = ()  # per-kind summary metrics, in order
    lower_is_better: ClassVar[frozenset[str]] = frozenset()  # metrics (distances) where smaller wins
    pixel_metrics: ClassVar[frozenset[str]] = frozenset()  # metrics measured in pixels (the curves' px panel)
    # The few metrics that sum a kind up in one-line comparisons; None: all of metric_names.
    headline_metrics: ClassVar[tuple[str, ...] | None] = None
    prediction_file: ClassVar[str | None] = None  # the submission's JSON file; None: a file per sample
    prediction_dir: ClassVar[str | None] = None  # with a file per sample: the folder they lie under
    default_route: ClassVar[str] = TOP
    default_head: ClassVar[str] = ""
    label_columns: ClassVar[tuple[str, ...]] = ()  # CSV columns the label may use
    label_is_file: ClassVar[bool] = False  # the label is a file named by the row (a mask)
    report_panel_height: ClassVar[float] = 3.4  # inches of one report thumbnail
    # A label that must stay whole inside the frame (a box): geometric augmentation then
    # zooms out without rotating and crops around the label (fmuia.data.augment).
    label_must_stay_inside: ClassVar[bool] = False
    # The metrics this kind adds as columns to the official training script's validation
    # table, whose mean of all cells picks its best epoch (``train.select: official``).
    official_selection_metrics: ClassVar[tuple[str, ...]] = ()
    # Slow-to-import modules that ``task_result`` imports on first use: ``fmuia evaluate``
    # imports them in the background while it reads and scores the masks.
    scoring_imports: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.kind = Kind.register(self.name, self.csv_name, self.min_n, self.max_n)
        self._head_types: dict[str, HeadType] | None = None

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"

    # -- 1. CSV ----------------------------------------------------------------
    def headline(self) -> tuple[str, ...]:
        """The metrics of ``headline_metrics``, or all summary metrics when it is unset."""
        return self.metric_names if self.headline_metrics is None else self.headline_metrics

    def improves(self, metric: str, before: float, after: float) -> bool:
        """Whether ``after`` is a better value of ``metric`` than ``before``."""
        return after < before if metric in self.lower_is_better else after > before

    def is_label_column(self, column: str) -> bool:
        """Whether a CSV header names one of this kind's label columns."""
        return column in self.label_columns

    def parse_label(self, row: Mapping[str, Any], task: Task, header: Sequence[str], folder: str) -> LabelCells:
        """The label of a CSV row (blank cells: unlabelled). ``folder`` is ``csv_files/``
        (paths in cells are relative to it). Raises ``LabelError`` with the reason."""
        raise NotImplementedError

    def label_to_columns(self, task: Task, label: Any) -> dict[str, str]:
        """The CSV cells of a label: ``parse_label`` of them gives the label back."""
        raise NotImplementedError

    def csv_columns(self, n: int) -> tuple[str, ...]:
        """The label columns a CSV of this kind's tasks with up to ``n`` values has."""
        return self.label_columns

    def labelled(self, entry: "Entry") -> bool:
        return entry.label is not None

    # -- 2. checks -------------------------------------------------------------
    def load_label(self, entry: "Entry", size: Size | None = None) -> Any:
        """The label at the original size (kinds whose labels are files read them here;
        ``size``, when given, is the image's (h, w) the label must match)."""
        return entry.label

    def label_from_array(self, value: np.ndarray) -> Any:
        """A label stored in the preprocessing cache (an ``np.save``-d array) back in its form."""
        return value

    def check_label(self, entry: "Entry", task: Task, size: Size, require_labels: bool) -> tuple[list[str], list]:
        """Problems of a row's label against its image of ``size`` (h, w), and what the
        statistics count for it. Runs in a worker thread; reads files it needs itself."""
        reasons: list[str] = []
        if require_labels and not self.labelled(entry):
            reasons.append("no label (training needs labelled rows)")
        return reasons, (self.counts(entry) if entry.label is not None else [])

    def counts(self, entry: "Entry") -> list:
        """What a labelled row adds to its task's ``counts`` (classes, boxes, points)."""
        return []

    def class_range(self, task: Task) -> range | None:
        """Classes whose balance ``fmuia validate`` reports (None: no classes)."""
        return None

    # -- 3. targets ------------------------------------------------------------
    def transform_inputs(self, label: Any) -> dict[str, Any]:
        """albumentations keyword arguments (besides ``image``) that carry a label."""
        return {}

    def transformed_ok(self, out: Mapping[str, Any]) -> bool:
        """Whether a label survived the transform (e.g. a box left inside the image)."""
        return True

    def encode_target(self, out: Mapping[str, Any], label: Any, size: Size) -> torch.Tensor:
        """The loss's target from the transform's output (``size``: the model frame's h, w)."""
        raise NotImplementedError

    def resized_label(self, out: Mapping[str, Any], label: Any) -> Any:
        """The label in the resized pixels (what the preprocessing cache stores)."""
        return label

    # -- 4. model --------------------------------------------------------------
    def register_heads(self) -> None:
        """Add the kind's head types (``add_head``). Called on first use of ``head_types``:
        heads are torch modules, and the kind's other hooks (labels, records, scoring)
        must import without torch. A kind that registers its heads here declares
        ``default_head`` as a class attribute, so that it is known before they load."""

    @property
    def head_types(self) -> dict[str, HeadType]:
        """Head type name -> ``HeadType``, registered on first use (``register_heads``)."""
        if self._head_types is None:
            self._head_types = {}
            self.register_heads()
        return self._head_types

    def add_head(self, name: str, head: type[Head], loss: LossFn, default: bool = False, **loss_defaults: Any) -> type[Head]:
        """Register a head type with its loss. The loss's parameters and their defaults are
        the config catalogue's (``fmuia.config.catalogue.LOSS_PARAMS``, where the built-in
        heads are listed with their help); a head type not listed there brings them as
        ``loss_defaults``, and they are added to it."""
        if name in self.head_types:
            raise ValueError(f"head type {name!r} is already registered for {self.name}")
        listed = catalogue.loss_params(f"{self.name}.{name}")
        if listed is None:
            catalogue.register_head_type(self.name, name, f"the {name} head ({head.__name__})", loss_defaults)
        elif not loss_defaults:
            loss_defaults = {p: param.default for p, param in listed.items()}
        head.kind, head.type_name = self.kind, name
        self.head_types[name] = HeadType(name, head, loss, dict(loss_defaults))
        if default or not self.default_head:
            self.default_head = name
        return head

    def head_type(self, name: str) -> HeadType:
        try:
            return self.head_types[name]
        except KeyError:
            raise KeyError(f"{self.name} has no head type {name!r} (known: {', '.join(self.head_types)})") from None

    # -- 5. prediction ---------------------------------------------------------
    def flip_back(self, decoded: np.ndarray) -> np.ndarray:
        """Decoded predictions (NumPy) of horizontally flipped images, in the unflipped frame."""
        return decoded

    def results(self, task: Task, decoded: "np.ndarray | torch.Tensor", sizes: Sequence[Size],
                probabilities: bool = False) -> list:
        """One result per decoded row, in original pixels (``sizes[i]``: row i's (h, w)).
        ``decoded``: NumPy (prediction), or a torch tensor on any device (training's
        validation); ``as_numpy`` reads either."""
        raise NotImplementedError

    # -- 6. submission ---------------------------------------------------------
    def record_fields(self, result: Any) -> dict:
        """A result's fields of its submission JSON entry."""
        raise TypeError(f"{self.name} predictions are files, not JSON records")

    def record(self, entry: "Entry", result: Any) -> dict:
        """The row's entry in the submission JSON (image_path copied verbatim)."""
        return {"image_path": entry.image_path, "task_id": entry.task_id, **self.record_fields(result)}

    def parse_record(self, item: Mapping[str, Any], task: Task | None) -> Any:
        """The scored value of a JSON entry (``task`` None: a task the truth lacks).
        Raises ``LabelError`` naming the bad field."""
        raise NotImplementedError

    def prediction_path(self, entry: "Entry") -> str:
        """For kinds with a file per sample: where it lies in a submission folder."""
        raise NotImplementedError

    def read_prediction(self, path: str, truth: Any) -> tuple[Any, bool]:
        """For kinds with a file per sample: (value, resized to the truth's size)."""
        raise NotImplementedError

    def prediction_bytes(self, result: Any) -> bytes:
        """For kinds with a file per sample: the file's content for ``result``."""
        raise NotImplementedError

    def truth_result(self, task: Task, entry: "Entry", noise: float, rng: np.random.Generator) -> Any:
        """A result made from the row's ground truth, perturbed by ``noise`` in [0, 1] (0:
        the truth exactly), drawing from ``rng`` (``fmuia.evaluate.truth_submission``)."""
        raise NotImplementedError

    def prediction_value(self, task: Task, result: Any) -> Any:
        """The value a submission holds for ``result``: its record, parsed back."""
        return self.parse_record(self.record_fields(result), task)

    # -- 7. scoring ------------------------------------------------------------
    def truth(self, entry: "Entry") -> Any:
        """The ground truth the scorer compares with (at the original size)."""
        return self.load_label(entry)

    def truth_size(self, entry: "Entry", truth: Any) -> Size | None:
        """The original (h, w) when scoring needs it and it is not known (None otherwise)."""
        return None

    def score_sample(self, task: Task, value: Any, truth: Any, size: Size | None) -> SampleScore:
        raise NotImplementedError

    def task_result(self, task: Task, scores: Sequence[SampleScore]) -> "TaskResult":
        raise NotImplementedError

    # True when the chance prediction of a sample depends on its size only (not on the
    # other labels' statistics): validation then scores it batch by batch instead of
    # holding every label (segmentation masks) until the end.
    chance_per_sample: bool = False

    def chance_results(self, task: Task, labels: Sequence[Any], sizes: Sequence[Size]) -> list | None:
        """The kind's uninformed constant prediction for each of a task's samples (their
        original-size ``labels`` and (h, w) ``sizes``): what a model that ignores the
        image and knows only the labels' statistics predicts, as results of ``results``.
        None: the kind has none (its tasks get no balanced score)."""
        return None

    def chance_values(self, task: Task, labels: Sequence[Any], sizes: Sequence[Size]) -> list | None:
        """``chance_results`` as the values ``prediction_value`` gives, so that
        ``score_sample`` and ``task_result`` score them exactly like real predictions."""
        results = self.chance_results(task, labels, sizes)
        return None if results is None else [self.prediction_value(task, r) for r in results]

    # -- 8. drawing ------------------------------------------------------------
    def draw_label(self, image: np.ndarray, task: Task, label: Any, thickness: int) -> None:
        """Draw a label onto an RGB uint8 image in place."""

    def caption(self, task: Task, label: Any, note: str = "") -> str:
        return ""

    def draw_prediction(self, ax, image: np.ndarray, truth: Any, value: Any, record: Mapping[str, Any]) -> None:
        """One report panel: the truth (green) and the prediction (magenta) on the image."""
        canvas, _ = thumbnail(image)
        ax.imshow(canvas)
        ax.set_title(f"score {float(record['score']):.3f}", fontsize=9)
