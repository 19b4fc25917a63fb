"""The SimCLR pieces: the NT-Xent loss by its definition (and against lightly's where
lightly is installed), and views that depend on the seed alone."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmuia.config.pretrain import load_pretrain_config
from fmuia.pretrain.simclr import nt_xent_loss
from fmuia.pretrain.views import EpochBatches, TwoViews, build_view_transform
from pretrain_helpers import write_grey_images


def reference_nt_xent(z1, z2, temperature):
    """The SimCLR paper's loss, view by view."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z.shape[0]
    total = 0.0
    for i in range(n):
        partner = (i + n // 2) % n
        sims = [math.exp(float(z[i] @ z[k]) / temperature) for k in range(n) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[partner]) / temperature) / sum(sims))
    return total / n


def test_nt_xent_matches_its_definition():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    assert float(nt_xent_loss(z1, z2, 0.3)) == pytest.approx(reference_nt_xent(z1, z2, 0.3), rel=1e-5)
    # two identical views far from the other images: the loss tends to zero
    apart = torch.eye(4) * 10
    assert float(nt_xent_loss(apart, apart, 0.05)) < 1e-6


def test_nt_xent_equals_lightlys():
    lightly_loss = pytest.importorskip("lightly.loss")
    gen = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 16, generator=gen), torch.randn(6, 16, generator=gen)
    expected = lightly_loss.NTXentLoss(temperature=0.2)(z1, z2)
    assert float(nt_xent_loss(z1, z2, 0.2)) == pytest.approx(float(expected), rel=1e-5)


def test_views_depend_on_the_seed_alone(tmp_path):
    folder = write_grey_images(str(tmp_path / "images"), count=2)
    views = load_pretrain_config(None, ["views.hflip=0.5"]).views
    files = sorted(str(p) for p in (tmp_path / "images").rglob("*.png"))
    data = TwoViews(files, build_view_transform(views, 64))
    a, b = data[(0, 11)], data[(0, 11)]
    assert folder and a["view1"].shape == (3, 64, 64)
    assert torch.equal(a["view1"], b["view1"]) and torch.equal(a["view2"], b["view2"])
    assert not torch.equal(a["view1"], a["view2"])
    assert not torch.equal(a["view1"], data[(0, 12)]["view1"])
    # grey in, grey out: no colour step
    assert torch.allclose(a["view1"][0] * 0.229 + 0.485, a["view1"][1] * 0.224 + 0.456, atol=1e-5)


def test_epoch_batches_are_full_shuffled_by_epoch_and_shared_out():
    batches = EpochBatches(10, 3, seed=1)
    first = list(batches)
    assert len(first) == len(batches) == 3 and all(len(b) == 3 for b in first)
    assert len({i for b in first for i, _ in b}) == 9
    batches.set_epoch(1)
    assert list(batches) != first
    ranks = [list(EpochBatches(10, 2, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    assert not {i for b in ranks[0] for i, _ in b} & {i for b in ranks[1] for i, _ in b}
    assert np.unique([s for b in first for _, s in b]).size == 9


def test_across_processes_the_mean_of_the_ranks_losses_is_the_global_batchs(monkeypatch):
    """Two ranks of two images each: with every rank's views gathered as negatives, the
    ranks' losses average (as DDP averages gradients) to the loss of the four images."""
    import fmuia.pretrain.simclr as simclr

    gen = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(4, 8, generator=gen), torch.randn(4, 8, generator=gen)
    parts = {rank: (z1[2 * rank:2 * rank + 2], z2[2 * rank:2 * rank + 2]) for rank in (0, 1)}
    losses = []
    for rank in (0, 1):
        calls = iter((0, 1))  # the loss gathers the first views, then the second

        def gather(local, rank=rank, calls=calls):
            view = next(calls)
            pieces = [F.normalize(parts[r][view], dim=1) for r in (0, 1)]
            pieces[rank] = local  # this rank's own tensor, as all_gather returns it
            return torch.cat(pieces)

        monkeypatch.setattr(simclr, "_gather", gather)
        losses.append(float(nt_xent_loss(*parts[rank], 0.5, rank=rank, world_size=2)))
    assert sum(losses) / 2 == pytest.approx(float(nt_xent_loss(z1, z2, 0.5)), rel=1e-6)
