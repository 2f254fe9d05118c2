import pytest
import torch

from illusion.config import ForgetSet, HeadConfig
from illusion.heads import (Features, class_means, evaluate_features, linear_probe_lbfgs,
                            linear_probe_sgd, ncc_predict)


def clusters(n=50, noise=0.3, seed=0):
    """Four Gaussian clusters at the corners of a square: every head can get 100%."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 3], [-3, 3], [-3, -3], [3, -3]])
    y = torch.arange(4).repeat_interleave(n)
    return centres[y] + noise * torch.randn(len(y), 2, generator=g), y, centres


def test_ncc_recovers_known_means():
    x, y, centres = clusters()
    means = class_means(x, y, 4)
    assert torch.allclose(means, centres, atol=0.15)
    assert torch.equal(ncc_predict(means, x), y)


def test_both_probes_separate_clusters():
    x, y, _ = clusters(noise=0.2)
    for probe in (linear_probe_lbfgs(x, y, 4), linear_probe_sgd(x, y, 4, epochs=20)):
        assert (probe(x).argmax(1) == y).float().mean() == 1.0


def test_heads_report_retain_and_forget_separately():
    x, y, _ = clusters()
    # A classifier that never predicts class 2: output forget accuracy 0, features intact.
    logits = torch.nn.functional.one_hot(y, 4).float()
    logits[y == 2] = torch.nn.functional.one_hot(torch.tensor(1), 4).float()
    feats = Features(x, y, logits, x, y, logits, 4)
    table = evaluate_features(feats, ForgetSet((2,)), HeadConfig()).set_index(["head", "split"])
    assert table.loc[("output", "forget"), "accuracy"] == 0.0
    assert table.loc[("output", "retain"), "accuracy"] == 100.0
    assert table.loc[("lp", "forget"), "accuracy"] == 100.0
    assert table.loc[("ncc", "forget"), "accuracy"] == 100.0


def test_unknown_probe_names_valid_choices():
    x, y, _ = clusters(n=5)
    feats = Features(x, y, x, x, y, x, 4)
    with pytest.raises(ValueError, match="'ridge'.*lbfgs.*sgd"):
        evaluate_features(feats, ForgetSet((0,)), HeadConfig(lp="ridge"))
