"""Helpers of the results contract that name and summarise the rows of accuracy tables."""

import math

import pandas as pd
import pytest

from illusion.results import mean_accuracy, variant_label, with_variant_labels


def test_variant_label_names_the_full_model_alone():
    assert variant_label("rl", "full") == "rl"
    assert variant_label("rl", "cmf") == "rl + cmf"
    assert variant_label("original", "classifier_only") == "original + classifier_only"
    table = pd.DataFrame({"model": ["rl", "rl"], "variant": ["full", "cmf"], "accuracy": [1.0, 2.0]})
    assert with_variant_labels(table)["model"].tolist() == ["rl", "rl + cmf"]
    assert table["model"].tolist() == ["rl", "rl"]  # a new table; the given one is unchanged


def test_mean_accuracy_averages_one_model_head_and_split_over_the_forget_sets():
    table = pd.DataFrame([
        ("rl", "cmf", "6", "output", "retain", 90.0), ("rl", "cmf", "2-4", "output", "retain", 80.0),
        ("rl", "cmf", "6", "output", "forget", 10.0), ("rl", "cmf", "6", "lp", "retain", 70.0),
        ("rl", "full", "6", "output", "retain", 60.0), ("salun", "cmf", "6", "output", "retain", 50.0),
    ], columns=["model", "variant", "forget_set", "head", "split", "accuracy"])
    assert mean_accuracy(table, "rl", "cmf", head="output", split="retain") == pytest.approx(85.0)
    assert mean_accuracy(table, "rl", "cmf", head="output", split="forget") == 10.0
    assert mean_accuracy(table, "rl", "full", head="output", split="retain") == 60.0
    assert math.isnan(mean_accuracy(table, "scrub", "cmf", head="output", split="retain"))
