"""The training loop every gradient-based method shares; a method supplies only its loss.

Options every gradient method reads from its :class:`~illusion.config.MethodConfig`:

- ``weight_decay`` (5e-4): of the SGD optimiser;
- ``clip`` (None): bound on the norm of every step's whole gradient (the authors clip RL, SalUn
  and NegGrad+ under CMF only);
- ``lr_decay_epochs`` ([]) and ``lr_decay_factor`` (0.1): the LR is multiplied by the factor
  once for every listed (0-based) epoch the run has reached (SCRUB's [3, 5, 9]; SalUn + CMF's
  ``StepLR(3, 0.2)`` is [3] with 0.2 in a 4-epoch run).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..config import MethodConfig
from ..data import Split, batches
from ..train import check_run_result, check_step_loss
from . import Context


def sgd(params: Iterable[nn.Parameter], cfg: MethodConfig, nesterov: bool = True) -> torch.optim.SGD:
    """The paper's unlearning optimiser: SGD, Nesterov momentum 0.9, weight decay 5e-4."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=nesterov,
                           weight_decay=cfg.option("weight_decay", 5e-4))


def image_batches(split: Split, cfg: MethodConfig, ctx: Context, batch_size: int | None = None):
    """Shuffled, augmented (as the context says) mini-batches of one split."""
    return batches(split, batch_size or cfg.batch_size, ctx.generator,
                   padding=ctx.crop_padding, flip=ctx.flip)


def concat(*splits: Split) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def decayed_lr(cfg: MethodConfig, epoch: int, lr: float | None = None) -> float:
    """``lr`` (default ``cfg.lr``) after the decays of ``lr_decay_epochs`` reached by ``epoch``."""
    decays = sum(epoch >= d for d in cfg.option("lr_decay_epochs", ()))
    return (cfg.lr if lr is None else lr) * float(cfg.option("lr_decay_factor", 0.1)) ** decays


def run_epochs(model: nn.Module, cfg: MethodConfig, ctx: Context,
               epoch_batches: Callable[[int], Iterable], loss: Callable[..., torch.Tensor],
               optimizer: torch.optim.Optimizer | None = None,
               mask: dict[str, torch.Tensor] | None = None, epochs: int | None = None) -> nn.Module:
    """``epochs`` (default ``cfg.epochs``) epochs of ``loss(model, batch, epoch)`` minimised by
    SGD (or ``optimizer``), calling the context's hooks. ``mask`` multiplies gradients by name
    (SalUn); the options of the module docstring set the LR decay and the gradient clip. The
    LR of epoch e is ``decayed_lr`` of the LR the optimiser had when the run started (a method
    that changes it between epochs, as UNSIR's phases do, sets it in ``epoch_batches``)."""
    params = ctx.parameters(model)
    optimizer = optimizer or sgd(params, cfg)
    named = {id(p): n for n, p in model.named_parameters()}
    clip = cfg.option("clip")
    decays = bool(cfg.option("lr_decay_epochs"))
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    step = 0
    for epoch in range(cfg.epochs if epochs is None else epochs):
        ctx.train_mode(model)
        ctx.on_epoch_start(model, epoch)
        if decays:
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = decayed_lr(cfg, epoch, lr)
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
