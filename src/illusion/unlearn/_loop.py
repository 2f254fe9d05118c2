"""The training loop every gradient-based method shares; a method supplies only its loss."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..config import MethodConfig
from ..data import Split, batches
from ..train import check_run_result, check_step_loss
from . import Context


def sgd(params: Iterable[nn.Parameter], cfg: MethodConfig) -> torch.optim.SGD:
    """The paper's unlearning optimiser: SGD, Nesterov momentum 0.9, weight decay 5e-4."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                           weight_decay=cfg.option("weight_decay", 5e-4))


def image_batches(split: Split, cfg: MethodConfig, ctx: Context, batch_size: int | None = None):
    """Shuffled, augmented (as the context says) mini-batches of one split."""
    return batches(split, batch_size or cfg.batch_size, ctx.generator,
                   padding=ctx.crop_padding, flip=ctx.flip)


def concat(*splits: Split) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def run_epochs(model: nn.Module, cfg: MethodConfig, ctx: Context,
               epoch_batches: Callable[[int], Iterable], loss: Callable[..., torch.Tensor],
               optimizer: torch.optim.Optimizer | None = None,
               mask: dict[str, torch.Tensor] | None = None, clip: float | None = None) -> nn.Module:
    """``cfg.epochs`` epochs of ``loss(model, batch, epoch)`` minimised by SGD (or
    ``optimizer``), calling the context's hooks. ``mask`` multiplies gradients by name
    (SalUn), ``clip`` (or the context's) bounds the gradient norm."""
    params = ctx.parameters(model)
    optimizer = optimizer or sgd(params, cfg)
    named = {id(p): n for n, p in model.named_parameters()}
    clip = clip if clip is not None else ctx.clip
    step = 0
    for epoch in range(cfg.epochs):
        ctx.train_mode(model)
        ctx.on_epoch_start(model, epoch)
        for batch in epoch_batches(epoch):
            value = loss(model, batch, epoch)
            if value is None:  # a method may skip a batch (e.g. SCRUB's max-steps schedule)
                continue
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if mask is not None:
                for p in params:
                    if p.grad is not None and named[id(p)] in mask:
                        p.grad.mul_(mask[named[id(p)]])
            if clip is not None:
                nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            step += 1
            check_step_loss(value, cfg.lr, step)
            ctx.on_step(model, step)
        ctx.on_epoch_end(model, epoch)
    check_run_result(model, step, cfg)
    return model
