"""Unlearning curves from a scripted run: which points are measured, without training."""

import pandas as pd
import pytest
from torch import nn

from illusion.curves import count_steps, unlearning_curve


def scripted(steps: int, epochs: int = 1):
    """A run of ``epochs`` epochs of ``steps`` optimiser steps each that calls the hooks it is
    given, as a method's loop does; every call of it is recorded."""
    model, calls = nn.Linear(2, 2), []

    def run(on_step=lambda m, s: None, on_epoch_end=lambda m, e: None):
        calls.append(1)
        for epoch in range(epochs):
            for step in range(epoch * steps + 1, (epoch + 1) * steps + 1):
                on_step(model, step)
            on_epoch_end(model, epoch)
    return run, model, calls


def measure(model: nn.Module) -> pd.DataFrame:
    return pd.DataFrame({"head": ["output"], "accuracy": [50.0]})


def test_count_steps_counts_the_step_hook_calls():
    run, _, calls = scripted(steps=7, epochs=2)
    assert count_steps(run) == 14 and len(calls) == 1


@pytest.mark.parametrize("points, expected", [(3, [0, 4, 8, 12]), (20, list(range(15)))])
def test_step_curve_measures_the_start_and_every_steps_over_points_th_step(points, expected):
    run, model, calls = scripted(steps=7, epochs=2)
    curve = unlearning_curve(run, model, measure, "step", points)
    assert curve["step"].tolist() == expected
    assert len(calls) == 2  # one run counts the steps, one is measured


def test_step_curve_with_a_known_step_count_runs_once():
    run, model, calls = scripted(steps=7, epochs=2)
    curve = unlearning_curve(run, model, measure, "step", 3, steps=14)
    assert curve["step"].tolist() == [0, 4, 8, 12] and len(calls) == 1


def test_epoch_curve_measures_the_start_and_every_epoch_end():
    run, model, calls = scripted(steps=5, epochs=3)
    curve = unlearning_curve(run, model, measure, "epoch", points=8)
    assert curve["epoch"].tolist() == [0, 1, 2, 3] and len(calls) == 1


def test_unknown_resolution_names_the_choices():
    run, model, _ = scripted(steps=1)
    with pytest.raises(ValueError, match=r"at='batch'.*\['epoch', 'step'\]"):
        unlearning_curve(run, model, measure, "batch", 8)
