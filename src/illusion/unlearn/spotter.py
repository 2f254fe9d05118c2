"""Spotter (Ha, Park & Yoon, "Unlearning's Blind Spots", ICML 2026, arXiv 2506.01318): a
defence built against the prototypical attack (:func:`illusion.attacks.prototype_attack`),
which writes the mean feature of a few forget images into the classifier. Spotter trains the
Original model on the forget images alone, with no retain data:

- a *masked teacher*: the frozen starting model's softmax with every forget class's
  probability set to 0 and the rest renormalised (the reference of OU@ε,
  :func:`~illusion.over_unlearning.masked_softmax`), distilled into the
  student (temperature 1, no T² factor) on the clean forget images and on one adversarial copy
  of each;
- a *dispersion* loss on the student's penultimate features of the clean forget batch
  (:func:`dispersion`): the mean cosine similarity of pairs of the same class, so the forget
  features no longer gather around a prototype the attack could recover.

Per batch: ``L = λ₁·KL(p̃(x)‖q(x)) + (1-λ₁)·KL(p̃(x_adv)‖q(x_adv)) + λ₂·L_disp``, q the
student's softmax, each KL summed over classes and averaged over the batch (terms where p̃ is
0 add nothing). The adversarial copies are made once, before training, by
:func:`illusion.attacks.targeted_pgd` against the frozen starting model (each image moved
towards its most likely wrong class); the clean and adversarial batches are shuffled every
epoch, each in its own order (the two KL terms are separate). No augmentation. The model
trains with every BatchNorm module in eval mode: running statistics never change, the affine
parameters still train.

Options (defaults from the authors' code): ``clean_weight`` λ₁ (0.7), ``dispersion_weight``
λ₂ (1.0), and the PGD settings on the [0, 1] pixel scale, ``epsilon`` (0.03), ``pgd_step``
(0.01) and ``pgd_steps`` (3). The optimiser is SGD with plain (not Nesterov) momentum 0.9 and
weight decay 5e-4, for 10 epochs of batch 128 without a scheduler, as in the authors' code.

The teacher is ``ctx.teacher`` when the context names one (classifier-only: the Original, its
starting model having a zeroed classifier), else a frozen copy of the starting model; the
adversarial copies are made against the same teacher, so they are always the Original's.
This is an implementation from the paper and the facts of its code, not a copy of that code.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import nn

from ..attacks import targeted_pgd
from ..config import MethodConfig
from ..data import ForgetSplit, Split, batches
from ..device import extract
from ..over_unlearning import masked_softmax
from . import Context, register
from ._loop import run_epochs, sgd


def masked_kl(student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ softmax(student_logits)), summed over classes, averaged over the batch;
    a class where the target is 0 contributes 0."""
    log_student = nn.functional.log_softmax(student_logits.float(), dim=1)
    per_sample = (torch.xlogy(target, target) - target * log_student).sum(1)
    return per_sample.mean()


def dispersion(features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean cosine similarity over ordered pairs (i, j), i ≠ j, of the same label (the
    count clamped to at least 1, so a batch without such pairs gives 0)."""
    normed = nn.functional.normalize(features.float().flatten(1), dim=1)
    similarity = normed @ normed.T
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    return (similarity * same).sum() / same.sum().clamp_min(1)


def _freeze_batch_norm(ctx: Context) -> Context:
    """``ctx`` whose train mode is the given one with every BatchNorm module then put back in
    eval mode (running statistics kept; affine parameters still train)."""
    def train_mode(model: nn.Module) -> None:
        ctx.train_mode(model)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    frozen = dataclasses.replace(ctx, train_mode=train_mode)
    frozen.generator = ctx.generator  # replace() seeds a fresh one; keep the run's stream
    return frozen


def _settings(cfg: MethodConfig) -> tuple[float, float, float, float, int]:
    clean_weight = float(cfg.option("clean_weight", 0.7))
    dispersion_weight = float(cfg.option("dispersion_weight", 1.0))
    epsilon, step = float(cfg.option("epsilon", 0.03)), float(cfg.option("pgd_step", 0.01))
    steps = cfg.option("pgd_steps", 3)
    if not 0 <= clean_weight <= 1:
        raise ValueError(f"spotter clean_weight must be in [0, 1], got {clean_weight}")
    if not (math.isfinite(dispersion_weight) and dispersion_weight >= 0):
        raise ValueError(f"spotter dispersion_weight must be a finite number >= 0, "
                         f"got {dispersion_weight}")
    for name, value in (("epsilon", epsilon), ("pgd_step", step)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"spotter {name} must be a finite number >= 0, got {value}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"spotter pgd_steps must be an integer >= 0, got {steps}")
    return clean_weight, dispersion_weight, epsilon, step, int(steps)


@register("spotter", image_only=True, defence=True,
          options=("clean_weight", "dispersion_weight", "epsilon", "pgd_step", "pgd_steps"))
def spotter(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    clean_weight, dispersion_weight, epsilon, step, steps = _settings(cfg)
    forget = split.forget_train
    if len(forget) == 0:
        raise ValueError("spotter trains on the forget images; this split has none")
    teacher = copy.deepcopy(ctx.teacher if ctx.teacher is not None else model).eval()
    teacher.requires_grad_(False)

    # Once, before training: the adversarial copies and the masked teacher of every image
    # (the teacher is frozen and the images are not augmented, so its outputs never change).
    adversarial, _ = targeted_pgd(teacher, forget.x, forget.y, split.pixels, epsilon, step,
                                  steps, generator=ctx.generator)
    classes = split.forget_set.classes
    clean_target = masked_softmax(extract(teacher, forget.x, teacher), classes, torch.float32)
    adversarial_target = masked_softmax(extract(teacher, adversarial, teacher), classes,
                                        torch.float32)
    index = torch.arange(len(forget), device=forget.y.device)

    def epoch_batches(epoch: int):
        clean = batches(Split(forget.x, index), cfg.batch_size, ctx.generator)
        adv = batches(Split(adversarial, index), cfg.batch_size, ctx.generator)
        yield from zip(clean, adv)

    def loss(model: nn.Module, batch, epoch: int) -> torch.Tensor:
        (x, i), (x_adv, j) = batch
        features = model.features(x)
        total = (clean_weight * masked_kl(model.fc(features), clean_target[i])
                 + (1 - clean_weight) * masked_kl(model(x_adv), adversarial_target[j]))
        if dispersion_weight:
            total = total + dispersion_weight * dispersion(features, forget.y[i])
        return total

    return run_epochs(model, cfg, _freeze_batch_norm(ctx), epoch_batches, loss,
                      optimizer=sgd(ctx.parameters(model), cfg, nesterov=False))
