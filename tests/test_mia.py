"""SVC membership-inference efficacy on logits with known confidences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from illusion import mia

K = 10


def logits_with_confidence(conf: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax gives the true label probability ``conf`` (others share the rest)."""
    logits = torch.zeros(len(y), K, dtype=torch.float64)
    true = torch.log(conf * (K - 1) / (1 - conf))
    return logits.scatter(1, y.view(-1, 1), true.view(-1, 1))


def sample(n: int, level: float, seed: int, spread: float = 0.02):
    g = torch.Generator().manual_seed(seed)
    conf = (level + spread * torch.randn(n, generator=g, dtype=torch.float64)).clamp(0.02, 0.999)
    y = torch.randint(K, (n,), generator=g)
    return logits_with_confidence(conf, y), y


def test_confidence_is_the_softmax_probability_of_the_true_label():
    y = torch.tensor([0, 3, 7])
    conf = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    got = mia.confidence(logits_with_confidence(conf, y), y)
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got[:, 0], conf.numpy(), rtol=1e-9)
    np.testing.assert_allclose(mia.confidence(torch.zeros(2, 4), torch.tensor([1, 2])), 0.25)


@pytest.mark.parametrize("forget_level, low, high", [(0.1, 95.0, 100.0), (0.99, 0.0, 5.0)])
def test_efficacy_on_known_members_and_non_members(forget_level, low, high):
    members, outsiders = sample(300, 0.99, 1), sample(200, 0.1, 2)
    forget = sample(100, forget_level, 3)
    value = mia.mia_efficacy(*members, *outsiders, *forget, seed=0)
    assert low <= value <= high


def test_efficacy_is_a_percentage_between_the_extremes_for_a_mixed_forget_set():
    members, outsiders = sample(300, 0.99, 1), sample(200, 0.1, 2)
    half_seen = [torch.cat(parts) for parts in zip(sample(50, 0.99, 4), sample(50, 0.1, 5))]
    value = mia.mia_efficacy(*members, *outsiders, *half_seen)
    assert math.isclose(value, 50.0, abs_tol=5.0)
    assert value == mia.mia_efficacy(*members, *outsiders, *half_seen)  # deterministic


def test_shadow_set_is_balanced_by_subsampling(monkeypatch):
    seen = {}

    import sklearn.svm

    class Recording(sklearn.svm.SVC):
        def fit(self, x, y):
            seen["members"], seen["outsiders"] = int((y == 1).sum()), int((y == 0).sum())
            return super().fit(x, y)

    monkeypatch.setattr(sklearn.svm, "SVC", Recording)  # mia imports it per call
    mia.mia_efficacy(*sample(300, 0.99, 1), *sample(40, 0.1, 2), *sample(10, 0.5, 3))
    assert seen == {"members": 40, "outsiders": 40}


def test_bad_inputs_raise_value_errors():
    members, outsiders = sample(20, 0.99, 1), sample(20, 0.1, 2)
    empty = (torch.zeros(0, K), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="forget"):
        mia.mia_efficacy(*members, *outsiders, *empty)
    with pytest.raises(ValueError, match="shape"):
        mia.mia_efficacy(members[0], members[1][:5], *outsiders, *outsiders)


# The authors' protocol: members D_r, non-members D_f, target the forget classes' test images.

@pytest.mark.parametrize("target_level, low, high", [(0.1, 95.0, 100.0), (0.99, 0.0, 5.0)])
def test_authors_efficacy_on_known_members_and_non_members(target_level, low, high):
    retain, forget = sample(300, 0.99, 1), sample(60, 0.1, 2)
    forget_test = sample(100, target_level, 3)
    assert low <= mia.mia_efficacy_authors(*retain, *forget, *forget_test) <= high


def test_authors_shadow_set_is_used_whole_and_unbalanced(monkeypatch):
    seen = {}

    import sklearn.svm

    class Recording(sklearn.svm.SVC):
        def fit(self, x, y):
            seen["members"], seen["outsiders"] = int((y == 1).sum()), int((y == 0).sum())
            return super().fit(x, y)

    monkeypatch.setattr(sklearn.svm, "SVC", Recording)  # mia imports it per call
    mia.mia_efficacy_authors(*sample(300, 0.99, 1), *sample(40, 0.1, 2), *sample(10, 0.5, 3))
    assert seen == {"members": 300, "outsiders": 40}


def test_authors_attacker_keeps_the_class_prior_and_draws_nothing():
    # Members and non-members alike, 10 to 1: unbalanced, the attacker calls everything a member
    # (0%); SalUn's balanced subsample gives a seed-dependent coin toss instead.
    retain, forget = sample(300, 0.5, 10, spread=0.1), sample(30, 0.5, 20, spread=0.1)
    forget_test = sample(200, 0.5, 30, spread=0.1)
    assert mia.mia_efficacy_authors(*retain, *forget, *forget_test) == 0.0
    salun = {mia.mia_efficacy(*retain, *forget, *forget_test, seed=s) for s in range(3)}
    assert len(salun) > 1 and min(salun) > 20.0
    # No subsampling: the order of the samples does not matter.
    members, outsiders = sample(200, 0.9, 4, spread=0.1), sample(50, 0.6, 5, spread=0.1)
    target = sample(100, 0.75, 6, spread=0.1)
    value = mia.mia_efficacy_authors(*members, *outsiders, *target)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(7))
    shuffled = (members[0][order], members[1][order])
    assert mia.mia_efficacy_authors(*shuffled, *outsiders, *target) == value
    assert 0.0 < value < 100.0


def test_authors_bad_inputs_raise_value_errors():
    retain, forget = sample(20, 0.99, 1), sample(20, 0.1, 2)
    empty = (torch.zeros(0, K), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="forget-test"):
        mia.mia_efficacy_authors(*retain, *forget, *empty)
    with pytest.raises(ValueError, match="shape"):
        mia.mia_efficacy_authors(*retain, forget[0], forget[1][:5], *forget)
    with pytest.raises(ValueError, match="shape"):
        mia.mia_efficacy_authors(*retain, *forget, forget[0][:, 0], forget[1])


def test_mia_by_protocol_passes_each_protocol_its_roles():
    retain, test, forget = sample(100, 0.99, 1), sample(80, 0.1, 2), sample(60, 0.3, 3)
    forget_test = sample(50, 0.2, 4)
    roles = {"retain": retain, "test": test, "forget": forget, "forget_test": forget_test}
    assert set(mia.MIA_PROTOCOLS) == {"salun", "authors"}
    # Alike members and non-members make SalUn's value depend on its seed, which must reach it.
    alike = {"retain": sample(300, 0.5, 10, spread=0.1), "test": sample(30, 0.5, 20, spread=0.1),
             "forget": sample(200, 0.5, 30, spread=0.1)}
    salun = [mia.mia_by_protocol("salun", **alike, seed=s) for s in range(3)]
    assert salun == [mia.mia_efficacy(*alike["retain"], *alike["test"], *alike["forget"], seed=s)
                     for s in range(3)]
    assert len(set(salun)) > 1
    assert (mia.mia_by_protocol("authors", **roles)
            == mia.mia_efficacy_authors(*retain, *forget, *forget_test))
    assert (mia.mia_by_protocol("salun", retain=retain, test=test, forget=forget)
            == mia.mia_efficacy(*retain, *test, *forget))
    with pytest.raises(ValueError, match=r"needs the roles \['forget_test'\]"):
        mia.mia_by_protocol("authors", retain=retain, test=test, forget=forget)
    with pytest.raises(ValueError, match=r"'esc'.*valid choices: \['salun', 'authors'\]"):
        mia.mia_by_protocol("esc", **roles)
