"""Unlearning curves: Output / LP / NCC of a model measured while a method unlearns it.

A point is taken before the run (index 0) and then at about ``points`` optimiser steps
(``at="step"``: every ``steps // points``-th step, ``steps`` the run's optimiser steps as a
stored run of the same method counted them (:class:`StepCounter`), else counted by
:func:`count_steps`) or at the end of every epoch of the run's loop (``at="epoch"``). At each
point LP and NCC are fitted, in the model's own geometry, on a stratified subset of the
training images (:func:`probe_subset`), to keep a point cheap (:func:`quick_heads`).

A run is given as ``run(**hooks)``: the method's run from its starting model with these
:class:`~illusion.unlearn.Context` hooks added, so that nothing here names a method.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import ForgetSet, HeadConfig
from .data import Split, stratified_indices
from .heads import evaluate_features, features, head_geometry

RESOLUTIONS = ("epoch", "step")

Run = Callable[..., object]  # run(**hooks): one run of a method, with these context hooks


def check_resolution(at: str) -> None:
    if at not in RESOLUTIONS:
        raise ValueError(f"unknown curve resolution at={at!r}; valid choices: {list(RESOLUTIONS)}")


class StepCounter:
    """A context step hook that counts the optimiser steps of the run it is given to: what the
    method's loop really iterates (D_f alone for GA, D_r for NegGrad+, UNSIR's impair and
    repair phases, one step for SVD, none for Prune)."""

    def __init__(self):
        self.steps = 0

    def __call__(self, model: nn.Module, step: int) -> None:
        self.steps += 1


def count_steps(run: Run) -> int:
    """The optimiser steps of ``run``, counted on a run of its own."""
    counter = StepCounter()
    run(on_step=counter)
    return counter.steps


def probe_subset(train: Split, per_class: int, seed: int) -> Split:
    """``per_class`` images of every class of ``train`` (at most as many as the smallest class
    has), drawn with ``seed``: where the curves fit LP and NCC."""
    per_class = min(per_class, int(torch.bincount(train.y).min()))
    rng = np.random.default_rng(seed)
    idx = torch.as_tensor(stratified_indices(train.y.cpu().numpy(), per_class, rng),
                          device=train.y.device)
    return Split(train.x[idx], train.y[idx])


def quick_heads(model: nn.Module, probe_train: Split, test: Split, forget_set: ForgetSet,
                cfg: HeadConfig) -> pd.DataFrame:
    """Output / LP / NCC of ``model`` on ``test`` as a curve point measures them: LP and NCC
    fitted, in the model's own geometry, on ``probe_train`` (:func:`probe_subset`); tidy
    head, split, accuracy."""
    f = head_geometry(model, features(model, probe_train, test))
    return evaluate_features(f, forget_set, cfg).drop(columns="seconds")


def unlearning_curve(run: Run, start: nn.Module, measure: Callable[[nn.Module], pd.DataFrame],
                     at: str, points: int, steps: int | None = None) -> pd.DataFrame:
    """``measure(model)`` (a tidy table) of ``start`` and of the model during ``run``, stacked
    with a column ``at`` (``step`` or ``epoch``) giving the point. ``steps``: the optimiser
    steps of ``run`` when known (from a stored run of it); None counts them on a run of their
    own (:func:`count_steps`), which costs the run once more. Under CMF a point taken at an
    epoch end sees W recomputed from the current features, as the stored model would: the CMF
    context recomputes it there (:func:`illusion.cmf.run`)."""
    check_resolution(at)
    rows = []

    def record(model: nn.Module, index: int) -> None:
        rows.append(measure(model).assign(**{at: index}))

    record(start, 0)
    if at == "step":
        every = max(1, (count_steps(run) if steps is None else steps) // points)

        def on_step(model: nn.Module, step: int) -> None:
            if step % every == 0:
                record(model, step)
        run(on_step=on_step)
    else:
        def on_epoch_end(model: nn.Module, epoch: int) -> None:
            record(model, epoch + 1)
        run(on_epoch_end=on_epoch_end)
    return pd.concat(rows, ignore_index=True)
