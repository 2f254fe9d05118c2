"""SalUn (Fan et al., "SalUn: Empowering machine unlearning via gradient-based weight
saliency"): Random Label restricted to the salient weights.

The saliency mask keeps the ``sparsity`` share (0.5) of the model's weights with the largest
|∂CE(D_f)/∂θ|, in one global ranking over all of them, as in the authors' code: weights the
context does not train (a frozen backbone) rank with gradient 0, so when only the last layer
trains, every one of its weights is kept. The mask is computed on the starting model, which is
left exactly as it was. RL then runs with every gradient multiplied by the mask.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit, Split, batches
from ..device import evaluating
from . import Context, register
from ._loop import concat, image_batches, run_epochs
from .rl import relabelled_loss


def forget_gradients(model: nn.Module, forget: Split, params: list[nn.Parameter],
                     batch_size: int) -> list[torch.Tensor]:
    """∂ (summed CE over ``forget``) / ∂ params, without touching the model: eval mode (BN
    statistics stay), ``torch.autograd.grad`` (no ``.grad`` is written), training mode
    restored."""
    total = [torch.zeros_like(p) for p in params]
    with evaluating(model):
        for x, y in batches(forget, batch_size, torch.Generator(), shuffle=False):
            loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for t, g in zip(total, grads):
                if g is not None:
                    t.add_(g)
    return total


def parameter_count(model: nn.Module) -> int:
    """Weights of the whole network, trained or not. A model on cached features (the
    classifier-only fast path) holds only the last layer and says how many its network has."""
    return getattr(model, "network_parameter_count", None) or sum(p.numel() for p in model.parameters())


def saliency_mask(model: nn.Module, split: ForgetSplit, sparsity: float, ctx: Context,
                  batch_size: int = 128) -> dict[str, torch.Tensor]:
    """{parameter name: 0/1 float mask} over ``ctx.parameters(model)``: ones on the trained
    weights among the ``round(sparsity * N)`` weights of the whole network (N of them, untrained
    ones with gradient 0) with the largest forget-gradient magnitude."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"salun sparsity must lie in [0, 1], got {sparsity}")
    if len(split.forget_train) == 0:
        raise ValueError("salun needs forget samples to rank weights; D_f is empty")
    params = ctx.parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    grads = forget_gradients(model, split.forget_train, params, batch_size)
    magnitude = torch.cat([g.abs().flatten() for g in grads])
    keep = min(round(sparsity * parameter_count(model)), magnitude.numel())
    flat = torch.zeros_like(magnitude)
    flat[torch.topk(magnitude, keep, sorted=False).indices] = 1.0
    masks = flat.split([p.numel() for p in params])
    return {names[id(p)]: m.view_as(p).to(p.dtype) for p, m in zip(params, masks)}


@register("salun", baseline=True, options=("sparsity",))
def salun(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    mask = saliency_mask(model, split, float(cfg.option("sparsity", 0.5)), ctx, cfg.batch_size)
    mixed = concat(split.forget_train, split.retain_train)
    return run_epochs(model, cfg, ctx, lambda epoch: image_batches(mixed, cfg, ctx),
                      relabelled_loss(split, ctx), mask=mask)
