"""UNSIR (Tarun et al., "Fast yet effective machine unlearning"): impair with
error-maximising noise, then repair on retained data, as in the authors' code
(``unlearn/tarun.py``).

1. Noise: for each forget class, a batch of ``batch_size`` inputs in the model's input space is
   learned with Adam (``noise_lr`` 0.1, ``noise_steps`` 40 = the authors' 5 x 8) to *maximise*
   the model's CE for that class, with an energy penalty: loss = -CE(noise, class) + 0.1 ·
   mean_i ‖x_i‖². The model is in eval mode and receives no gradient.
2. Impair: ``epochs`` epochs of CE on the noise (labelled as its forget class, repeated
   ``noise_repeats`` times, 20 as in the authors' code) shuffled together with a retain subset
   of ``retain_per_class`` images of every retain class, with Adam at ``impair_lr`` (default:
   twice ``lr``, the authors' CIFAR-10 ratio, 1e-4 / 5e-5).
3. Repair: ``epochs`` epochs of CE on the retain subset alone, with a fresh Adam at ``lr``.

The noise is never augmented; the retain subset is augmented once, when it is drawn (the
authors materialise it through the training transform), and then kept fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit, Split, augment, batches, per_class_sample
from ..device import evaluating
from . import Context, register
from ._loop import concat, run_epochs


def error_maximising_noise(model: nn.Module, shape: tuple[int, ...], label: int, steps: int,
                           lr: float, generator: torch.Generator) -> torch.Tensor:
    """A batch of inputs of ``shape`` that the model finds maximally unlike class ``label``."""
    device = next(model.parameters()).device
    noise = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([noise], lr=lr)
    target = torch.full((shape[0],), label, dtype=torch.long, device=device)
    with evaluating(model):  # BatchNorm statistics must not see the noise
        for _ in range(steps):
            loss = (-nn.functional.cross_entropy(model(noise), target)
                    + 0.1 * noise.square().flatten(1).sum(1).mean())
            (grad,) = torch.autograd.grad(loss, [noise])  # no gradient reaches the model
            noise.grad = grad
            optimizer.step()
    return noise.detach()


@register("unsir", baseline=True, image_only=True,
          options=("noise_lr", "noise_steps", "retain_per_class", "noise_repeats", "impair_lr"))
def unsir(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    steps, noise_lr = int(cfg.option("noise_steps", 40)), float(cfg.option("noise_lr", 0.1))
    per_class = int(cfg.option("retain_per_class", 1000))
    repeats = int(cfg.option("noise_repeats", 20))
    impair_lr = float(cfg.option("impair_lr", 2 * cfg.lr))
    if per_class < 1 or repeats < 1 or steps < 0:
        raise ValueError(f"unsir needs retain_per_class >= 1, noise_repeats >= 1 and "
                         f"noise_steps >= 0; got {per_class}, {repeats}, {steps}")
    shape = (cfg.batch_size, *split.retain_train.x.shape[1:])
    noises = []
    for c in split.forget_set.classes:
        x = error_maximising_noise(model, shape, c, steps, noise_lr, ctx.generator)
        y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
        noises.append(Split(x.repeat(repeats, *[1] * (x.dim() - 1)), y.repeat(repeats)))
    keep = per_class_sample(split.retain_train.y, per_class, ctx.generator)
    retain = Split(split.retain_train.x[keep], split.retain_train.y[keep])
    if ctx.crop_padding or ctx.flip:
        retain = Split(augment(retain.x, ctx.crop_padding, ctx.flip, ctx.generator), retain.y)
    impair = concat(*noises, retain)
    optimizer = torch.optim.Adam(ctx.parameters(model), lr=impair_lr)

    def epoch_batches(epoch: int):
        if epoch == cfg.epochs:  # the repair phase starts with a fresh Adam at the repair LR
            optimizer.state.clear()
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr
        return batches(impair if epoch < cfg.epochs else retain, cfg.batch_size, ctx.generator)

    def loss(model: nn.Module, batch, epoch: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    return run_epochs(model, cfg, ctx, epoch_batches, loss, optimizer=optimizer,
                      epochs=2 * cfg.epochs)
