"""Retain-only fine-tuning: cross-entropy descent on D_r alone (catastrophic forgetting)."""

from __future__ import annotations

from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register
from ._loop import image_batches, run_epochs


def retain_loss(model: nn.Module, batch, epoch: int):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


@register("retain_ft", baseline=True)
def retain_finetune(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    return run_epochs(model, cfg, ctx, lambda epoch: image_batches(split.retain_train, cfg, ctx),
                      retain_loss)
