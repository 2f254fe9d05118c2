"""ℓ1-sparse unlearning (Jia et al., "Model sparsity can simplify machine unlearning"):
fine-tune on D_r with an ℓ1 penalty on every trained parameter. The penalty weight decays
linearly from ``alpha`` at the first step to 0 at the last, so the model is pushed towards
sparsity early and left to recover retain accuracy late."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register
from ._loop import image_batches, run_epochs


def l1_norm(params) -> torch.Tensor:
    """Sum of absolute values of all ``params`` (one reduction per tensor)."""
    return sum(p.abs().sum() for p in params)


@register("l1_sparse", baseline=True, options=("alpha",))
def l1_sparse(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    alpha = float(cfg.option("alpha", 2e-4))
    if alpha < 0:
        raise ValueError(f"l1_sparse needs alpha >= 0, got {alpha}")
    params = ctx.parameters(model)
    total_steps = max(1, cfg.epochs * math.ceil(len(split.retain_train) / cfg.batch_size))
    step = 0

    def loss(model: nn.Module, batch, epoch: int) -> torch.Tensor:
        nonlocal step
        x, y = batch
        weight = alpha * (1 - step / total_steps)  # alpha at the first step, -> 0 at the end
        step += 1
        return nn.functional.cross_entropy(model(x), y) + weight * l1_norm(params)

    return run_epochs(model, cfg, ctx, lambda epoch: image_batches(split.retain_train, cfg, ctx),
                      loss)
