"""The metric functions against hand-computed values, edge case by edge case."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from fmuia.evaluate import (
    box_iou,
    classification_metrics,
    dice_per_class,
    hausdorff,
    hausdorff_per_class,
    radial_errors,
    segmentation_scores,
    summarise,
)
from fmuia.kinds.classification import classification_result
from fmuia.kinds.detection import detection_result
from fmuia.kinds.keypoints import keypoint_result
from fmuia.kinds.segmentation import segmentation_result
from fmuia.tasks import Kind, Task


def brute_hausdorff(a, b):
    d = cdist(np.argwhere(a), np.argwhere(b))
    return max(d.min(axis=1).max(), d.min(axis=0).max())


# -- segmentation ---------------------------------------------------------------

def test_dice_edge_cases_and_value():
    gt = np.zeros((6, 8), np.uint8)
    pred = np.zeros((6, 8), np.uint8)
    gt[1:3, 1:3] = 1  # 4 pixels
    pred[1:3, 1:4] = 1  # 6 pixels, 4 shared
    d = dice_per_class(pred, gt, 3)
    assert d[1] == pytest.approx(2 * 4 / (4 + 6))
    assert d[2] == 1.0  # class 2 absent from both
    assert d[0] == pytest.approx(2 * 42 / (44 + 42))
    pred[:] = 0
    assert dice_per_class(pred, gt, 2)[1] == 0.0  # only truth has class 1


def test_hausdorff_edge_cases():
    empty = np.zeros((30, 40), bool)
    one = empty.copy()
    one[3, 4] = True
    assert hausdorff(empty, empty) == 0.0
    assert hausdorff(one, empty) == 50.0  # diagonal sqrt(30^2 + 40^2)
    assert hausdorff(empty, one) == 50.0
    other = empty.copy()
    other[0, 0] = True
    assert hausdorff(one, other) == 5.0
    assert hausdorff(one, one) == 0.0


def test_hausdorff_counts_interior_pixels_not_only_contours():
    # A filled disc inside the hole of a ring: the farthest pixel of the disc from
    # the ring is its centre, which no contour contains.
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring = (r >= 15) & (r <= 17)
    disc = r <= 8
    centre_to_ring = cdist([[20, 20]], np.argwhere(ring)).min()  # 15
    assert hausdorff(disc, ring) == pytest.approx(centre_to_ring)
    assert hausdorff(disc, ring) == pytest.approx(brute_hausdorff(disc, ring))
    contour = disc & ~np.pad(disc, 1)[2:, 1:-1] | disc & ~np.pad(disc, 1)[:-2, 1:-1]
    contour_only = max(cdist(np.argwhere(contour), np.argwhere(ring)).min(axis=1).max(), brute_hausdorff(ring, disc) * 0)
    assert contour_only < centre_to_ring - 5  # what a contour-only distance would miss


@pytest.mark.parametrize("seed", range(4))
def test_fast_hausdorff_matches_brute_force_and_simpleitk(seed):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = rng.integers(1, 24, size=2)
        a = rng.random((h, w)) < rng.random()
        b = rng.random((h, w)) < rng.random() ** 3
        if rng.random() < 0.3:  # blobs, with far-apart pieces
            a = np.zeros((h, w), bool)
            a[rng.integers(0, h) :, : rng.integers(1, w + 1)] = True
        if not a.any() or not b.any():
            continue
        expected = brute_hausdorff(a, b)
        assert hausdorff(a, b) == pytest.approx(expected, abs=1e-9)
        f = sitk.HausdorffDistanceImageFilter()
        f.Execute(sitk.GetImageFromArray(a.astype(np.uint8) * 255), sitk.GetImageFromArray(b.astype(np.uint8) * 255))
        assert hausdorff(a, b) == pytest.approx(f.GetHausdorffDistance(), abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_hausdorff_is_bit_identical_to_brute_force_with_empty_and_one_pixel_masks(seed):
    """Every distance is the square root of an integer, so the fast path must give exactly
    the brute force's float (not merely a close one): the scores are compared with ==."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(80):
        h, w = (int(v) for v in rng.integers(1, 90, size=2))
        masks = []
        for _ in range(2):
            m = np.zeros((h, w), bool)
            shape = rng.integers(0, 4)
            if shape == 1:  # one pixel
                m[rng.integers(0, h), rng.integers(0, w)] = True
            elif shape == 2:  # a shifted rectangle, as a perturbed prediction is
                r0, c0 = rng.integers(0, h), rng.integers(0, w)
                m[r0 : r0 + rng.integers(1, h + 1), c0 : c0 + rng.integers(1, w + 1)] = True
            elif shape == 3:  # scattered pixels
                m = rng.random((h, w)) < rng.random() ** 2
            masks.append(m)  # shape 0: empty
        a, b = masks
        if a.any() and b.any():
            expected = float(brute_hausdorff(a, b))
        else:
            expected = 0.0 if not a.any() and not b.any() else math.hypot(h, w)
        assert hausdorff(a, b) == expected
        labels = a.astype(np.uint8) + 2 * (b & ~a)  # two classes of one mask against each other's
        s = segmentation_scores(labels, np.where(b, 1, 0).astype(np.uint8), 3)
        truth_1, pred_1 = b, labels == 1
        want = float(brute_hausdorff(pred_1, truth_1)) if pred_1.any() and truth_1.any() else (
            0.0 if not pred_1.any() and not truth_1.any() else math.hypot(h, w))
        assert s.hd[1] == want


def test_hausdorff_per_class_and_multiclass_task_averaging():
    # Two 10x10 samples of a 3-class task, every number by hand.
    gt1 = np.zeros((10, 10), np.uint8)
    gt1[0:2, 0:2] = 1  # 4 px
    gt1[5:7, 5:7] = 2  # 4 px
    p1 = gt1.copy()
    p1[0:2, 2] = 1  # class 1: pred 6 px, inter 4 -> dice 0.8, HD 1
    gt2 = np.zeros((10, 10), np.uint8)
    gt2[0, 0] = 1
    p2 = np.zeros((10, 10), np.uint8)
    p2[0, 0] = 1
    p2[9, 9] = 2  # class 2 only in the prediction: dice 0, HD = diagonal
    s1, s2 = segmentation_scores(p1, gt1, 3), segmentation_scores(p2, gt2, 3)
    np.testing.assert_allclose(s1.dice[1:], [0.8, 1.0])
    np.testing.assert_allclose(s1.hd[1:], [1.0, 0.0])
    np.testing.assert_allclose(s2.dice[1:], [1.0, 0.0])
    diag = math.hypot(10, 10)
    np.testing.assert_allclose(s2.hd[1:], [0.0, diag])
    np.testing.assert_allclose(hausdorff_per_class(p2, gt2, 3), s2.hd)

    task = Task("t", Kind.SEGMENTATION, 3)
    r = segmentation_result(task, np.stack([s1.dice, s2.dice]), np.stack([s1.hd, s2.hd]), [s1.diagonal, s2.diagonal])
    # per class over samples: class 1 dice (0.8+1)/2 = 0.9, class 2 (1+0)/2 = 0.5; mean 0.7
    assert r.metrics["DSC"] == pytest.approx(0.7)
    # class 1 HD (1+0)/2 = 0.5, class 2 (0+diag)/2; mean over classes
    assert r.metrics["HD"] == pytest.approx((0.5 + diag / 2) / 2)
    nhd = (0.5 / diag + 0.5) / 2  # normalised: class 1 (1/diag)/2, class 2 (0+1)/2
    assert r.metrics["HD_norm"] == pytest.approx(nhd)
    assert r.score == pytest.approx((0.7 + 1 - nhd) / 2)
    assert r.per_class["2"]["DSC"] == pytest.approx(0.5)
    assert r.num_samples == 2


# -- classification -------------------------------------------------------------

def pairwise_auc(positive_scores, negative_scores):
    """AUC by counting pairs (ties count a half): the hand definition."""
    wins = sum((p > q) + 0.5 * (p == q) for p in positive_scores for q in negative_scores)
    return wins / (len(positive_scores) * len(negative_scores))


def test_binary_auc_uses_class_one_probability_and_f1_mcc_by_hand():
    y = [0, 0, 0, 1]
    pred = [0, 0, 1, 1]
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, pred, np.stack([1 - p1, p1], axis=1), 2)
    assert m.auc == pytest.approx(1.0)  # positives {0.8} beat all negatives
    assert m.accuracy == pytest.approx(0.75)
    # class 0: P 1, R 2/3 -> F1 0.8; class 1: P 1/2, R 1 -> F1 2/3
    assert m.f1_macro == pytest.approx((0.8 + 2 / 3) / 2)
    assert m.f1_weighted == pytest.approx((3 * 0.8 + 1 * 2 / 3) / 4)
    assert m.mcc == pytest.approx((1 * 2 - 1 * 0) / math.sqrt(2 * 1 * 3 * 2))
    y = [0, 1, 0, 1]
    p1 = np.array([0.1, 0.35, 0.4, 0.8])
    m = classification_metrics(y, [0, 0, 0, 1], np.stack([1 - p1, p1], axis=1), 2)
    assert m.auc == pytest.approx(pairwise_auc([0.35, 0.8], [0.1, 0.4]))  # 0.75


def test_multiclass_auc_is_one_vs_rest_macro():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.6, 0.3, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1],
        [0.2, 0.7, 0.1], [0.2, 0.2, 0.6], [0.4, 0.5, 0.1],
    ])
    expected = np.mean([
        pairwise_auc(probs[y == c, c], probs[y != c, c]) for c in range(3)
    ])
    m = classification_metrics(y, probs.argmax(axis=1), probs, 3)
    assert m.auc == pytest.approx(expected)


def test_predicted_class_is_scored_as_written_not_argmax():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    m = classification_metrics([0, 1], [1, 0], probs, 2)  # the written classes are both wrong
    assert m.accuracy == 0.0
    assert m.auc == 1.0  # the probabilities rank perfectly


def test_undefined_auc_is_none_with_a_note_and_score_falls_back_to_accuracy():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics([0, 0, 0], [0, 0, 1], probs, 2)
    assert m.auc is None and "only class 0" in m.notes[0]
    r = classification_result(Task("c", Kind.CLASSIFICATION, 2), [0, 0, 0], [0, 0, 1], probs)
    assert r.metrics["AUC"] is None and r.score == pytest.approx(2 / 3)
    # three classes, one absent from the truth: one-vs-rest is undefined
    m3 = classification_metrics([0, 1], [0, 1], np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]), 3)
    assert m3.auc is None and "[2] absent" in m3.notes[0]


# -- detection and keypoints ----------------------------------------------------

def test_box_iou_by_hand_and_inverted_boxes_as_given():
    gt = [[0, 0, 10, 10]] * 4
    pred = [[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [10, 10, 0, 0]]
    np.testing.assert_allclose(box_iou(pred, gt), [25 / 175, 1.0, 0.0, 0.0])
    # an inverted box keeps its negative area: union 100 - 100 = 0 -> IoU 0
    assert box_iou([10, 0, 0, 10], [0, 0, 10, 10])[0] == 0.0
    # a partly inverted box is not reordered: width -4 counts as given
    assert box_iou([8, 0, 4, 10], [0, 0, 10, 10])[0] == 0.0
    assert box_iou([3, 3, 3, 3], [3, 3, 3, 3])[0] == 0.0  # union 0


def test_radial_errors_and_keypoint_result():
    pred = np.array([[[0, 0], [3, 4]], [[1, 1], [1, 1]]], dtype=float)
    gt = np.array([[[0, 0], [0, 0]], [[1, 1], [1, 1]]], dtype=float)
    np.testing.assert_allclose(radial_errors(pred, gt), [2.5, 0.0])
    r = keypoint_result(Task("k", Kind.KEYPOINTS, 2), [2.5, 0.0, 80.0], [50.0, 50.0, 50.0])
    assert r.metrics["MRE"] == pytest.approx(82.5 / 3)
    assert r.score == pytest.approx((0.95 + 1.0 + 0.0) / 3)  # the last is clipped at 0


def test_summary_counts_every_task_once():
    seg = segmentation_result(Task("s", Kind.SEGMENTATION, 2), [[1.0, 0.5]], [[0.0, 10.0]], [100.0])
    cls_a = classification_result(Task("a", Kind.CLASSIFICATION, 2), [0, 1], [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    cls_b = classification_result(Task("b", Kind.CLASSIFICATION, 2), [0, 0], [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    det = detection_result(Task("d", Kind.DETECTION, 1), [0.5, 0.7])
    kp = keypoint_result(Task("k", Kind.KEYPOINTS, 2), [5.0], [50.0])
    empty = detection_result(Task("e", Kind.DETECTION, 1), [])
    s = summarise([seg, cls_a, cls_b, det, kp, empty])
    expected_scores = [(0.5 + 1 - 0.1) / 2, 1.0, 0.5, 0.6, 0.9]
    assert s.challenge_score == pytest.approx(np.mean(expected_scores))
    assert s.tasks_scored == 5 and s.tasks_without_samples == ["e"]
    assert s.per_kind["classification"]["AUC"] == pytest.approx(1.0)  # task b's AUC undefined, left out
    assert s.per_kind["classification"]["Accuracy"] == pytest.approx(0.75)
    assert s.per_kind["detection"]["IoU"] == pytest.approx(0.6)
    assert s.per_kind["keypoints"]["MRE"] == pytest.approx(5.0)
    assert s.per_kind["segmentation"] == {"DSC": 0.5, "HD": 10.0}


@pytest.mark.parametrize("seed", range(3))
def test_windowed_sample_scores_equal_the_per_class_definitions(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = rng.integers(1, 30, size=2)
        n = int(rng.integers(2, 5))
        gt = np.zeros((h, w), np.uint8)
        pred = np.zeros((h, w), np.uint8)
        for m in (gt, pred):  # a few rectangles of random classes, sometimes none
            for _ in range(rng.integers(0, 4)):
                r, c = rng.integers(0, h), rng.integers(0, w)
                m[r : r + rng.integers(1, 12), c : c + rng.integers(1, 12)] = rng.integers(0, n + 1)
        s = segmentation_scores(pred, gt, n)
        np.testing.assert_allclose(s.dice, dice_per_class(pred, gt, n), atol=1e-12)
        np.testing.assert_allclose(s.hd, hausdorff_per_class(pred, gt, n), atol=1e-9)
        for c in range(n):
            if (pred == c).any() and (gt == c).any():
                assert s.hd[c] == pytest.approx(brute_hausdorff(pred == c, gt == c), abs=1e-9)
