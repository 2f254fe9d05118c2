"""SCRUB (Kurmanji et al., "Towards unbounded machine unlearning"): a student, starting from
the Original model, is pushed away from the frozen Original (the teacher) on D_f and kept
close to it, and correct, on D_r.

Every epoch: while ``epoch < max_epochs``, max-steps over D_f (loss = -KL); then min-steps over
D_r (loss = gamma * CE + alpha * KL). KL is the distillation loss of the SCRUB code
(``DistillKL``): the divergence between teacher and student softmaxes at temperature T,
scaled by T² and averaged over the batch. The optimiser is SGD with plain (not Nesterov)
momentum 0.9, as in the SCRUB code the authors use. The learning rate is multiplied by 0.1
once for every entry of ``lr_decay_epochs`` the (0-based) epoch has reached (the SCRUB code's
``epoch > decay`` with 1-based epochs; the shared loop applies it), so the paper's [3, 5, 9]
never fires in 3 epochs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register
from ._loop import image_batches, run_epochs, sgd


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """T² · KL(p_teacher ‖ p_student), both softmaxes at temperature T, batch mean."""
    log_student = nn.functional.log_softmax(student_logits / temperature, dim=1)
    log_teacher = nn.functional.log_softmax(teacher_logits / temperature, dim=1)
    return nn.functional.kl_div(log_student, log_teacher, reduction="batchmean",
                                log_target=True) * temperature ** 2


@register("scrub", baseline=True, options=("temperature", "max_epochs", "alpha", "gamma"))
def scrub(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    temperature = float(cfg.option("temperature", 4.0))
    max_epochs = int(cfg.option("max_epochs", 2))
    alpha, gamma = float(cfg.option("alpha", 0.001)), float(cfg.option("gamma", 0.99))
    if temperature <= 0:
        raise ValueError(f"scrub temperature must be positive, got {temperature}")

    teacher = copy.deepcopy(ctx.teacher if ctx.teacher is not None else model).eval()
    teacher.requires_grad_(False)
    optimizer = sgd(ctx.parameters(model), cfg, nesterov=False)

    def epoch_batches(epoch: int):
        if epoch < max_epochs:
            for batch in image_batches(split.forget_train, cfg, ctx):
                yield "max", batch
        for batch in image_batches(split.retain_train, cfg, ctx):
            yield "min", batch

    def loss(model: nn.Module, tagged, epoch: int) -> torch.Tensor:
        phase, (x, y) = tagged
        logits = model(x)
        with torch.no_grad():
            teacher_logits = teacher(x)
        kl = distill_kl(logits, teacher_logits, temperature)
        if phase == "max":
            return -kl
        return gamma * nn.functional.cross_entropy(logits, y) + alpha * kl

    return run_epochs(model, cfg, ctx, epoch_batches, loss, optimizer=optimizer)
