"""A refactor must not change the numbers: a tiny seeded network's outputs, decoded
predictions and one training step's losses, per task and recipe, against the values
stored in tests/snapshots/numerics.npz (how they are made, the tolerance and how to
regenerate them on purpose: tests/numerics_snapshot.py)."""
from __future__ import annotations

import numpy as np
import pytest

import numerics_snapshot as snapshot


@pytest.fixture(scope="module")
def numbers(request):
    current = snapshot.compute()
    if request.config.getoption("--update-snapshots"):
        snapshot.save(current)
    return current, snapshot.load()


def _keys(stored, part):
    return sorted(k for k in stored if k.split("/")[1] == part)


def test_snapshot_holds_every_task_of_both_recipes(numbers):
    current, stored = numbers
    assert sorted(current) == sorted(stored)
    for recipe in snapshot.RECIPES:
        assert len([k for k in stored if k.startswith(f"{recipe}/raw/")]) == 27
        assert len([k for k in stored if k.startswith(f"{recipe}/step/loss_after/")]) == 27
    # The seeded input batch is the one the snapshot was made from.
    for recipe in snapshot.RECIPES:
        key = f"{recipe}/input_sum"
        assert current[key] == pytest.approx(stored[key], rel=1e-12), "the seeded input batch changed"


@pytest.mark.parametrize("part", ["raw", "decoded"])
def test_forward_outputs_match_the_snapshot(numbers, part):
    current, stored = numbers
    for key in _keys(stored, part):
        assert current[key].shape == stored[key].shape, key
        np.testing.assert_allclose(current[key], stored[key], rtol=snapshot.RTOL, atol=snapshot.ATOL, err_msg=key)


def test_segmentation_class_maps_match_the_snapshot(numbers):
    current, stored = numbers
    keys = _keys(stored, "mask")
    assert len(keys) == 2 * 12
    for key in keys:
        assert current[key].shape == stored[key].shape, key
        assert np.mean(current[key] != stored[key]) <= snapshot.MASK_FLIPS, key


def test_training_step_losses_match_the_snapshot(numbers):
    current, stored = numbers
    for key in _keys(stored, "step"):
        assert float(current[key]) == pytest.approx(float(stored[key]), rel=snapshot.RTOL, abs=snapshot.ATOL), key
    for recipe in snapshot.RECIPES:  # the update did something
        assert stored[f"{recipe}/step/loss_after"] < stored[f"{recipe}/step/loss"]
