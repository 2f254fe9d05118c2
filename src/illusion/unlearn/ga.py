"""Gradient ascent (GA): maximise the cross-entropy of D_f, i.e. minimise its negative.

The plainest forgetting baseline (Thudi et al.; Jia et al.): nothing holds the retain classes
in place, so it is only stable for a few small steps.
"""

from __future__ import annotations

from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register
from ._loop import image_batches, run_epochs


def ascent_loss(model: nn.Module, batch, epoch: int):
    x, y = batch
    return -nn.functional.cross_entropy(model(x), y)


@register("ga", baseline=True)
def gradient_ascent(model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
                    ctx: Context) -> nn.Module:
    return run_epochs(model, cfg, ctx, lambda epoch: image_batches(split.forget_train, cfg, ctx),
                      ascent_loss)
