"""NegGrad+ (Kurmanji et al.): one step per retain batch on
``CE(retain batch) - forget_weight * CE(forget batch)``, the forget batches cycling through D_f,
with the gradient norm clipped to ``clip`` (1.0 in the paper)."""

from __future__ import annotations

from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit, Split
from . import Context, register
from ._loop import image_batches, run_epochs


def cycle(split: Split, cfg: MethodConfig, ctx: Context):
    """Endless shuffled batches of ``split``: a fresh permutation on every pass."""
    while True:
        yield from image_batches(split, cfg, ctx)


@register("neggrad_plus")
def neggrad_plus(model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
                 ctx: Context) -> nn.Module:
    if len(split.forget_train) == 0:
        raise ValueError("neggrad_plus needs forget samples; D_f is empty")
    forget_weight = float(cfg.option("forget_weight", 1.0))
    forget = cycle(split.forget_train, cfg, ctx)  # one stream across epochs, as in the paper

    def epoch_batches(epoch: int):
        for retain_batch in image_batches(split.retain_train, cfg, ctx):
            yield retain_batch, next(forget)

    def loss(model: nn.Module, batch, epoch: int):
        (xr, yr), (xf, yf) = batch
        # Two forward passes: BatchNorm normalises each batch with its own statistics.
        ce = nn.functional.cross_entropy
        return ce(model(xr), yr) - forget_weight * ce(model(xf), yf)

    return run_epochs(model, cfg, ctx, epoch_batches, loss, clip=cfg.option("clip"))
