"""The Spotter defence on a tiny ResNet and a tiny separable synthetic data set: registered as a
defence, its loss pieces match a direct computation, it trains with BatchNorm frozen, and it
makes the model forget its forget images."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

import illusion.unlearn as registry
from illusion.config import DataConfig, ForgetSet, MethodConfig, TrainConfig, get_profile
from illusion.data import load_dataset, split_forget
from illusion.models import build_model
from illusion.train import accuracy, fit
from illusion.unlearn import Context, traits, unlearn
from illusion.over_unlearning import masked_softmax
from illusion.unlearn.spotter import dispersion, masked_kl

K, FORGET = 4, 1
SETTINGS = MethodConfig(10, 1e-2, 32, {"clean_weight": 0.7, "dispersion_weight": 1.0,
                                       "epsilon": 0.03, "pgd_step": 0.01, "pgd_steps": 3})


@pytest.fixture(scope="module")
def trained():
    data = load_dataset(DataConfig("synthetic", train_per_class=40, test_per_class=20,
                                   num_classes=K, noise=1.0))
    torch.manual_seed(0)
    model = build_model("resnet18", K, 1, width=4)
    recipe = TrainConfig(epochs=4, lr=0.05, batch_size=32, warmup_epochs=1, patience=None,
                         crop_padding=0, flip=False)
    model, _ = fit(model, data.train, data.val, recipe, seed=0, desc="tiny")
    split = split_forget(data, ForgetSet((FORGET,)))
    assert accuracy(model, split.forget_train) >= 90  # the starting point the tests rely on
    return model.eval(), split


def batch_norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b for name, b in model.named_buffers()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


def test_spotter_is_registered_as_a_defence_and_not_a_baseline():
    assert registry.having("defence") == ("spotter",)
    assert traits("spotter").image_only and traits("spotter").defence
    assert not traits("spotter").baseline and "spotter" not in registry.BASELINES
    assert set(traits("spotter").options) == set(SETTINGS.options)
    # Its settings row: the authors' 10 epochs on every profile, their CIFAR-10 LR on paper.
    assert get_profile("smoke").method("spotter").epochs == 10
    paper = get_profile("paper").method("spotter")
    assert (paper.epochs, paper.lr, paper.batch_size) == (10, 1e-4, 128)


def test_masked_teacher_zeroes_the_forget_classes_and_renormalises():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 3.0, 0.5, 0.0]])
    got = masked_softmax(logits, (1, 3), torch.float32)
    probs = torch.softmax(logits, 1)
    expected = torch.zeros_like(probs)
    for i in range(2):
        kept = probs[i, 0] + probs[i, 2]
        expected[i, 0], expected[i, 2] = probs[i, 0] / kept, probs[i, 2] / kept
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(got[:, [1, 3]], torch.zeros(2, 2))
    assert torch.allclose(got.sum(1), torch.ones(2), atol=1e-6)


def test_masked_kl_is_the_batch_mean_of_the_sum_over_retained_classes():
    target = torch.tensor([[0.25, 0.0, 0.75], [0.5, 0.0, 0.5]])
    student = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]])
    q = torch.softmax(student, 1)
    direct = sum(target[i, c] * torch.log(target[i, c] / q[i, c])
                 for i in range(2) for c in (0, 2)) / 2
    assert torch.allclose(masked_kl(student, target), direct, atol=1e-6)
    # Zero when the student's softmax is the target (up to its vanishing forget mass).
    assert masked_kl(torch.log(target + 1e-30), target).abs() < 1e-5


def test_dispersion_is_the_mean_cosine_similarity_of_distinct_same_label_pairs():
    torch.manual_seed(0)
    features, y = torch.randn(6, 5), torch.tensor([0, 0, 1, 0, 1, 2])
    pairs = [(i, j) for i, j in itertools.permutations(range(6), 2) if y[i] == y[j]]
    direct = sum(nn.functional.cosine_similarity(features[i], features[j], dim=0)
                 for i, j in pairs) / len(pairs)
    assert torch.allclose(dispersion(features, y), direct, atol=1e-6)
    # One class: the mean off-diagonal cosine similarity; no same-label pair: 0.
    same = torch.zeros(6, dtype=torch.long)
    normed = nn.functional.normalize(features, dim=1)
    off = (normed @ normed.T).sum() - normed.square().sum()
    assert torch.allclose(dispersion(features, same), off / 30, atol=1e-6)
    assert dispersion(features[:3], torch.arange(3)) == 0


def test_spotter_keeps_batch_norm_statistics_and_forgets(trained):
    model, split = trained
    before = copy.deepcopy(model.state_dict())
    unlearned, _ = unlearn("spotter", model, split, SETTINGS, Context(seed=0))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input kept
    new, old = batch_norm_buffers(unlearned), batch_norm_buffers(model)
    assert new and all(torch.equal(new[k], old[k]) for k in old)
    assert any(not torch.equal(p, q) for p, q in zip(unlearned.parameters(), model.parameters()))
    # The affine parameters of BatchNorm still train.
    assert not torch.equal(unlearned.bn1.weight, model.bn1.weight)
    # The forget images are forgotten, without retain data, and the retain classes survive.
    assert accuracy(unlearned, split.forget_train) < 20
    assert accuracy(unlearned, split.retain_test) >= 80
    # Reproducible: every random draw (PGD start, batch order) comes from the context's seed.
    again, _ = unlearn("spotter", model, split, SETTINGS, Context(seed=0))
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), unlearned.parameters()))


@pytest.mark.parametrize("option, value", [("clean_weight", 1.5), ("dispersion_weight", -1.0),
                                           ("epsilon", -0.1), ("pgd_step", float("nan")),
                                           ("pgd_steps", 2.5)])
def test_spotter_rejects_a_bad_option(trained, option, value):
    model, split = trained
    cfg = MethodConfig(1, 1e-2, 32, {**SETTINGS.options, option: value})
    with pytest.raises(ValueError, match=f"spotter {option} .*{value}"):
        unlearn("spotter", model, split, cfg, Context(seed=0))
