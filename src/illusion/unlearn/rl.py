"""Random Label (RL): fine-tune on D_f ∪ D_r with every forget sample relabelled to a
uniformly random *retain* class, re-drawn every batch (Golatkar et al.; the paper's §4)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register
from ._loop import concat, image_batches, run_epochs


def random_retain_labels(y: torch.Tensor, forget_classes: torch.Tensor, num_classes: int,
                         generator: torch.Generator) -> torch.Tensor:
    """Replace labels of forget classes by uniformly drawn retain classes."""
    retain = torch.tensor([c for c in range(num_classes) if c not in set(forget_classes.tolist())],
                          device=y.device)
    draws = retain[torch.randint(len(retain), y.shape, generator=generator).to(y.device)]
    return torch.where(torch.isin(y, forget_classes), draws, y)


def relabelled_loss(split: ForgetSplit, ctx: Context):
    """The RL loss on a mixed batch; shared with SalUn, which adds only its mask."""
    forget = torch.tensor(split.forget_set.classes, device=split.retain_train.y.device)

    def loss(model: nn.Module, batch, epoch: int) -> torch.Tensor:
        x, y = batch
        y = random_retain_labels(y, forget, model.fc.out_features, ctx.generator)
        return nn.functional.cross_entropy(model(x), y)
    return loss


@register("rl", baseline=True)
def random_label(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    mixed = concat(split.forget_train, split.retain_train)
    return run_epochs(model, cfg, ctx, lambda epoch: image_batches(mixed, cfg, ctx),
                      relabelled_loss(split, ctx))
