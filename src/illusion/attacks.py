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

Two attacks no edit of the classifier can stop (a defender may zero the forget rows and set
their biases to -1e4, which a few SGD steps from the unlearned head never undo):

- ``few_shot_fresh`` / ``head_only_fresh``: the same attacks from a head whose forget rows and
  biases are first reset to the mean of the retain rows (:func:`fresh_head`);
- :func:`prototype_attack` (Ha, Park & Yoon, "Unlearning's Blind Spots", ICML 2026): no
  training at all; the mean feature of K forget images is written into the forget rows.

:func:`targeted_pgd` perturbs images towards their most likely wrong class (the over-unlearning
metric of :mod:`illusion.over_unlearning` and the Spotter defence read it).
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from functools import partial
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import ForgetSplit, Pixels, Split, batches
from .device import autocast, evaluating
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
                     seed: int = 1234, fresh: bool = False) -> pd.DataFrame:
    """Fine-tune on ``shots`` forget images per forget class plus retain data.

    The shots are drawn once (seeded) from D_f; every step's batch is *all* the shots
    concatenated with the next retain batch of ``batch_size`` images, so the attacker sees
    few forget examples, often, while the retain data keeps the model from collapsing.
    ``fresh``: start from :func:`fresh_head` of the model (attack ``few_shot_fresh``)."""
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    _check_budget(steps, eval_every, lr, batch_size)
    generator = torch.Generator().manual_seed(seed)
    few = draw_shots(split.forget_train, split.forget_set.classes, shots, generator)
    stream = _endless(split.retain_train, batch_size, generator)

    def next_batch():
        x, y = next(stream)
        return torch.cat([few.x, x]), torch.cat([few.y, y])

    if fresh:
        model = fresh_head(model, split.forget_set.classes)
    return _finetune_curve("few_shot_fresh" if fresh else "few_shot", model, split, next_batch,
                           steps, lr, eval_every)


@torch.no_grad()
def reset_rows(weight: torch.Tensor, bias: torch.Tensor | None, classes) -> None:
    """Set the rows (and biases) of ``classes`` to the mean of the other rows, in place: what
    a forget row would be with no knowledge of its class, and no trick (zero row, -1e4 bias)
    left in it. Where the other rows share one norm (a CMF head's class means), the new rows
    keep it."""
    forget = torch.zeros(weight.shape[0], dtype=torch.bool, device=weight.device)
    forget[list(classes)] = True
    mean, norms = weight[~forget].mean(0), weight[~forget].norm(dim=1)
    if torch.allclose(norms, norms[:1].expand_as(norms), rtol=1e-4):  # a cosine head's rows
        mean = nn.functional.normalize(mean, dim=0) * norms[0]
    weight[forget] = mean
    if bias is not None:
        bias[forget] = bias[~forget].mean()


def fresh_head(model: nn.Module, classes) -> nn.Module:
    """A copy of ``model`` whose last layer's forget rows and biases are reset to the mean of
    its retain rows (:func:`reset_rows`); the model itself is untouched."""
    model = clone(model)
    reset_rows(model.fc.weight, getattr(model.fc, "bias", None), classes)
    return model


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


def _test_features(model: nn.Module, split: ForgetSplit, inputs: Callable, features: Features | None
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (head input, label) pairs of the test forget and test retain images: ``inputs`` of
    the cached ``features`` where given, else of features extracted from ``split``."""
    if features is None:
        return [(inputs(extract(model, s)[0]), s.y) for s in (split.forget_test, split.retain_test)]
    is_forget = torch.isin(features.test_y, torch.tensor(split.forget_set.classes,
                                                         device=features.test_y.device))
    return [(inputs(features.test[m]), features.test_y[m]) for m in (is_forget, ~is_forget)]


def head_only(model: nn.Module, split: ForgetSplit, train: Split | None = None,
              steps: int = 100, lr: float = 0.01, batch_size: int = 128, eval_every: int = 10,
              seed: int = 1234, features: Features | None = None,
              fresh: bool = False) -> pd.DataFrame:
    """Re-train only the last linear layer, starting from the model's own ``fc``, on the
    frozen features of ``train`` (default: D_f ∪ D_r, the whole training split) with true
    labels. Features are extracted once (eval mode), so each step costs one linear layer;
    ``features`` (the model's :class:`~illusion.heads.Features` of the training and test
    splits, e.g. from ``Experiment.features``) skips even that extraction.
    On a CMF head the trained layer starts as the CMF classifier (see :func:`trainable_head`).
    ``fresh``: its forget rows first reset to the mean of the retain rows (:func:`reset_rows`;
    attack ``head_only_fresh``)."""
    _check_budget(steps, eval_every, lr, batch_size)
    head, inputs = trainable_head(model.fc)
    if fresh:
        reset_rows(head.weight.data, head.bias.data, split.forget_set.classes)
    if features is not None:
        cached = Split(inputs(features.train), features.train_y)
    else:
        if train is None:
            train = Split(torch.cat([split.forget_train.x, split.retain_train.x]),
                          torch.cat([split.forget_train.y, split.retain_train.y]))
        cached = Split(inputs(extract(model, train)[0]), train.y)
    tests = _test_features(model, split, inputs, features)
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

    return _curve("head_only_fresh" if fresh else "head_only", head, lr, steps, eval_every, step,
                  evaluate)


ATTACKS: dict[str, Callable[..., pd.DataFrame]] = {
    "retain_finetune": retain_finetune,
    "few_shot": few_shot_relearn,
    "head_only": head_only,
    "few_shot_fresh": partial(few_shot_relearn, fresh=True),
    "head_only_fresh": partial(head_only, fresh=True),
}
# The relearning attacks from a fresh head (no edit of the classifier survives them).
FRESH_ATTACKS = ("few_shot_fresh", "head_only_fresh")
# The keyword arguments of run_attacks each attack reads besides the common budget.
_EXTRA = {"few_shot": ("shots",), "few_shot_fresh": ("shots",),
          "head_only": ("train", "features"), "head_only_fresh": ("train", "features")}


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
    given = {"shots": shots, "train": train, "features": features}
    for name in names:
        attack = get_attack(name)
        extra = {key: given[key] for key in _EXTRA.get(name, ())}
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


# --------------------------------------------------------------------------------------------
# Training-free: the prototypical relearning attack

PROTOTYPE_FORMS = ("cosine", "l2")
PROTOTYPE_COLUMNS = ("form", "alpha", "shots", "forget_accuracy", "retain_accuracy",
                     "retain_before")
# pp of retain accuracy a prototype attack may cost and still count as recovering the class: a
# prototype row that wins every argmax "recovers" the forget class by breaking the model.
PROTOTYPE_RETAIN_KEPT = 5.0


@torch.no_grad()
def write_prototypes(weight: torch.Tensor, bias: torch.Tensor, prototypes: torch.Tensor,
                     classes, form: str, alpha: float,
                     scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A copy of the linear head (``weight``, ``bias``) with the prototype ``q = scale·p_c``
    (``p_c``: row i of ``prototypes``, unit norm, for class ``classes[i]``) written into each
    forget row, in one of the two forms of the Prototypical Relearning Attack (Ha et al.,
    2026):

    - ``cosine``: ``w_c ← α·q + (1−α)·w_c``, ``b_c ← (1−α)·b_c``;
    - ``l2``: ``w_c ← α·2q + (1−α)·w_c``, ``b_c ← −α·‖q‖² + (1−α)·b_c`` (at α = 1 the logit
      is −‖f − q‖² up to the ‖f‖² every class would share).

    ``scale`` is the norm a row of this head has by construction: 1 for a linear layer, the
    authors' unit prototype; τ for a CMF head, whose rows are unit class means times τ, so
    the prototype is written as one more class mean. We do not rescale a linear head's
    prototype to its retain rows' norm: on ``default`` (rows of norm ~2.2) that made the
    forget row win the argmax of most retain images (retain accuracy 92 → 0-45 % on RL), an
    attack that "recovers" the class by breaking the model."""
    if form not in PROTOTYPE_FORMS:
        raise ValueError(f"unknown prototype form {form!r}; valid choices: {list(PROTOTYPE_FORMS)}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    q = scale * prototypes.to(weight.dtype)
    weight, bias = weight.clone(), bias.clone()
    rows = list(classes)
    if form == "cosine":
        weight[rows] = alpha * q + (1 - alpha) * weight[rows]
        bias[rows] = (1 - alpha) * bias[rows]
    else:
        weight[rows] = alpha * 2 * q + (1 - alpha) * weight[rows]
        bias[rows] = -alpha * (q * q).sum(1) + (1 - alpha) * bias[rows]
    return weight, bias


@torch.no_grad()
def prototype_attack(model: nn.Module, split: ForgetSplit, shots=(1, 5, 10, 50),
                     alphas=(0.5, 1.0), forms=PROTOTYPE_FORMS, draws: int = 5, seed: int = 1234,
                     features: Features | None = None) -> pd.DataFrame:
    """The Prototypical Relearning Attack: no training. For each forget class c, the
    prototype p_c is the mean penultimate feature of ``K`` forget training images (eval mode,
    no augmentation), L2-normalised, in the space the model's head classifies (ẑ for a CMF
    model, whose class-mean rows then take the prototype as their mean), and is written into
    row c of the head (:func:`write_prototypes`). The model is never touched.

    One row per form, α and K of ``shots``: forget and retain accuracy (percent) on the test
    split, the mean over ``draws`` seeded draws of the shots (the K images of a draw are the
    first K of one random order per class, so a larger K extends a smaller one), and the
    model's own retain accuracy before the attack (``retain_before``). ``features`` (the
    model's :class:`~illusion.heads.Features`) skips extracting the test features."""
    classes = split.forget_set.classes
    shots = sorted(int(k) for k in shots)
    if not shots or shots[0] < 1:
        raise ValueError(f"shots must be integers >= 1, got {shots}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    head, inputs = trainable_head(model.fc)
    weight, bias = head.weight.detach(), head.bias.detach()
    scale = float(getattr(model.fc, "tau", 1.0))  # a CMF head's rows: unit means times τ
    pools = []
    for c in classes:
        images = split.forget_train.where(split.forget_train.y == c)
        if shots[-1] > len(images):
            raise ValueError(f"asked for {shots[-1]} shots of class {c}, the forget set has "
                             f"only {len(images)} images of it")
        pools.append(inputs(extract(model, images)[0]).double())
    tests = _test_features(model, split, inputs, features)

    def accuracy_of(w: torch.Tensor, b: torch.Tensor, f: torch.Tensor, y: torch.Tensor) -> float:
        return (100.0 * (f.double() @ w.double().T + b.double()).argmax(1).eq(y).double().mean().item()
                if len(y) else float("nan"))

    retain_before = accuracy_of(weight, bias, *tests[1])
    generator = torch.Generator().manual_seed(seed)
    orders = [[torch.randperm(len(pool), generator=generator).to(pool.device) for pool in pools]
              for _ in range(draws)]
    rows = []
    for form in forms:
        for alpha in alphas:
            for k in shots:
                total = [0.0, 0.0]
                for order in orders:
                    prototypes = torch.stack([nn.functional.normalize(pool[o[:k]].mean(0), dim=0)
                                              for pool, o in zip(pools, order)])
                    w, b = write_prototypes(weight, bias, prototypes, classes, form, alpha, scale)
                    for i, (f, y) in enumerate(tests):
                        total[i] += accuracy_of(w, b, f, y) / draws
                rows.append({"form": form, "alpha": float(alpha), "shots": k,
                             "forget_accuracy": total[0], "retain_accuracy": total[1],
                             "retain_before": retain_before})
    return pd.DataFrame(rows, columns=list(PROTOTYPE_COLUMNS))


def prototype_recovery(table: pd.DataFrame, by=()) -> pd.DataFrame:
    """One recovery per form and α of :func:`prototype_attack`'s table (per group of ``by``
    too): the mean forget accuracy over its budgets of shots, as a fine-tuning attack's AUC is
    the mean over its budget of steps (column ``auc``), with ``attack`` named
    ``prototype (form, α=...)`` and ``keeps_retain``: whether its mean retain accuracy stays
    within :data:`PROTOTYPE_RETAIN_KEPT` pp of the model's own. One that does not "recovers"
    the class by predicting it everywhere, and :func:`strongest` passes it over."""
    keys = [*by, "form", "alpha"]
    out = (table.groupby(keys, sort=False)
           .agg(auc=("forget_accuracy", "mean"), retain=("retain_accuracy", "mean"),
                before=("retain_before", "first")).reset_index())
    out["attack"] = [f"prototype ({form}, α={alpha:g})"
                     for form, alpha in zip(out["form"], out["alpha"])]
    out["keeps_retain"] = out["retain"] >= out["before"] - PROTOTYPE_RETAIN_KEPT
    return out[[*by, "attack", "auc", "keeps_retain"]]


# Attacks that never show the model a forget image: what they bring back is reported, but it is
# no attacker's recovery of the class (chapter 6 does not judge claim 4 on it either).
SHOWS_NO_FORGET_DATA = ("retain_finetune",)
NO_ATTACK = "none (every attack loses the retain classes)"


def strongest(recovery: pd.DataFrame, by=()) -> pd.DataFrame:
    """Per group of ``by`` (e.g. per model), the attack of ``recovery`` (columns attack, auc
    and optionally keeps_retain: :func:`recovery_table` and :func:`prototype_recovery` stacked)
    that recovers the most among those that keep the retain classes, retain-only fine-tuning
    aside (:data:`SHOWS_NO_FORGET_DATA`): its name and recovery."""
    by = list(by)
    recovery = recovery.reset_index(drop=True).assign(_all=0)
    groups = recovery[by or ["_all"]].drop_duplicates()
    recovery = recovery[~recovery["attack"].isin(SHOWS_NO_FORGET_DATA)]
    if "keeps_retain" in recovery:
        recovery = recovery[recovery["keeps_retain"].fillna(True).astype(bool)]
    best = recovery.loc[recovery.groupby(by or ["_all"], sort=False)["auc"].idxmax()]
    # A model from which every attack breaks the retain classes gives the class back to none.
    best = groups.merge(best, how="left", on=by or ["_all"])
    best["auc"] = best["auc"].astype(float).fillna(0.0)
    best["attack"] = best["attack"].fillna(NO_ATTACK)
    return best[[*by, "attack", "auc"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Adversarial perturbations on the image scale


def targeted_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: Pixels | None,
                 epsilon: float = 0.03, step: float = 0.01, steps: int = 3,
                 generator: torch.Generator | None = None,
                 batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image moved towards its most likely wrong class under ``model`` (its top class if
    that is wrong, else its second), with the settings of the Spotter authors' code (ε 0.03,
    step 0.01, 3 steps, on the [0, 1] pixel scale): a uniform random start in the L∞ ball of
    radius ε, then ``steps`` signed-gradient steps that *lower* the cross-entropy of the
    target class, each projected back to the ball and to the valid pixel box. ``pixels`` (the
    dataset's normalisation) converts ε and the step to the normalised images' units.

    The model is read in eval mode and left as it was; no parameter gets a gradient. Returns
    the perturbed images and their target classes."""
    if pixels is None:
        raise ValueError("targeted_pgd needs the dataset's normalisation (Dataset.pixels) to "
                         "bound a perturbation on the [0, 1] image scale; this split has none")
    if epsilon < 0 or step < 0 or steps < 0:
        raise ValueError(f"epsilon, step and steps must be >= 0, got {epsilon}, {step}, {steps}")
    generator = generator or torch.Generator().manual_seed(0)
    out, targets = [], []
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            clean, label = x[start:start + batch_size], y[start:start + batch_size]
            radius, size = pixels.step(epsilon, clean), pixels.step(step, clean)
            low, high = pixels.bounds(clean)
            low, high = torch.maximum(clean - radius, low), torch.minimum(clean + radius, high)
            with torch.no_grad():
                top2 = model(clean).float().topk(2, dim=1).indices
            target = torch.where(top2[:, 0] != label, top2[:, 0], top2[:, 1])
            noise = torch.rand(clean.shape, generator=generator).to(clean.device, clean.dtype)
            adv = torch.clamp(clean + (2 * noise - 1) * radius, low, high)
            for _ in range(steps):
                adv.requires_grad_(True)
                loss = nn.functional.cross_entropy(model(adv).float(), target, reduction="sum")
                (grad,) = torch.autograd.grad(loss, adv)
                adv = torch.clamp(adv.detach() - size * grad.sign(), low, high)
            out.append(adv.detach())
            targets.append(target)
    empty = x.new_zeros((0, *x.shape[1:]))
    return (torch.cat(out) if out else empty,
            torch.cat(targets) if targets else y.new_zeros(0))
