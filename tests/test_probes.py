"""The probes beyond the paper, on hand-made heads, tensors and tables with known answers.

- the prototypical relearning attack (:func:`illusion.attacks.write_prototypes`,
  :func:`~illusion.attacks.prototype_attack`, :func:`~illusion.attacks.prototype_recovery`,
  :func:`~illusion.attacks.strongest`), the fresh-head attacks (:func:`~illusion.attacks.
  reset_rows`, :func:`~illusion.attacks.fresh_head`) and targeted PGD;
- over-unlearning at epsilon (:mod:`illusion.over_unlearning`);
- linear CKA (:mod:`illusion.similarity`);
- the probes' settings (:class:`illusion.config.ProbeConfig`) and the claim checks that read
  them (:func:`illusion.claims.strongest_attack_checks`, :func:`~illusion.claims.beyond_checks`).

The models are identity features and a hand-set ``nn.Linear`` (class ``c`` sits at ``3 e_c``), so
every accuracy below has a known answer; nothing is trained beyond a few SGD steps of a head.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from illusion import attacks
from illusion.attacks import (NO_ATTACK, PROTOTYPE_COLUMNS, PROTOTYPE_RETAIN_KEPT, few_shot_relearn,
                              fresh_head, head_only, prototype_attack, prototype_recovery,
                              reset_rows, run_attacks, strongest, targeted_pgd, write_prototypes)
from illusion.claims import HIGH_LP_MARGIN, TOLERANCES, beyond_checks, strongest_attack_checks
from illusion.cmf import class_mean_classifier
from illusion.config import ForgetSet, SettingError, resolve
from illusion.data import ForgetSplit, Pixels, Split
from illusion.heads import Features
from illusion.over_unlearning import (js_divergence, masked_softmax, over_unlearning, perturb,
                                      references)
from illusion.similarity import linear_cka
from illusion.train import accuracy

D = K = 3  # feature dimension = number of classes: class c sits at 3 e_c
FORGET = 0
PIXELS = Pixels(mean=(0.5,), std=(0.25,))  # normalised box [-2, 2]


# --------------------------------------------------------------------------------------------
# Helpers


class Probe(nn.Module):
    """Identity features (the flattened image) and a linear head, rows e_c, zero biases."""

    def __init__(self, d: int = D, k: int = K):
        super().__init__()
        self.fc = nn.Linear(d, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(k, d))
            self.fc.bias.zero_()

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def _unlearned() -> Probe:
    """The classifier shortcut a defender might take: forget row zeroed, bias -1e4."""
    model = Probe()
    with torch.no_grad():
        model.fc.weight[FORGET] = 0
        model.fc.bias[FORGET] = -1e4
    return model


def _split(n_train: int = 20, n_test: int = 10, seed: int = 0, noise: float = 0.3) -> ForgetSplit:
    g = torch.Generator().manual_seed(seed)

    def draw(n):
        y = torch.arange(K).repeat_interleave(n)
        x = 3 * torch.eye(K, D)[y] + noise * torch.randn(len(y), D, generator=g)
        return Split(x.view(-1, 1, 1, D), y)

    train, test = draw(n_train), draw(n_test)
    f, t = train.y == FORGET, test.y == FORGET
    retain = train.where(~f)
    return ForgetSplit(ForgetSet((FORGET,)), train.where(f), retain, test.where(t),
                       test.where(~t), Split(retain.x[:6], retain.y[:6]), PIXELS)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(before, model) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def _features_of(model, split: ForgetSplit) -> Features:
    """The model's Features on D_f + D_r and the test split (identity features: the images)."""
    train = Split(torch.cat([split.forget_train.x, split.retain_train.x]),
                  torch.cat([split.forget_train.y, split.retain_train.y]))
    test = Split(torch.cat([split.forget_test.x, split.retain_test.x]),
                 torch.cat([split.forget_test.y, split.retain_test.y]))
    with torch.no_grad():
        return Features(model.features(train.x), train.y, model(train.x), model.features(test.x),
                        test.y, model(test.x), K)


# --------------------------------------------------------------------------------------------
# write_prototypes: the two forms on a hand-made 3 x 2 head

W0 = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
B0 = torch.tensor([0.5, -1.0, 2.0])
P = torch.tensor([[0.6, 0.8]])  # unit prototype of class 1


def test_write_prototypes_cosine_exact():
    w, b = write_prototypes(W0, B0, P, (1,), "cosine", alpha=0.25, scale=2.0)
    q = torch.tensor([1.2, 1.6])  # scale * p
    assert torch.allclose(w[1], 0.25 * q + 0.75 * torch.tensor([3.0, 4.0]))
    assert torch.allclose(w[1], torch.tensor([2.55, 3.4]))
    assert b[1].item() == pytest.approx(0.75 * -1.0)
    assert torch.equal(w[[0, 2]], W0[[0, 2]]) and torch.equal(b[[0, 2]], B0[[0, 2]])


def test_write_prototypes_l2_exact():
    w, b = write_prototypes(W0, B0, P, (1,), "l2", alpha=0.25, scale=2.0)
    # w <- a 2q + (1-a) w = 0.25 (2.4, 3.2) + 0.75 (3, 4); b <- -a |q|^2 + (1-a) b, |q|^2 = 4.
    assert torch.allclose(w[1], torch.tensor([0.6 + 2.25, 0.8 + 3.0]))
    assert b[1].item() == pytest.approx(-0.25 * 4.0 + 0.75 * -1.0)
    assert torch.equal(w[[0, 2]], W0[[0, 2]]) and torch.equal(b[[0, 2]], B0[[0, 2]])


def test_write_prototypes_l2_at_alpha_one_is_minus_squared_distance():
    """At alpha 1 the l2 row scores -|f - q|^2 + |f|^2: its logit minus |f|^2 is the
    (negated) squared distance to the prototype, whatever the row held before."""
    w, b = write_prototypes(W0, B0, P, (1,), "l2", alpha=1.0, scale=3.0)
    f = torch.tensor([[0.3, -2.0], [4.0, 1.0]])
    q = 3.0 * P[0]
    logit = f @ w[1] + b[1]
    assert torch.allclose(logit - (f * f).sum(1), -((f - q) ** 2).sum(1))


def test_write_prototypes_several_classes_and_copies():
    weight, bias = W0.clone(), B0.clone()
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w, b = write_prototypes(weight, bias, prototypes, (2, 0), "cosine", alpha=1.0)
    assert torch.equal(w[2], prototypes[0]) and torch.equal(w[0], prototypes[1])
    assert torch.equal(w[1], W0[1]) and b.tolist() == [0.0, -1.0, 0.0]
    # Inputs untouched; outputs are new tensors, not views of them.
    assert torch.equal(weight, W0) and torch.equal(bias, B0)
    w[1, 0] = 99.0
    b[1] = 99.0
    assert weight[1, 0].item() == 3.0 and bias[1].item() == -1.0


@pytest.mark.parametrize("form, alpha, match", [
    ("dot", 1.0, r"'dot'.*\['cosine', 'l2'\]"),
    ("cosine", 0.0, r"alpha must be in \(0, 1\], got 0"),
    ("l2", 1.5, r"alpha must be in \(0, 1\], got 1.5"),
    ("cosine", -0.5, r"got -0.5"),
    ("cosine", float("nan"), r"got nan"),
])
def test_write_prototypes_bad_form_or_alpha(form, alpha, match):
    with pytest.raises(ValueError, match=match):
        write_prototypes(W0, B0, P, (1,), form, alpha)


# --------------------------------------------------------------------------------------------
# prototype_attack


def test_prototype_attack_recovers_a_zeroed_row_and_leaves_the_model():
    split, model = _split(), _unlearned()
    model.train()
    before = _state(model)
    assert accuracy(model, split.forget_test) == 0.0
    table = prototype_attack(model, split, shots=(5, 1), alphas=(0.5, 1.0), draws=3, seed=7)
    assert list(table.columns) == list(PROTOTYPE_COLUMNS)
    assert len(table) == 2 * 2 * 2  # forms x alphas x shots
    assert table["shots"].tolist() == [1, 5] * 4  # sorted
    assert _same_state(before, model) and model.training
    assert all(p.grad is None for p in model.parameters())
    retain = accuracy(model, split.retain_test)
    assert retain == 100.0 and (table["retain_before"] == retain).all()
    full = table[table["alpha"] == 1.0]
    half = table[table["alpha"] == 0.5]
    # alpha 1 writes the prototype over the zero row and clears the -1e4 bias: the class is back
    # and the retain classes stay.
    assert (full["forget_accuracy"] == 100.0).all()
    assert (full["retain_accuracy"] == 100.0).all()
    # alpha 0.5 keeps half of the -1e4 bias: nothing comes back.
    assert (half["forget_accuracy"] == 0.0).all()
    assert set(table["form"]) == {"cosine", "l2"}


def test_prototype_attack_same_seed_same_table_and_features_given():
    split, model = _split(noise=1.5), _unlearned()
    budget = dict(shots=(1, 2), alphas=(1.0,), forms=("cosine", "l2"), draws=4)
    a = prototype_attack(model, split, seed=3, **budget)
    b = prototype_attack(model, split, seed=3, **budget)
    pd.testing.assert_frame_equal(a, b)
    # Cached test features replace the extraction: the same table.
    cached = prototype_attack(model, split, seed=3, features=_features_of(model, split), **budget)
    pd.testing.assert_frame_equal(a, cached)
    # The accuracies are means over draws of 4 images of the forget test: multiples of 100/40.
    assert all(abs(v * 40 / 100 - round(v * 40 / 100)) < 1e-9 for v in a["forget_accuracy"])


def test_prototype_attack_uses_the_mean_of_all_shots_when_k_is_the_pool():
    """K = every forget image: the prototype is their normalised mean, whatever the draw."""
    split, model = _split(noise=1.0, seed=4), _unlearned()
    n = len(split.forget_train)
    table = prototype_attack(model, split, shots=(n,), alphas=(1.0,), forms=("l2",), draws=2,
                             seed=11)
    p = nn.functional.normalize(split.forget_train.x.flatten(1).double().mean(0), dim=0)
    w, b = write_prototypes(model.fc.weight.detach().double(), model.fc.bias.detach().double(),
                            p[None], (FORGET,), "l2", 1.0)
    predict = lambda s: (s.x.flatten(1).double() @ w.T + b).argmax(1)  # noqa: E731
    expected_forget = 100.0 * (predict(split.forget_test) == split.forget_test.y).double().mean()
    expected_retain = 100.0 * (predict(split.retain_test) == split.retain_test.y).double().mean()
    assert table["forget_accuracy"].item() == pytest.approx(expected_forget.item())
    assert table["retain_accuracy"].item() == pytest.approx(expected_retain.item())


def test_prototype_attack_bad_budgets_are_named():
    split, model = _split(n_train=6), _unlearned()
    with pytest.raises(ValueError, match=r"asked for 7 shots of class 0.*only 6 images"):
        prototype_attack(model, split, shots=(1, 7), draws=1)
    with pytest.raises(ValueError, match="shots must be integers >= 1"):
        prototype_attack(model, split, shots=(0, 1), draws=1)
    with pytest.raises(ValueError, match="shots must be integers >= 1"):
        prototype_attack(model, split, shots=(), draws=1)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        prototype_attack(model, split, shots=(1,), draws=0)
    with pytest.raises(ValueError, match="alpha"):
        prototype_attack(model, split, shots=(1,), alphas=(0.0,), draws=1)


def test_prototype_attack_on_a_cmf_head_uses_tau(monkeypatch):
    """A CMF head classifies centred features with rows tau w_c: the prototype is written at
    scale tau, in the centred space, and the attack brings a flipped forget row back."""
    split, tau = _split(n_train=12), 4.0
    model = Probe()
    train = Split(torch.cat([split.forget_train.x, split.retain_train.x]),
                  torch.cat([split.forget_train.y, split.retain_train.y]))
    model.fc = class_mean_classifier(train.x.flatten(1), train.y, K, tau=tau)
    with torch.no_grad():  # a CMF "unlearned" model: the forget row points away from its mean
        model.fc.weight[FORGET] *= -1
    before = _state(model)
    assert accuracy(model, split.forget_test) == 0.0
    scales = []
    real = attacks.write_prototypes

    def spy(*args, **kwargs):
        scales.append(args[6] if len(args) > 6 else kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "write_prototypes", spy)
    n = len(split.forget_train)
    table = prototype_attack(model, split, shots=(n,), alphas=(1.0,), draws=1)
    assert scales and all(s == pytest.approx(tau) for s in scales)
    assert _same_state(before, model)
    cosine = table[table["form"] == "cosine"]
    assert (cosine["forget_accuracy"] == 100.0).all()
    assert (cosine["retain_accuracy"] >= cosine["retain_before"] - PROTOTYPE_RETAIN_KEPT).all()
    # The l2 row by hand: rows tau W (zero bias) on centred features, the forget row 2 tau p,
    # bias -tau^2 (on unit features that bias outweighs 2 tau <z, p> when tau > 2: the l2 form
    # does not recover here, and a scale of 1 would give another answer).
    centred = lambda s: model.fc.centred(s.x.flatten(1)).double()  # noqa: E731
    p = nn.functional.normalize(centred(split.forget_train).mean(0), dim=0)
    w = tau * model.fc.weight.double().clone()
    b = torch.zeros(K, dtype=torch.float64)
    w[FORGET], b[FORGET] = 2 * tau * p, -tau ** 2
    for s, column in ((split.forget_test, "forget_accuracy"), (split.retain_test, "retain_accuracy")):
        expected = 100.0 * ((centred(s) @ w.T + b).argmax(1) == s.y).double().mean().item()
        assert table.loc[table["form"] == "l2", column].item() == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# prototype_recovery and strongest


def _prototype_table(model: str, before: float, rows) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "form": f, "alpha": a, "shots": k, "forget_accuracy": fa,
                          "retain_accuracy": ra, "retain_before": before}
                         for f, a, k, fa, ra in rows])


def test_prototype_recovery_means_over_shots_and_keeps_retain():
    table = pd.concat([
        _prototype_table("m", 90.0, [
            ("cosine", 1.0, 1, 10.0, 86.0), ("cosine", 1.0, 5, 30.0, 84.0),  # retain 85: kept
            ("cosine", 0.5, 1, 20.0, 85.0), ("cosine", 0.5, 5, 40.0, 84.8),  # 84.9: lost
            ("l2", 1.0, 1, 70.0, 10.0), ("l2", 1.0, 5, 90.0, 0.0)]),
        _prototype_table("n", 50.0, [("cosine", 1.0, 1, 5.0, 50.0), ("cosine", 1.0, 5, 7.0, 50.0)]),
    ], ignore_index=True)
    out = prototype_recovery(table, by=("model",))
    assert list(out.columns) == ["model", "attack", "auc", "keeps_retain"]
    got = out.set_index(["model", "attack"])
    assert got.loc[("m", "prototype (cosine, α=1)"), "auc"] == pytest.approx(20.0)
    assert got.loc[("m", "prototype (cosine, α=0.5)"), "auc"] == pytest.approx(30.0)
    assert got.loc[("m", "prototype (l2, α=1)"), "auc"] == pytest.approx(80.0)
    assert got.loc[("n", "prototype (cosine, α=1)"), "auc"] == pytest.approx(6.0)
    assert PROTOTYPE_RETAIN_KEPT == 5.0
    assert got.loc[("m", "prototype (cosine, α=1)"), "keeps_retain"]  # exactly 5 pp: kept
    assert not got.loc[("m", "prototype (cosine, α=0.5)"), "keeps_retain"]
    assert not got.loc[("m", "prototype (l2, α=1)"), "keeps_retain"]
    assert got.loc[("n", "prototype (cosine, α=1)"), "keeps_retain"]
    # Without by: per form and alpha over everything.
    whole = prototype_recovery(table[table["model"] == "m"].drop(columns="model"))
    assert list(whole.columns) == ["attack", "auc", "keeps_retain"] and len(whole) == 3


def test_strongest_picks_the_largest_that_keeps_retain():
    recovery = pd.DataFrame({
        "model": ["a", "a", "a", "a", "b", "b", "c"],
        "attack": ["few_shot", "retain_finetune", "prototype (l2, α=1)", "head_only",
                   "prototype (cosine, α=1)", "few_shot", "retain_finetune"],
        "auc": [40.0, 99.0, 95.0, 55.0, 70.0, 20.0, 50.0],
        "keeps_retain": [None, None, False, None, False, None, None],
    })
    best = strongest(recovery, by=("model",)).set_index("model")
    # a: retain_finetune (99) shows no forget data, the l2 prototype (95) breaks the retain
    # classes; head_only (55) wins. b: the prototype (70) breaks the retain classes: few_shot.
    assert best.loc["a", "attack"] == "head_only" and best.loc["a", "auc"] == 55.0
    assert best.loc["b", "attack"] == "few_shot" and best.loc["b", "auc"] == 20.0
    assert "c" not in best.index or best.loc["c", "attack"] != "retain_finetune"
    assert list(strongest(recovery, by=("model",)).columns) == ["model", "attack", "auc"]


def test_strongest_group_where_nothing_keeps_retain_gets_no_attack():
    recovery = pd.DataFrame({"model": ["a", "a", "b"],
                             "attack": ["prototype (l2, α=1)", "prototype (cosine, α=1)", "few_shot"],
                             "auc": [90.0, 80.0, 10.0], "keeps_retain": [False, False, True]})
    best = strongest(recovery, by=("model",)).set_index("model")
    assert best.loc["a", "attack"] == NO_ATTACK and best.loc["a", "auc"] == 0.0
    assert best.loc["b", "attack"] == "few_shot" and best.loc["b", "auc"] == 10.0
    # Without by: one row over everything.
    alone = strongest(recovery)
    assert list(alone.columns) == ["attack", "auc"] and len(alone) == 1
    assert alone["attack"].item() == "few_shot" and alone["auc"].item() == 10.0
    broken = strongest(recovery[recovery["model"] == "a"])
    assert broken["attack"].item() == NO_ATTACK and broken["auc"].item() == 0.0


def test_strongest_without_keeps_retain_column():
    recovery = pd.DataFrame({"attack": ["few_shot", "head_only", "retain_finetune"],
                             "auc": [12.0, 30.0, 60.0]})
    best = strongest(recovery)
    assert best["attack"].item() == "head_only" and best["auc"].item() == 30.0


def test_strongest_on_a_stacked_table_with_a_repeated_index():
    finetune = pd.DataFrame({"attack": ["few_shot", "head_only"], "auc": [10.0, 50.0]})
    prototypes = pd.DataFrame({"attack": ["prototype (cosine, α=1)", "prototype (l2, α=1)"],
                               "auc": [40.0, 5.0], "keeps_retain": [True, True]})
    best = strongest(pd.concat([finetune, prototypes]))  # index 0, 1, 0, 1
    assert len(best) == 1 and best["attack"].item() == "head_only"


# --------------------------------------------------------------------------------------------
# reset_rows / fresh_head / the fresh-head attacks


def test_reset_rows_mean_of_retain_rows_and_biases():
    weight = torch.tensor([[9.0, 9.0, 9.0], [1.0, 0.0, 2.0], [-5.0, 5.0, 5.0], [3.0, 4.0, 0.0]])
    bias = torch.tensor([-1e4, 1.0, -1e4, 3.0])
    reset_rows(weight, bias, (0, 2))  # retain rows 1 and 3: norms sqrt(5) and 5, unequal
    mean = torch.tensor([2.0, 2.0, 1.0])
    assert torch.allclose(weight[0], mean) and torch.allclose(weight[2], mean)
    assert weight[1].tolist() == [1.0, 0.0, 2.0] and weight[3].tolist() == [3.0, 4.0, 0.0]
    assert bias.tolist() == [2.0, 1.0, 2.0, 3.0]


def test_reset_rows_keeps_a_common_norm():
    rows = nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    weight = 2.5 * rows  # CMF-like: unit class means times tau
    weight[0] = torch.tensor([-7.0, 0.1])
    reset_rows(weight, None, (0,))
    assert weight[0].norm().item() == pytest.approx(2.5)
    direction = nn.functional.normalize(rows[1] + rows[2], dim=0)
    assert torch.allclose(weight[0], 2.5 * direction, atol=1e-6)


def test_fresh_head_is_a_copy():
    model = _unlearned()
    before = _state(model)
    fresh = fresh_head(model, (FORGET,))
    assert _same_state(before, model) and fresh is not model
    assert fresh.fc.weight is not model.fc.weight
    assert fresh.fc.bias[FORGET].item() == 0.0  # the mean of the retain biases (0, 0)
    expected = nn.functional.normalize(torch.tensor([0.0, 1.0, 1.0]), dim=0)  # unit rows e1, e2
    assert torch.allclose(fresh.fc.weight[FORGET], expected)
    assert torch.equal(fresh.fc.weight[1:], model.fc.weight[1:])


def test_fresh_attacks_recover_what_the_plain_ones_cannot():
    split, model = _split(), _unlearned()
    before = _state(model)
    budget = dict(steps=20, lr=0.1, batch_size=16, eval_every=10, seed=5)
    plain = head_only(model, split, **budget)
    fresh = head_only(model, split, fresh=True, **budget)
    few = few_shot_relearn(model, split, shots=3, fresh=True, **budget)
    assert (plain["attack"] == "head_only").all() and (fresh["attack"] == "head_only_fresh").all()
    assert (few["attack"] == "few_shot_fresh").all()
    assert plain["forget_accuracy"].max() == 0.0  # -1e4 does not move in 20 steps
    assert fresh["forget_accuracy"].iloc[-1] > 80 and few["forget_accuracy"].iloc[-1] > 80
    assert fresh["retain_accuracy"].iloc[-1] > 80
    # Step 0 of the fresh attacks is the fresh head's own accuracy.
    start = accuracy(fresh_head(model, (FORGET,)), split.forget_test)
    assert fresh["forget_accuracy"].iloc[0] == pytest.approx(start)
    assert few["forget_accuracy"].iloc[0] == pytest.approx(start)
    assert _same_state(before, model)
    curves = run_attacks(model, split, names=("head_only_fresh", "few_shot_fresh"), shots=3,
                         **budget)
    assert list(curves["attack"].unique()) == ["head_only_fresh", "few_shot_fresh"]
    pd.testing.assert_frame_equal(curves[curves["attack"] == "head_only_fresh"]
                                  .reset_index(drop=True), fresh)
    assert _same_state(before, model)


# --------------------------------------------------------------------------------------------
# targeted_pgd


class Recorder(nn.Module):
    """Records the training flag of every forward pass."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def _pgd_setting(n: int = 60, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(Recorder(), nn.Flatten(), nn.Linear(4, K), nn.Dropout(0.5))
    with torch.no_grad():
        model[2].weight.copy_(torch.randn(K, 4, generator=g))
        model[2].bias.copy_(torch.randn(K, generator=g))
    # Normalised images, many pixels on the box's edges [-2, 2].
    x = torch.clamp(1.5 * torch.randn(n, 1, 2, 2, generator=g), -2.0, 2.0)
    y = torch.randint(0, K, (n,), generator=g)
    return model, x, y


def test_targeted_pgd_bounds_targets_and_model_untouched():
    model, x, y = _pgd_setting()
    model.train()
    before = _state(model)
    adv, target = targeted_pgd(model, x, y, PIXELS, epsilon=0.03, step=0.01, steps=3,
                               generator=torch.Generator().manual_seed(1))
    assert adv.shape == x.shape and target.shape == y.shape and target.dtype == torch.long
    radius = 0.03 / 0.25
    assert (adv - x).abs().max().item() <= radius + 1e-6
    assert (adv - x).abs().max().item() > radius / 2  # it did move
    assert adv.min().item() >= -2.0 - 1e-6 and adv.max().item() <= 2.0 + 1e-6
    assert (target != y).all()
    # The target is the most likely wrong class of the clean image.
    with torch.no_grad():
        logits = model[2](x.flatten(1))
    wrong = logits.scatter(1, y[:, None], float("-inf"))
    assert torch.equal(target, wrong.argmax(1))
    # Read in eval mode, left in train mode, parameters as they were, no gradient kept.
    assert model[0].seen and not any(model[0].seen)
    assert model.training and all(m.training for m in model.modules())
    assert _same_state(before, model)
    assert all(p.grad is None for p in model.parameters())
    assert not adv.requires_grad


def test_targeted_pgd_lowers_the_target_loss():
    model, x, y = _pgd_setting(n=200, seed=2)
    model.eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    start, target = targeted_pgd(model, x, y, PIXELS, epsilon=0.1, step=0.04, steps=0, generator=g())
    adv, target2 = targeted_pgd(model, x, y, PIXELS, epsilon=0.1, step=0.04, steps=5, generator=g())
    assert torch.equal(target, target2)
    with torch.no_grad():
        loss = lambda z: nn.functional.cross_entropy(model(z), target).item()  # noqa: E731
        assert loss(adv) < loss(x) - 0.05
        assert loss(adv) < loss(start)


def test_targeted_pgd_zero_steps_is_the_random_start():
    model, x, y = _pgd_setting(n=10)
    adv, _ = targeted_pgd(model, x, y, PIXELS, epsilon=0.05, steps=0,
                          generator=torch.Generator().manual_seed(9))
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(9))
    radius = 0.05 / 0.25
    expected = torch.clamp(x + (2 * noise - 1) * radius,
                           torch.clamp(x - radius, min=-2.0), torch.clamp(x + radius, max=2.0))
    assert torch.allclose(adv, expected, atol=1e-6)
    again, _ = targeted_pgd(model, x, y, PIXELS, epsilon=0.05, steps=0,
                            generator=torch.Generator().manual_seed(9))
    assert torch.equal(adv, again)
    zero, _ = targeted_pgd(model, x, y, PIXELS, epsilon=0.0, steps=3)
    assert torch.equal(zero, x)  # epsilon 0: nowhere to go


def test_targeted_pgd_refuses_bad_input():
    model, x, y = _pgd_setting(n=4)
    with pytest.raises(ValueError, match="normalisation"):
        targeted_pgd(model, x, y, None)
    with pytest.raises(ValueError, match="must be >= 0"):
        targeted_pgd(model, x, y, PIXELS, epsilon=-0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        targeted_pgd(model, x, y, PIXELS, steps=-1)


# --------------------------------------------------------------------------------------------
# over-unlearning


def test_masked_softmax():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-3.0, 5.0, 1.0]])
    p = masked_softmax(logits, (1,))
    assert p.dtype == torch.float64
    assert torch.allclose(p.sum(1), torch.ones(3, dtype=torch.float64))
    assert (p[:, 1] == 0).all()
    full = torch.softmax(logits.double(), 1)
    # The unmasked classes keep their ratios.
    assert torch.allclose(p[:, 0] / p[:, 2], full[:, 0] / full[:, 2])
    two = masked_softmax(logits, (0, 2))
    assert torch.allclose(two[:, 1], torch.ones(3, dtype=torch.float64), atol=1e-9)


def test_js_divergence_properties():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(50, 4, generator=g), 1)
    q = torch.softmax(3 * torch.randn(50, 4, generator=g), 1)
    assert torch.allclose(js_divergence(p, p), torch.zeros(50, dtype=torch.float64), atol=1e-12)
    d = js_divergence(p, q)
    assert torch.allclose(d, js_divergence(q, p))
    assert (d >= 0).all() and (d <= math.log(2) + 1e-12).all() and (d > 0).all()
    # Disjoint supports: exactly ln 2; a hand value with a zero probability.
    disjoint = js_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    assert disjoint.item() == pytest.approx(math.log(2))
    half = js_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]))
    expected = 0.5 * math.log(1 / 0.75) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2))
    assert half.item() == pytest.approx(expected)


class Logits(nn.Module):
    """A fixed linear map of the flattened image, class 0 favoured by ``lead``."""

    def __init__(self, lead: float = 3.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(4, K)
        with torch.no_grad():
            self.fc.weight.copy_(0.5 * torch.randn(K, 4, generator=g))
            self.fc.bias.copy_(torch.tensor([lead, 0.0, 0.0]))

    def forward(self, x):
        return self.fc(x.flatten(1))


class Masked(nn.Module):
    """The perfect forgetter: the original's logits with the forget classes at -1e4."""

    def __init__(self, inner: nn.Module, classes):
        super().__init__()
        self.inner, self.classes = inner, list(classes)

    def forward(self, x):
        out = self.inner(x).clone()
        out[:, self.classes] = -1e4
        return out


class NaNs(nn.Module):
    def forward(self, x):
        return torch.full((len(x), K), float("nan"))


def _forget_images(n: int = 40, seed: int = 1) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.clamp(torch.randn(n, 1, 2, 2, generator=g), -2, 2),
                 torch.zeros(n, dtype=torch.long))


def test_over_unlearning_zero_for_the_masked_original_positive_for_the_original():
    original, forget = Logits(), _forget_images()
    perturbed = perturb(original, forget, PIXELS, seed=3)
    reference = references(original, perturbed, (FORGET,))
    assert set(reference) == {"pgd", "gaussian"}
    masked = over_unlearning(Masked(original, (FORGET,)), perturbed, reference)
    itself = over_unlearning(original, perturbed, reference)
    assert set(masked) == set(itself) == {"pgd", "gaussian"}
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in masked.values())
    assert all(0.1 < v <= math.log(2) for v in itself.values())  # most mass on the forget class
    # A model between the two (the original with a smaller forget lead) lies between them.
    mid = over_unlearning(Logits(lead=0.0), perturbed, reference)
    assert all(masked[k] < mid[k] < itself[k] for k in mid)


def test_over_unlearning_refuses_non_finite_outputs_and_empty_images():
    original, forget = Logits(), _forget_images(n=8)
    perturbed = perturb(original, forget, PIXELS)
    reference = references(original, perturbed, (FORGET,))
    with pytest.raises(ValueError, match="not finite"):
        over_unlearning(NaNs(), perturbed, reference)
    empty = {"pgd": forget.x[:0]}
    with pytest.raises(ValueError, match="no pgd images"):
        over_unlearning(original, empty, {"pgd": reference["pgd"][:0]})


def test_over_unlearning_refuses_nan_outputs_even_for_a_confident_original():
    original, forget = Logits(lead=1000.0), _forget_images(n=4)
    images = {"pgd": forget.x}
    reference = references(original, images, (FORGET,))
    with pytest.raises(ValueError, match="not finite"):
        over_unlearning(NaNs(), images, reference)


def test_perturb_shapes_bounds_and_seeds():
    original, forget = Logits(), _forget_images(n=200)
    a = perturb(original, forget, PIXELS, seed=5)
    b = perturb(original, forget, PIXELS, seed=5)
    c = perturb(original, forget, PIXELS, seed=6)
    assert set(a) == {"pgd", "gaussian"}
    for kind in a:
        assert a[kind].shape == forget.x.shape and a[kind].dtype == forget.x.dtype
        assert a[kind].min().item() >= -2.0 - 1e-6 and a[kind].max().item() <= 2.0 + 1e-6
        assert torch.equal(a[kind], b[kind]) and not torch.equal(a[kind], c[kind])
    # PGD is targeted_pgd with the seed's generator, within epsilon.
    pgd, _ = targeted_pgd(original, forget.x, forget.y, PIXELS, 0.03, 0.01, 3,
                          torch.Generator().manual_seed(5))
    assert torch.equal(a["pgd"], pgd)
    assert (a["pgd"] - forget.x).abs().max().item() <= 0.03 / 0.25 + 1e-6
    # Gaussian noise of sigma 0.01 on the [0, 1] scale: 0.04 in normalised units, off the edges.
    inside = (forget.x > -1.8) & (forget.x < 1.8)
    std = (a["gaussian"] - forget.x)[inside].std().item()
    assert 0.035 < std < 0.045
    still = perturb(original, forget, PIXELS, sigma=0.0)
    assert torch.equal(still["gaussian"], forget.x)
    with pytest.raises(ValueError, match="normalisation"):
        perturb(original, forget, None)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        perturb(original, forget, PIXELS, sigma=-0.01)


# --------------------------------------------------------------------------------------------
# linear CKA


def test_linear_cka_invariances_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, -7.5 * x + 3.0) == pytest.approx(1.0)  # scale and shift
    y = torch.randn(300, 4, generator=g)
    independent = linear_cka(x, y)
    assert 0.0 <= independent < 0.2
    assert linear_cka(y, x) == pytest.approx(independent)
    # Not invariant to an anisotropic scale: below 1.
    stretched = linear_cka(x, x * torch.tensor([10.0, 1, 1, 1, 1, 0.1]))
    assert 0.0 < stretched < 0.99
    mixed = linear_cka(x, x[:, :3] + 0.5 * torch.randn(300, 3, generator=g))
    assert independent < mixed < 1.0


def test_linear_cka_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(5, 2\) and \(4, 2\)"):
        linear_cka(torch.randn(5, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="same images"):
        linear_cka(torch.randn(5), torch.randn(5, 2))


def test_linear_cka_nan_for_constant_float32_features():
    assert math.isnan(linear_cka(torch.full((50, 3), 0.3), torch.randn(50, 2)))
    assert math.isnan(linear_cka(torch.randn(50, 2), torch.zeros(50, 4)))


def test_linear_cka_nan_for_constant_float64_features():
    x = torch.full((100, 3), 0.3, dtype=torch.float64)
    assert math.isnan(linear_cka(x, torch.randn(100, 4, dtype=torch.float64)))


# --------------------------------------------------------------------------------------------
# ProbeConfig


@pytest.mark.parametrize("setting, value", [
    ("probes.prototype_shots", [0]), ("probes.prototype_shots", []),
    ("probes.prototype_shots", "x"), ("probes.prototype_shots", [1.5]),
    ("probes.prototype_shots", [True]), ("probes.prototype_shots", [5, -1]),
    ("probes.prototype_alphas", [0]), ("probes.prototype_alphas", [1.5]),
    ("probes.prototype_alphas", []), ("probes.prototype_alphas", [float("nan")]),
])
def test_probe_config_refuses_bad_lists(setting, value):
    with pytest.raises(SettingError, match=f"'{setting}'"):
        resolve("smoke", {setting: value})


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_probe_config_refuses_non_finite_shots(value):
    with pytest.raises(SettingError, match="'probes.prototype_shots'"):
        resolve("smoke", {"probes.prototype_shots": [value]})


def test_probe_config_sorts_and_deduplicates():
    probes = resolve("smoke", {"probes.prototype_shots": [10, 1, 10, 5.0],
                               "probes.prototype_alphas": [1, 0.5, 0.5]}).probes
    assert probes.prototype_shots == (1, 5, 10)
    assert all(type(k) is int for k in probes.prototype_shots)
    assert probes.prototype_alphas == (0.5, 1.0)
    assert all(type(a) is float for a in probes.prototype_alphas)


# --------------------------------------------------------------------------------------------
# The claim checks on hand-made tidy tables


def _results() -> pd.DataFrame:
    """LP / NCC forget: Retrain 50 / 40; RL 70 (high-LP); SalUn 55 (not); Spotter 60-62 / 48-50.
    Spotter's cmf rows (LP 99) must never be read."""
    cells = {  # model, variant -> {(head, forget_set): forget accuracy}
        ("original", "full"): {("lp", "0"): 95.0, ("lp", "1"): 95.0, ("ncc", "0"): 90.0,
                               ("ncc", "1"): 90.0},
        ("retrain", "full"): {("lp", "0"): 50.0, ("lp", "1"): 50.0, ("ncc", "0"): 40.0,
                              ("ncc", "1"): 40.0},
        ("rl", "full"): {("lp", "0"): 70.0, ("lp", "1"): 70.0, ("ncc", "0"): 60.0,
                         ("ncc", "1"): 60.0},
        ("salun", "full"): {("lp", "0"): 55.0, ("ncc", "0"): 45.0},
        ("spotter", "full"): {("lp", "0"): 60.0, ("lp", "1"): 62.0, ("ncc", "0"): 48.0,
                              ("ncc", "1"): 50.0},
        ("spotter", "cmf"): {("lp", "0"): 99.0, ("lp", "1"): 99.0, ("ncc", "0"): 99.0,
                             ("ncc", "1"): 99.0},
    }
    rows = []
    for (model, variant), values in cells.items():
        for (head, fs), acc in values.items():
            rows += [{"model": model, "variant": variant, "forget_set": fs, "head": head,
                      "split": "forget", "accuracy": acc},
                     {"model": model, "variant": variant, "forget_set": fs, "head": head,
                      "split": "retain", "accuracy": 90.0}]
        for fs in sorted({fs for _, fs in values}):
            rows += [{"model": model, "variant": variant, "forget_set": fs, "head": "output",
                      "split": s, "accuracy": a} for s, a in (("forget", 0.0), ("retain", 92.0))]
    return pd.DataFrame(rows)


def _recovery(rows) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "variant": v, "forget_set": fs, "attack": a, "auc": auc,
                          "keeps_retain": keeps}
                         for m, v, fs, a, auc, keeps in rows])


def _check(checks: pd.DataFrame, check: str, subject: str) -> pd.Series:
    row = checks[(checks["check"] == check) & (checks["subject"] == subject)]
    assert len(row) == 1, f"{check} {subject}: {len(row)} rows in\n{checks}"
    return row.iloc[0]


def test_strongest_attack_checks():
    recovery = _recovery([
        ("rl", "full", "0", "few_shot", 60.0, None), ("rl", "full", "0", "head_only", 70.0, None),
        ("rl", "full", "0", "retain_finetune", 99.0, None),
        ("rl", "full", "0", "prototype (l2, α=1)", 90.0, False),
        ("rl", "full", "1", "few_shot", 50.0, None),
        ("rl", "full", "1", "prototype (cosine, α=1)", 65.0, True),
        ("retrain", "full", "0", "few_shot", 30.0, None),
        ("retrain", "full", "0", "head_only", 20.0, None),
        ("retrain", "full", "1", "few_shot", 25.0, None),
        ("retrain", "full", "1", "retain_finetune", 80.0, None),
        ("salun", "full", "0", "few_shot", 45.0, None),
    ])
    checks = strongest_attack_checks(recovery, _results())
    assert set(checks["check"]) == {"claim4_strongest_gain"}
    assert set(checks["subject"]) == {"rl", "salun"}
    rl = _check(checks, "claim4_strongest_gain", "rl")
    # RL's strongest: 70 (set 0), 65 (set 1); Retrain's: 30, 25.
    assert rl["value"] == pytest.approx(67.5 - 27.5) and rl["applies"]
    assert rl["op"] == ">" and rl["threshold"] == 0.0
    salun = _check(checks, "claim4_strongest_gain", "salun")
    # SalUn shares set 0 only with Retrain; its LP gap is 5 < HIGH_LP_MARGIN.
    assert HIGH_LP_MARGIN == 10.0
    assert salun["value"] == pytest.approx(45.0 - 30.0) and not salun["applies"]


def test_strongest_attack_checks_other_variants():
    recovery = _recovery([
        ("rl", "cmf", "0", "few_shot", 20.0, None), ("rl", "cmf", "1", "few_shot", 40.0, None),
        ("retrain", "full", "0", "few_shot", 30.0, None),
        ("retrain", "full", "1", "few_shot", 25.0, None),
    ])
    results = pd.concat([_results(), _results().query("model == 'rl'").assign(variant="cmf")],
                        ignore_index=True)
    checks = strongest_attack_checks(recovery, results, variants=("full", "cmf"))
    row = _check(checks, "claim4_strongest_gain", "rl/cmf")
    assert row["value"] == pytest.approx(30.0 - 27.5) and row["applies"]
    assert "rl" not in set(checks["subject"])  # no full rows of RL in this recovery


def _beyond_tables():
    prototype = _recovery([
        ("rl", "full", "0", "prototype (cosine, α=1)", 80.0, True),
        ("rl", "full", "0", "prototype (l2, α=1)", 95.0, False),
        ("rl", "full", "1", "prototype (cosine, α=1)", 60.0, True),
        ("retrain", "full", "0", "prototype (cosine, α=1)", 20.0, True),
        ("retrain", "full", "1", "prototype (cosine, α=1)", 10.0, True),
        ("salun", "full", "0", "prototype (cosine, α=1)", 40.0, True),
        ("spotter", "full", "0", "prototype (cosine, α=1)", 15.0, True),
        ("spotter", "full", "1", "prototype (cosine, α=1)", 12.0, True),
        ("spotter", "full", "1", "prototype (l2, α=0.5)", 11.0, True),
    ])
    ou = pd.DataFrame([{"model": m, "variant": v, "forget_set": fs, "perturbation": p, "value": x}
                       for m, v, fs, p, x in [
                           ("spotter", "full", "0", "pgd", 0.02), ("spotter", "full", "1", "pgd", 0.04),
                           ("spotter", "full", "2", "pgd", 9.0),  # Retrain has no set 2
                           ("spotter", "full", "0", "gaussian", 5.0),
                           ("spotter", "cmf", "0", "pgd", 7.0),
                           ("retrain", "full", "0", "pgd", 0.1), ("retrain", "full", "1", "pgd", 0.2),
                           ("retrain", "full", "0", "gaussian", 0.001),
                           ("rl", "full", "0", "pgd", 0.5)]])
    return prototype, ou


def test_beyond_checks_values():
    prototype, ou = _beyond_tables()
    checks = beyond_checks(prototype, ou, _results())
    rl = _check(checks, "prototype_gain", "rl")
    assert rl["value"] == pytest.approx((80 + 60) / 2 - (20 + 10) / 2) and rl["applies"]
    salun = _check(checks, "prototype_gain", "salun")
    assert salun["value"] == pytest.approx(40.0 - 20.0) and not salun["applies"]
    # The defence: its own checks, never prototype_gain.
    assert not ((checks["check"] == "prototype_gain") & (checks["subject"] == "spotter")).any()
    gain = _check(checks, "defence_prototype_gain", "spotter")
    assert gain["value"] == pytest.approx((15 + 12) / 2 - 15.0)
    assert TOLERANCES["defence_prototype_gain"].holds(gain["value"])
    ratio = _check(checks, "defence_ou_ratio", "spotter")
    assert ratio["value"] == pytest.approx(((0.02 + 0.04) / 2) / ((0.1 + 0.2) / 2))
    assert ratio["op"] == "<" and ratio["threshold"] == 1.0
    lp = _check(checks, "defence_above_retrain", "spotter/lp")
    ncc = _check(checks, "defence_above_retrain", "spotter/ncc")
    assert lp["value"] == pytest.approx(61.0 - 50.0)
    assert ncc["value"] == pytest.approx(49.0 - 40.0)
    assert all(checks["applies"][checks["check"].str.startswith("defence")])
    expected = {("prototype_gain", "rl"), ("prototype_gain", "salun"),
                ("defence_prototype_gain", "spotter"), ("defence_ou_ratio", "spotter"),
                ("defence_above_retrain", "spotter/lp"), ("defence_above_retrain", "spotter/ncc")}
    assert set(zip(checks["check"], checks["subject"])) == expected


def test_beyond_checks_another_defence():
    prototype, ou = _beyond_tables()
    checks = beyond_checks(prototype, ou, _results(), defences=("salun",))
    assert _check(checks, "defence_prototype_gain", "salun")["value"] == pytest.approx(20.0)
    assert _check(checks, "prototype_gain", "spotter")["value"] == pytest.approx(-1.5)
    assert _check(checks, "prototype_gain", "spotter")["applies"]  # LP gap 61 - 50 = 11 >= 10
    # SalUn has no OU rows: no ratio; its LP / NCC above Retrain on the set it has.
    assert not (checks["check"] == "defence_ou_ratio").any()
    assert _check(checks, "defence_above_retrain", "salun/lp")["value"] == pytest.approx(5.0)
    assert _check(checks, "defence_above_retrain", "salun/ncc")["value"] == pytest.approx(5.0)
