"""Relearning attacks: does a little fine-tuning bring the forgotten classes back?

The paper's motivation (claim 4): output-level success can hide information that simple
fine-tuning recovers. Each attack starts from a *copy* of an unlearned model (the input is
never modified), takes a budget of optimiser steps and returns a tidy curve, one row per
evaluation (every ``eval_every`` steps, step 0 and the last step included)::

    attack  step  forget_accuracy  retain_accuracy      (percent, on test forget / test retain)

- :func:`retain_finetune`: fine-tune the whole model on D_r only. Any forget accuracy it
  recovers was never removed from the weights.
- :func:`few_shot_relearn`: fine-tune on a handful of forget images per forget class mixed
  into every retain batch (the standard relearning attack).
- :func:`head_only`: re-train only the last linear layer on cached features of the whole
  training split, true labels; the cheapest attack, and the one feature-classifier
  misalignment predicts to succeed.

:func:`recovery_auc` reduces a curve to one number: the mean forget accuracy over the budget.
Fine-tuning uses SGD with momentum 0.9, no weight decay and no augmentation. An attack whose
loss or weights become NaN or infinite raises :class:`~illusion.train.DivergedError`.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import ForgetSplit, Split, batches
from .device import autocast
from .heads import Features, extract
from .train import SMALLER_LR, accuracy, check_finite, check_step_loss

CURVE_COLUMNS = ("attack", "step", "forget_accuracy", "retain_accuracy")


def _check_budget(steps: int, eval_every: int, lr: float, batch_size: int) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _endless(split: Split, batch_size: int, generator: torch.Generator) -> Iterator:
    """Shuffled mini-batches of ``split`` (all of ``batch_size`` when the split is at least
    that large), reshuffled at every pass, forever."""
    if len(split) == 0:
        raise ValueError("cannot draw batches from an empty split")
    while True:
        yield from batches(split, batch_size, generator, drop_last=True)


def _curve(name: str, model: nn.Module, lr: float, steps: int, eval_every: int,
           step: Callable[[], torch.Tensor], evaluate: Callable[[], tuple[float, float]]
           ) -> pd.DataFrame:
    """Run ``steps`` optimiser steps of ``model`` (each returns its loss), evaluating at step 0,
    every ``eval_every`` and the end; a diverged attack raises instead of recording numbers."""
    rows = []

    def record(i: int) -> None:
        check_finite(model, f"relearning attack {name!r} diverged: at step {i} (lr {lr:g}) the "
                            f"model", SMALLER_LR)
        forget, retain = evaluate()
        rows.append({"attack": name, "step": i, "forget_accuracy": forget,
                     "retain_accuracy": retain})

    record(0)
    for i in range(1, steps + 1):
        check_step_loss(step(), lr, i, f"relearning attack {name!r}")
        if i % eval_every == 0 or i == steps:
            record(i)
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def clone(model: nn.Module) -> nn.Module:
    """An independent copy of ``model``. A TorchScript module goes through a save/load round
    trip, because its deepcopy holds non-leaf parameters that no optimiser accepts."""
    if isinstance(model, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # TorchScript's deprecation notice is not ours
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(model, buffer)
            buffer.seek(0)
            return torch.jit.load(buffer, map_location=next(model.parameters()).device)
    return copy.deepcopy(model)


def _finetune_curve(name: str, model: nn.Module, split: ForgetSplit, next_batch, steps: int,
                    lr: float, eval_every: int) -> pd.DataFrame:
    """Fine-tune a copy of ``model`` (all parameters, train mode) on ``next_batch()``."""
    model = clone(model)
    device = next(model.parameters()).device
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step() -> torch.Tensor:
        x, y = next_batch()
        model.train()
        with autocast(device):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def evaluate() -> tuple[float, float]:
        return accuracy(model, split.forget_test), accuracy(model, split.retain_test)

    return _curve(name, model, lr, steps, eval_every, step, evaluate)


def retain_finetune(model: nn.Module, split: ForgetSplit, steps: int = 100, lr: float = 0.01,
                    batch_size: int = 128, eval_every: int = 10, seed: int = 1234) -> pd.DataFrame:
    """Fine-tune the whole model on D_r only (SGD, momentum 0.9) for ``steps`` steps."""
    _check_budget(steps, eval_every, lr, batch_size)
    stream = _endless(split.retain_train, batch_size, torch.Generator().manual_seed(seed))
    return _finetune_curve("retain_finetune", model, split, lambda: next(stream), steps, lr,
                           eval_every)


def draw_shots(forget: Split, classes: tuple[int, ...], shots: int,
               generator: torch.Generator) -> Split:
    """``shots`` random images of each class in ``classes`` from ``forget`` (seeded)."""
    picked = []
    for c in classes:  # one draw per forget class, not per sample
        pool = torch.nonzero(forget.y == c).flatten()
        if shots > len(pool):
            raise ValueError(f"asked for {shots} shots of class {c}, the forget set has only "
                             f"{len(pool)} images of it")
        order = torch.randperm(len(pool), generator=generator).to(pool.device)
        picked.append(pool[order[:shots]])
    idx = torch.cat(picked)
    return Split(forget.x[idx], forget.y[idx])


def few_shot_relearn(model: nn.Module, split: ForgetSplit, shots: int = 5, steps: int = 100,
                     lr: float = 0.01, batch_size: int = 128, eval_every: int = 10,
                     seed: int = 1234) -> pd.DataFrame:
    """Fine-tune on ``shots`` forget images per forget class plus retain data.

    The shots are drawn once (seeded) from D_f; every step's batch is *all* the shots
    concatenated with the next retain batch of ``batch_size`` images, so the attacker sees
    few forget examples, often, while the retain data keeps the model from collapsing."""
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    _check_budget(steps, eval_every, lr, batch_size)
    generator = torch.Generator().manual_seed(seed)
    few = draw_shots(split.forget_train, split.forget_set.classes, shots, generator)
    stream = _endless(split.retain_train, batch_size, generator)

    def next_batch():
        x, y = next(stream)
        return torch.cat([few.x, x]), torch.cat([few.y, y])

    return _finetune_curve("few_shot", model, split, next_batch, steps, lr, eval_every)


@torch.no_grad()
def trainable_head(fc: nn.Module) -> tuple[nn.Linear, Callable[[torch.Tensor], torch.Tensor]]:
    """A fresh ``nn.Linear`` computing what ``fc`` computes, and the map from features to its
    input. The model itself is never touched, and any ``fc`` exposing ``weight`` (and
    ``bias``) works, TorchScript included. A CMF head (``illusion.cmf.CMFHead``: logits
    tau <centred(f), w_c>) becomes a linear layer tau W (zero bias) on ``fc.centred(f)``."""
    weight, bias = fc.weight.detach(), getattr(fc, "bias", None)
    inputs = getattr(fc, "centred", None)
    if inputs is not None:
        weight = weight * fc.tau
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None or inputs is not None)
    head = head.to(weight.device)
    head.weight.copy_(weight)
    if head.bias is not None:
        head.bias.copy_(bias if bias is not None else torch.zeros_like(head.bias))
    return head, (lambda f: inputs(f).detach()) if inputs is not None else (lambda f: f)


def head_only(model: nn.Module, split: ForgetSplit, train: Split | None = None,
              steps: int = 100, lr: float = 0.01, batch_size: int = 128, eval_every: int = 10,
              seed: int = 1234, features: Features | None = None) -> pd.DataFrame:
    """Re-train only the last linear layer, starting from the model's own ``fc``, on the
    frozen features of ``train`` (default: D_f ∪ D_r, the whole training split) with true
    labels. Features are extracted once (eval mode), so each step costs one linear layer;
    ``features`` (the model's :class:`~illusion.heads.Features` of the training and test
    splits, e.g. from ``Experiment.features``) skips even that extraction.
    On a CMF head the trained layer starts as the CMF classifier (see :func:`trainable_head`)."""
    _check_budget(steps, eval_every, lr, batch_size)
    head, inputs = trainable_head(model.fc)
    if features is not None:
        is_forget = torch.isin(features.test_y, torch.tensor(split.forget_set.classes,
                                                             device=features.test_y.device))
        cached = Split(inputs(features.train), features.train_y)
        tests = [(inputs(features.test[m]), features.test_y[m]) for m in (is_forget, ~is_forget)]
    else:
        if train is None:
            train = Split(torch.cat([split.forget_train.x, split.retain_train.x]),
                          torch.cat([split.forget_train.y, split.retain_train.y]))
        cached = Split(inputs(extract(model, train)[0]), train.y)
        tests = [(inputs(extract(model, s)[0]), s.y) for s in (split.forget_test, split.retain_test)]
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    stream = _endless(cached, batch_size, torch.Generator().manual_seed(seed))

    def step() -> torch.Tensor:
        x, y = next(stream)
        loss = nn.functional.cross_entropy(head(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    @torch.no_grad()
    def evaluate() -> tuple[float, float]:
        acc = lambda f, y: (100.0 * (head(f).argmax(1) == y).double().mean().item()  # noqa: E731
                            if len(y) else float("nan"))
        return tuple(acc(f, y) for f, y in tests)

    return _curve("head_only", head, lr, steps, eval_every, step, evaluate)


ATTACKS: dict[str, Callable[..., pd.DataFrame]] = {
    "retain_finetune": retain_finetune,
    "few_shot": few_shot_relearn,
    "head_only": head_only,
}


def get_attack(name: str) -> Callable[..., pd.DataFrame]:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid choices: {sorted(ATTACKS)}")
    return ATTACKS[name]


def run_attacks(model: nn.Module, split: ForgetSplit, names=tuple(ATTACKS), steps: int = 100,
                lr: float = 0.01, batch_size: int = 128, eval_every: int = 10, seed: int = 1234,
                shots: int = 5, train: Split | None = None,
                features: Features | None = None) -> pd.DataFrame:
    """The curves of several attacks with one budget, stacked (``shots`` goes to
    ``few_shot``, ``train`` and ``features`` to ``head_only``)."""
    curves = []
    for name in names:
        attack = get_attack(name)
        extra = {few_shot_relearn: {"shots": shots},
                 head_only: {"train": train, "features": features}}.get(attack, {})
        curves.append(attack(model, split, steps=steps, lr=lr, batch_size=batch_size,
                             eval_every=eval_every, seed=seed, **extra))
    return pd.concat(curves, ignore_index=True)


def recovery_auc(curve: pd.DataFrame) -> float:
    """Normalised area under forget accuracy vs step (trapezoid rule divided by the step
    span): the mean forget accuracy, in percent, over the attack's budget. A curve with a
    single evaluation returns that accuracy."""
    if len(curve) == 0:
        raise ValueError("recovery_auc needs a curve with at least one row")
    if "attack" in curve and curve["attack"].nunique() > 1:
        raise ValueError(f"recovery_auc takes one attack's curve, got "
                         f"{sorted(curve['attack'].unique())}; use recovery_table for several")
    ordered = curve.sort_values("step")
    steps = ordered["step"].to_numpy(float)
    forget = ordered["forget_accuracy"].to_numpy(float)
    span = steps[-1] - steps[0]
    if span == 0:
        return float(forget.mean())
    return float(np.trapezoid(forget, steps) / span)


def recovery_table(curves: pd.DataFrame, by=("attack",)) -> pd.DataFrame:
    """One AUC per group of a stacked curve table (default: per attack), column ``auc``."""
    by = list(by)
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))), "auc": recovery_auc(group)}
            for key, group in curves.groupby(by, sort=False)]
    return pd.DataFrame(rows, columns=[*by, "auc"])
