"""NegGrad+ (Kurmanji et al.): one step per retain batch, the forget batches cycling through
D_f. The step's gradient is the ascent gradient ``-forget_weight * ∇CE(forget batch)``, its norm
clipped to ``forget_clip`` (1.0 in the paper), plus the unclipped descent gradient
``∇CE(retain batch)``, as in the authors' code (``unlearn/naive.py``). Under CMF the authors
clip the sum instead: the CMF settings set ``forget_clip`` None and the common ``clip`` 1.0."""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit, Split
from . import Context, register
from ._loop import image_batches, run_epochs


def cycle(split: Split, cfg: MethodConfig, ctx: Context):
    """Endless shuffled batches of ``split``: a fresh permutation on every pass."""
    while True:
        yield from image_batches(split, cfg, ctx)


def clipped(grads: list[torch.Tensor | None], max_norm: float) -> list[torch.Tensor | None]:
    """``grads`` scaled as ``torch.nn.utils.clip_grad_norm_`` would scale them."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads
                                                 if g is not None]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [None if g is None else g * scale for g in grads]


@register("neggrad_plus", baseline=True, options=("forget_weight", "forget_clip"))
def neggrad_plus(model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
                 ctx: Context) -> nn.Module:
    if len(split.forget_train) == 0:
        raise ValueError("neggrad_plus needs forget samples; D_f is empty")
    forget_weight = float(cfg.option("forget_weight", 1.0))
    forget_clip = cfg.option("forget_clip")
    forget = cycle(split.forget_train, cfg, ctx)  # one stream across epochs, as in the paper
    params = ctx.parameters(model)

    def epoch_batches(epoch: int):
        for retain_batch in image_batches(split.retain_train, cfg, ctx):
            yield retain_batch, next(forget)

    def loss(model: nn.Module, batch, epoch: int):
        (xr, yr), (xf, yf) = batch
        # Two forward passes: BatchNorm normalises each batch with its own statistics.
        ce = nn.functional.cross_entropy
        ascent = -forget_weight * ce(model(xf), yf)
        if forget_clip is None:
            return ce(model(xr), yr) + ascent
        grads = torch.autograd.grad(ascent, params, allow_unused=True)
        # A surrogate whose gradient is the clipped ascent gradient plus the descent gradient.
        surrogate = sum((g.detach() * p).sum() for g, p in zip(clipped(grads, forget_clip), params)
                        if g is not None)
        return ce(model(xr), yr) + surrogate

    return run_epochs(model, cfg, ctx, epoch_batches, loss)
