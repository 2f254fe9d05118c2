"""Relearning attacks on a tiny synthetic problem with a known answer.

The "unlearned" model is a trained classifier whose forget row of ``fc`` is zeroed and whose
forget bias is very negative: output forget accuracy 0, features untouched. Attacks that see
forget labels (few-shot, head-only) must bring the class back; fine-tuning on D_r alone
must not."""

import copy

import pandas as pd
import pytest
import torch
from torch import nn

from illusion.attacks import (ATTACKS, draw_shots, few_shot_relearn, get_attack, head_only,
                              recovery_auc, recovery_table, retain_finetune, run_attacks)
from illusion.config import ForgetSet
from illusion.data import Dataset, Split, split_forget
from illusion.train import accuracy

K, FORGET = 4, 0


class Tiny(nn.Module):
    """The features/fc convention in a few hundred parameters."""

    def __init__(self, d_in: int = 16, hidden: int = 12, k: int = K):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(d_in, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, k)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.features(x))


def _data(seed=0, train_per_class=40, test_per_class=20) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    prototypes = 2 * torch.randn(K, 1, 4, 4, generator=g)

    def draw(n):
        y = torch.arange(K).repeat_interleave(n)
        return Split(prototypes[y] + 0.5 * torch.randn(len(y), 1, 4, 4, generator=g), y)

    empty = Split(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long))
    return Dataset("synthetic", tuple(map(str, range(K))), draw(train_per_class), empty,
                   draw(test_per_class))


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    data = _data()
    split = split_forget(data, ForgetSet((FORGET,)))
    original = Tiny()
    optimizer = torch.optim.Adam(original.parameters(), lr=0.03)
    for _ in range(150):
        loss = nn.functional.cross_entropy(original(data.train.x), data.train.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unlearned = copy.deepcopy(original)
    with torch.no_grad():  # the classifier shortcut: remove the row, keep the features
        unlearned.fc.weight[FORGET] = 0
        unlearned.fc.bias[FORGET] = -10.0
    return data, split, original, unlearned


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_setting_is_an_output_level_illusion(setting):
    _, split, original, unlearned = setting
    assert accuracy(original, split.forget_test) > 90
    assert accuracy(unlearned, split.forget_test) == 0.0
    assert accuracy(unlearned, split.retain_test) > 90


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_curve_shape_step0_and_input_untouched(setting, name):
    data, split, _, unlearned = setting
    before = _state(unlearned)
    curve = get_attack(name)(unlearned, split, steps=25, lr=0.05, batch_size=32, eval_every=10,
                             seed=3)
    assert list(curve.columns) == ["attack", "step", "forget_accuracy", "retain_accuracy"]
    assert curve["step"].tolist() == [0, 10, 20, 25]
    assert (curve["attack"] == name).all()
    first = curve.iloc[0]
    assert first["forget_accuracy"] == pytest.approx(accuracy(unlearned, split.forget_test))
    assert first["retain_accuracy"] == pytest.approx(accuracy(unlearned, split.retain_test))
    after = unlearned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # Same seed, same curve.
    again = get_attack(name)(unlearned, split, steps=25, lr=0.05, batch_size=32, eval_every=10,
                             seed=3)
    pd.testing.assert_frame_equal(curve, again)


def test_attacks_with_forget_labels_recover_retain_only_does_not(setting):
    _, split, _, unlearned = setting
    budget = dict(steps=40, lr=0.05, batch_size=32, eval_every=10, seed=1)
    few = few_shot_relearn(unlearned, split, shots=3, **budget)
    head = head_only(unlearned, split, **budget)
    retain = retain_finetune(unlearned, split, **budget)
    assert few["forget_accuracy"].iloc[-1] > 80
    assert head["forget_accuracy"].iloc[-1] > 80
    assert retain["forget_accuracy"].max() < 5
    assert recovery_auc(few) > recovery_auc(retain) + 30
    assert recovery_auc(head) > recovery_auc(retain) + 30
    # Retain accuracy survives the attacks on this easy problem.
    assert few["retain_accuracy"].iloc[-1] > 80 and head["retain_accuracy"].iloc[-1] > 80


def test_head_only_uses_the_given_training_split(setting):
    """Without forget images in ``train`` the head cannot relearn the forget class."""
    _, split, _, unlearned = setting
    curve = head_only(unlearned, split, train=split.retain_train, steps=30, lr=0.05,
                      batch_size=32, eval_every=10)
    assert curve["forget_accuracy"].max() < 5


def test_head_only_on_cached_features_equals_extraction(setting):
    """Features handed in (as Experiment.features gives them) replace the extraction: the
    same curve, for a linear and for a CMF head."""
    from illusion.heads import features
    cmf = pytest.importorskip("illusion.cmf")
    data, split, original, unlearned = setting
    budget = dict(steps=20, lr=0.05, batch_size=32, eval_every=5, seed=2)
    for model in (unlearned, cmf.attach(original, data.train)):
        extracted = head_only(model, split, train=data.train, **budget)
        cached = head_only(model, split, features=features(model, data.train, data.test), **budget)
        pd.testing.assert_frame_equal(extracted, cached)


def test_head_only_starts_from_a_cmf_head(setting):
    """A class-mean-feature head becomes an equivalent linear layer: step 0 is the CMF
    model's own accuracy, and the CMF model is left as it was."""
    cmf = pytest.importorskip("illusion.cmf")
    data, split, original, _ = setting
    model = cmf.attach(original, data.train)
    with torch.no_grad():  # a CMF "unlearned" model: the forget row points away from its mean
        model.fc.weight[FORGET] *= -1
    before = _state(model)
    curve = head_only(model, split, steps=20, lr=0.05, batch_size=32, eval_every=10)
    assert curve["forget_accuracy"].iloc[0] == pytest.approx(accuracy(model, split.forget_test))
    assert curve["forget_accuracy"].iloc[0] < 5 and curve["forget_accuracy"].iloc[-1] > 80
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation notice
def test_torchscript_models_are_attacked_on_a_copy(setting):
    _, split, _, unlearned = setting
    scripted = torch.jit.script(copy.deepcopy(unlearned))
    before = _state(scripted)
    curves = run_attacks(scripted, split, steps=20, lr=0.05, batch_size=32, eval_every=20,
                         shots=3)
    last = curves[curves["step"] == 20].set_index("attack")["forget_accuracy"]
    assert last["few_shot"] > 80 and last["head_only"] > 80 and last["retain_finetune"] < 5
    assert all(torch.equal(before[k], v) for k, v in scripted.state_dict().items())


def test_draw_shots_per_class_and_seeded(setting):
    data, _, _, _ = setting
    two = split_forget(data, ForgetSet((1, 3)))
    a = draw_shots(two.forget_train, (1, 3), 4, torch.Generator().manual_seed(0))
    b = draw_shots(two.forget_train, (1, 3), 4, torch.Generator().manual_seed(0))
    c = draw_shots(two.forget_train, (1, 3), 4, torch.Generator().manual_seed(1))
    assert torch.bincount(a.y, minlength=K).tolist() == [0, 4, 0, 4]
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    with pytest.raises(ValueError, match="shots of class 1"):
        draw_shots(two.forget_train, (1, 3), 1000, torch.Generator())


def test_run_attacks_stacks_and_recovery_table(setting):
    _, split, _, unlearned = setting
    curves = run_attacks(unlearned, split, steps=5, lr=0.05, batch_size=32, eval_every=5,
                         shots=2)
    assert sorted(curves["attack"].unique()) == sorted(ATTACKS)
    table = recovery_table(curves)
    assert list(table.columns) == ["attack", "auc"] and len(table) == len(ATTACKS)
    for name, auc in zip(table["attack"], table["auc"]):
        assert auc == pytest.approx(recovery_auc(curves[curves["attack"] == name]))


def test_recovery_auc_hand_made():
    curve = lambda steps, acc: pd.DataFrame({"attack": "x", "step": steps,  # noqa: E731
                                             "forget_accuracy": acc, "retain_accuracy": 0.0})
    # Trapezoids: (0+50)/2*10 + (50+100)/2*10 = 1000, over 20 steps.
    assert recovery_auc(curve([0, 10, 20], [0.0, 50.0, 100.0])) == pytest.approx(50.0)
    # Uneven spacing and unsorted rows: (0+100)/2*10 + 100*20 = 2500, over 30 steps.
    assert recovery_auc(curve([30, 0, 10], [100.0, 0.0, 100.0])) == pytest.approx(2500 / 30)
    assert recovery_auc(curve([0], [42.0])) == 42.0
    with pytest.raises(ValueError, match="one attack"):
        recovery_auc(pd.concat([curve([0, 1], [0.0, 1.0]),
                                curve([0, 1], [0.0, 1.0]).assign(attack="y")]))


def test_bad_input_is_named(setting):
    _, split, _, unlearned = setting
    with pytest.raises(ValueError, match="unknown attack 'finetune'.*head_only"):
        get_attack("finetune")
    with pytest.raises(ValueError, match="eval_every"):
        retain_finetune(unlearned, split, steps=5, eval_every=0)
    with pytest.raises(ValueError, match="shots"):
        few_shot_relearn(unlearned, split, shots=0)
