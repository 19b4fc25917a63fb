"""The predictor: preprocessing, the network (any backend), optional test-time
flip, and results in original pixels.

Preprocessing is ``fmuia.data.transforms``' evaluation pipeline split in two: the
resize (``fmuia.data.resize``, the same bytes as ``build_eval_transform``'s step)
runs where images are read, on uint8 pixels, and the ImageNet normalisation
(``fmuia.predict.normalise``) runs on the whole batch in the backend, where the network
is. The split sends 4x fewer bytes between reader processes and the model;
``tests/predict`` and ``tests/data/test_resize.py`` check it equals ``build_eval_transform``.
Batches and decoded predictions are NumPy arrays: with a graph backend nothing here
needs torch.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fmuia.data.resize import resize_image
from fmuia.errors import ConfigError, DataError
from fmuia.model.routing import group_indices
from fmuia.predict.images import as_rgb
from fmuia.predict.pipeline import predict_dataset
from fmuia import kinds
from fmuia.predict.results import Result
from fmuia.tasks import Task, TaskRegistry

log = logging.getLogger(__name__)


def tta_tasks(registry: TaskRegistry, tta: "bool | Iterable[str] | None") -> frozenset[str]:
    """The tasks that get the horizontal-flip test-time view.

    ``True``: every task whose label survives a flip (not ``orientation_sensitive``);
    an iterable of task ids: those (an orientation-sensitive or unknown one is a
    ``ConfigError``); ``False``/None: none."""
    if not tta:
        return frozenset()
    if tta is True:
        return frozenset(t.task_id for t in registry if not t.orientation_sensitive)
    wanted = [tta] if isinstance(tta, str) else list(tta)
    unknown = [t for t in wanted if t not in registry]
    if unknown:
        raise ConfigError(f"tta: unknown task(s) {', '.join(unknown)}")
    sensitive = [t for t in wanted if registry[t].orientation_sensitive]
    if sensitive:
        raise ConfigError(f"tta: task(s) {', '.join(sensitive)} are orientation-sensitive; a flipped view would change their label")
    return frozenset(wanted)


class Predictor:
    """A loaded model ready to predict (see ``fmuia.load``).

    ``predict(image, task_id)`` answers for one image; ``predict_dataset(data_root,
    out_dir)`` writes a challenge submission for a whole data root. ``input_sizes``: each
    task's input side, by default the one the backend's model was built with
    (``backend.input_sizes``, see ``MultiTaskModel.input_sizes``).
    """

    def __init__(self, backend: Any, tta: "bool | Iterable[str] | None" = None,
                 box_voting: bool | None = None, input_sizes: "Mapping[str, int] | None" = None) -> None:
        if box_voting is not None:  # None: the saved prediction settings' (``predict.box_voting``)
            backend.set_decoding(backend.predict.replace(box_voting=box_voting))
        self.backend = backend
        self.registry: TaskRegistry = backend.registry
        self.image_size: int = backend.config.image_size
        # Each task's input side (``model.input_scale``; ``image_size`` for most): the
        # model's own mapping, which the backend carries, unless given here.
        self.input_sizes: dict[str, int] = dict(backend.input_sizes if input_sizes is None else input_sizes)
        # None: the saved prediction settings' choice (``predict.tta``), saved with the checkpoint.
        self.tta = tta_tasks(self.registry, backend.predict.tta if tta is None else tta)

    @property
    def device(self):
        """Where the network runs (a ``torch.device`` for torch and onnxruntime, ``"cpu"`` for OpenVINO)."""
        return self.backend.device

    @property
    def tasks(self) -> list[Task]:
        return list(self.registry)

    def __repr__(self) -> str:
        sides = sorted(set(self.input_sizes.values()))
        return (f"Predictor({self.backend.name}, {self.backend.config.encoder} at {'/'.join(map(str, sides))}px, "
                f"{len(self.registry)} tasks, device {self.device})")

    def _task(self, task_id: str) -> Task:
        task = self.registry.get(task_id)
        if task is None:
            raise DataError(f"unknown task {task_id!r}; the model's tasks: {', '.join(self.registry.task_ids)}")
        return task

    # -- the core: one batch -------------------------------------------------
    def decoded(self, images: np.ndarray, task_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Decoded (normalised) predictions of a uint8 batch ``(B, S, S, 3)``, per task,
        rows in batch order, as float32 NumPy arrays; test-time flips averaged in where
        enabled. ``S`` is the tasks' input side (``input_sizes``): one batch holds tasks
        of one size."""
        images = np.asarray(images)
        groups = group_indices(task_ids)
        flipped_tasks = [t for t in groups if t in self.tta]
        if flipped_tasks:
            # One forward pass of the batch and its flipped rows together: the encoder's
            # per-call cost is paid once, and every head runs once per batch. The uint8
            # rows are flipped (along the width, axis 2): normalising is per pixel, so
            # flipping before it gives the same bits as flipping after.
            rows = sorted(i for t in flipped_tasks for i in groups[t])
            images = np.concatenate([images, images[rows, :, ::-1]])
            task_ids = [*task_ids, *(task_ids[i] for i in rows)]
        out = {}
        for t, decoded in self.backend.decoded(images, task_ids).items():
            # A task's rows come in batch order: its own rows, then its flipped ones.
            n = len(groups[t])
            out[t] = decoded[:n]
            if t in self.tta:
                out[t] = (out[t] + kinds.kind_of(self.registry[t]).flip_back(decoded[n:])) / np.float32(2)
        return out

    def results(self, images: np.ndarray, task_ids: Sequence[str], sizes: Sequence[tuple[int, int]],
                probabilities: bool = False) -> list[Result]:
        """Results in original pixels for a uint8 batch; ``sizes[i]`` is image i's (h, w)."""
        return self.results_of(self.decoded(images, task_ids), task_ids, sizes, probabilities)

    def results_of(self, decoded: Mapping[str, np.ndarray], task_ids: Sequence[str],
                   sizes: Sequence[tuple[int, int]], probabilities: bool = False) -> list[Result]:
        """``decoded``'s predictions (as ``decoded`` returns them) as results in original
        pixels; ``sizes[i]`` is image i's (h, w)."""
        results: list[Result | None] = [None] * len(task_ids)
        for task_id, rows in group_indices(task_ids).items():
            task = self.registry[task_id]
            per_task = kinds.kind_of(task).results(task, decoded[task_id], [sizes[i] for i in rows], probabilities)
            for i, result in zip(rows, per_task):
                results[i] = result
        return results  # type: ignore[return-value]

    # -- the Python API --------------------------------------------------------
    def predict(self, image: Any, task_id: str, *, frame: int | None = None, probabilities: bool = False) -> Result:
        """Predict one image for ``task_id``.

        ``image``: a numpy array (gray, RGB or RGBA), a PIL image, an image file path,
        or a DICOM file path (``frame`` picks a frame of a multi-frame cine, default 0).
        Returns a ``SegmentationResult`` / ``ClassificationResult`` / ``DetectionResult`` /
        ``KeypointsResult`` in the image's original pixels. ``probabilities=True`` adds
        per-class probability maps at the original size to a segmentation result.
        """
        self._task(task_id)
        rgb = as_rgb(image, frame=frame)
        return self.predict_batch([rgb], [task_id], probabilities=probabilities)[0]

    def predict_batch(self, images: Sequence[Any], task_ids: Sequence[str], probabilities: bool = False) -> list[Result]:
        """Predict several images at once (any mix of tasks); inputs as for ``predict``.

        Returns one result per image, in order; no images give an empty list."""
        if len(images) != len(task_ids):
            raise DataError(f"{len(images)} images but {len(task_ids)} task ids")
        if not images:
            return []
        for t in dict.fromkeys(task_ids):
            self._task(t)
        rgbs = [as_rgb(im) for im in images]
        sizes = [(int(im.shape[0]), int(im.shape[1])) for im in rgbs]
        by_size: dict[int, list[int]] = {}
        for i, t in enumerate(task_ids):
            by_size.setdefault(self.input_sizes[t], []).append(i)
        results: list[Result | None] = [None] * len(rgbs)
        for side, rows in by_size.items():  # one forward pass per input size
            batch = np.stack([resize_image(rgbs[i], side) for i in rows])
            out = self.results(batch, [task_ids[i] for i in rows], [sizes[i] for i in rows], probabilities=probabilities)
            for i, result in zip(rows, out):
                results[i] = result
        return results  # type: ignore[return-value]

    def predict_dataset(self, data_root: str, out_dir: str, **options: Any):
        """Write a challenge submission for ``data_root`` into ``out_dir`` (what
        ``fmuia predict`` runs); options as ``fmuia.predict.pipeline.predict_dataset``
        (``batch_size``, ``workers``, ``progress``, ``overwrite``); ``batch_size`` None or
        left out: the saved ``predict.batch_size``."""
        if options.get("batch_size") is None:
            options["batch_size"] = self.backend.predict.batch_size
        return predict_dataset(self, data_root, out_dir, **options)
