"""SimCLR (Chen et al., 2020) on the shared encoder: two views of each image, global
average pooling of the encoder's deepest feature map, a projection MLP, and the NT-Xent
loss pulling the two views of an image together and pushing the other images apart.

Why not the ``lightly`` library: its SimCLR pieces (``lightly.loss.NTXentLoss``,
``lightly.models.modules.SimCLRProjectionHead``) are some sixty lines of torch, but the
package requires ``pytorch-lightning`` and ``hydra-core`` and, through them,
``torchmetrics``, ``omegaconf`` and ``aiohttp`` with its tree: fourteen more packages in
every fmuia install for code fmuia would not run. The same objective is written here with
torch alone; ``tests/pretrain/test_simclr.py`` checks the loss against lightly's where
lightly happens to be installed. SimCLR suits the CNN encoders fmuia uses (BatchNorm, no
tokens), needs no momentum encoder to save and resume, and one pass per view.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fmuia.config.pretrain import MethodSection
from fmuia.model.encoder import Encoder

__all__ = ["ProjectionHead", "SimCLR", "nt_xent_loss"]


class ProjectionHead(nn.Sequential):
    """SimCLR's projection MLP: linear, BatchNorm, ReLU, linear (as lightly's
    ``SimCLRProjectionHead`` with one hidden layer). Thrown away after pretraining: the
    encoder's pooled features, not the projections, are what transfers."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


class SimCLR(nn.Module):
    """``model(images) -> projections (B, projection_dim)``; ``model.encoder`` is the fmuia
    ``Encoder`` whose weights are the product of pretraining."""

    def __init__(self, encoder: Encoder, method: MethodSection) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.top_channels, method.hidden_dim, method.projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        deepest = self.encoder(images)[-1]
        pooled = deepest.float().mean(dim=(2, 3))
        return self.projector(pooled)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The NT-Xent loss of two batches of projections, ``z1[i]`` and ``z2[i]`` the views
    of image ``i``: each of the 2B views must pick its partner among the other views by
    cosine similarity / ``temperature`` (cross-entropy), averaged over the views.

    Several processes (``world_size`` > 1, a process group up): every rank's views are
    gathered with gradients flowing back (``_GatherWithGradient``),
    so the other ranks' images count as negatives too; each rank scores its own views,
    and the mean over the ranks that DDP's gradient averaging takes is the loss of the
    global batch."""
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    batch = z1.shape[0]
    all_z1, all_z2 = (_gather(z1), _gather(z2)) if world_size > 1 else (z1, z2)
    total, offset = all_z1.shape[0], rank * batch  # columns: every view 1, then every view 2
    local = torch.cat([z1, z2])
    logits = local @ torch.cat([all_z1, all_z2]).T / float(temperature)
    image = torch.arange(batch, device=local.device) + offset
    rows = torch.arange(2 * batch, device=local.device)
    own = torch.cat([image, image + total])
    partner = torch.cat([image + total, image])
    logits[rows, own] = float("-inf")  # a view is never its own partner
    return F.cross_entropy(logits, partner)


def _gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor``, stacked in rank order, with gradients flowing back."""
    return torch.cat(_GatherWithGradient.apply(tensor))


class _GatherWithGradient(torch.autograd.Function):
    """``all_gather`` whose backward hands each rank the gradient of its own slice summed
    over every rank's loss (as lightly's ``GatherLayer`` and SimCLR's reference code do;
    torch's ``torch.distributed.nn`` equivalent is deprecated)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        import torch.distributed as dist

        gathered = [torch.zeros_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        summed = torch.stack(grads)
        dist.all_reduce(summed)
        return summed[dist.get_rank()]
