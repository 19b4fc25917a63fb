"""Each kind's uninformed constant prediction (the balanced selection rule's chance level):
what it predicts, and that the kind scores it so that chance gives skill 0 and the truth
skill 1."""
import numpy as np
import pytest

from dataset_builders import cls_row, det_row, kp_row, materialise, seg_row
from fmuia import kinds
from fmuia.data.dataset import FMUIADataset
from fmuia.io.images import image_size
from fmuia.metrics.selection import skill
from fmuia.train.validation import chance_score


def _rows():
    return (
        [seg_row(i) for i in range(3)]
        + [seg_row(i, task="cardiac_multi", n=4, folder="Four") for i in range(2)]
        + [cls_row(i, label=[0, 1, 1, 2, 1][i], task="breast_3cls", n=3) for i in range(5)]
        + [cls_row(i, label=1, task="one_class") for i in range(3)]
        + [det_row(i, box=(2 + i, 5, 20 + 2 * i, 25)) for i in range(3)]
        + [kp_row(i, points=((3 + i, 4), (20.5, 11 + 2 * i))) for i in range(3)]
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """task id -> (task, entries, truths, sizes)."""
    root = str(tmp_path_factory.mktemp("chance") / "data")
    materialise(root, _rows())
    dataset = FMUIADataset(root)
    out = {}
    for task in dataset.registry:
        entries = [e for e in dataset.entries if e.task_id == task.task_id]
        owner = kinds.kind_of(task)
        out[task.task_id] = (task, entries, [owner.truth(e) for e in entries], [image_size(e.image_file) for e in entries])
    return out


def _score(task, values, truths, sizes):
    owner = kinds.kind_of(task)
    return owner.task_result(task, [owner.score_sample(task, v, t, s) for v, t, s in zip(values, truths, sizes)])


def test_chance_values_are_the_kinds_constant_predictions(samples):
    task, _, truths, sizes = samples["breast_3cls"]
    values = kinds.kind_of(task).chance_values(task, truths, sizes)
    assert len(values) == 5
    for v in values:
        assert v.predicted_class == 1  # the most frequent class
        np.testing.assert_allclose(v.probs, [0.2, 0.6, 0.2])
    assert _score(task, values, truths, sizes).metrics["AUC"] == pytest.approx(0.5)

    task, _, truths, sizes = samples["breast_lesion"]
    for v, size in zip(kinds.kind_of(task).chance_values(task, truths, sizes), sizes):
        assert v.shape == tuple(size) and not v.any()

    task, _, truths, sizes = samples["thyroid_nodule_det"]
    mean = np.mean([np.asarray(t) / [w, h, w, h] for t, (h, w) in zip(truths, sizes)], axis=0)
    for v, (h, w) in zip(kinds.kind_of(task).chance_values(task, truths, sizes), sizes):
        np.testing.assert_allclose(v, mean * [w, h, w, h])
    np.testing.assert_allclose(mean * 32, [3, 5, 22, 25])  # the images are 32x32

    task, _, truths, sizes = samples["FUGC"]
    for v in kinds.kind_of(task).chance_values(task, truths, sizes):
        np.testing.assert_allclose(v, [[4, 4], [20.5, 13]])


@pytest.mark.parametrize("task_id", ["breast_lesion", "cardiac_multi", "breast_3cls", "thyroid_nodule_det", "FUGC"])
def test_chance_scores_skill_zero_and_the_truth_skill_one(samples, task_id):
    task, entries, truths, sizes = samples[task_id]
    owner = kinds.kind_of(task)
    chance = chance_score(task, truths, sizes)
    assert chance is not None and 0.0 <= chance < 1.0
    chance_result = _score(task, owner.chance_values(task, truths, sizes), truths, sizes)
    assert chance_result.score == chance
    assert skill(chance_result.score, chance) == 0.0

    rng = np.random.default_rng(0)
    perfect = [owner.prediction_value(task, owner.truth_result(task, e, 0.0, rng)) for e in entries]
    assert skill(_score(task, perfect, truths, sizes).score, chance) == pytest.approx(1.0, abs=1e-12)


def test_the_keypoint_guess_already_has_a_high_challenge_score(samples):
    """Why the balanced rule exists: chance is far from 0 on the challenge scale."""
    task, _, truths, sizes = samples["FUGC"]
    assert chance_score(task, truths, sizes) > 0.8


def test_a_task_that_chance_already_solves_has_no_skill(samples):
    # One class in the truth: AUC is undefined, so the score is the accuracy, which the
    # majority class gets right everywhere.
    task, _, truths, sizes = samples["one_class"]
    chance = chance_score(task, truths, sizes)
    assert chance == 1.0
    assert skill(1.0, chance) is None and skill(0.5, chance) is None


def test_no_samples_no_chance_score(samples):
    task = samples["FUGC"][0]
    assert chance_score(task, [], []) is None
