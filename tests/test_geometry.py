"""Neural-collapse metrics, alignment cosines and the §6 forget-row theory."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from illusion.geometry import (NC_AUTHORS_KEYS, NC_FORMS, NC_KEYS, alignment_cosines,
                               forget_row_dynamics, forget_row_sweep, forget_row_window,
                               nc_metrics, nc_metrics_authors, nc_metrics_by_form,
                               replace_forget_row, simplex_etf, simplex_etf_features,
                               theory_bounds)


@pytest.mark.parametrize("K,d", [(5, 8), (10, 9), (2, 3)])
def test_simplex_etf_geometry(K, d):
    M = simplex_etf(K, d, seed=1)
    assert M.shape == (K, d)
    gram = M @ M.T
    expected = torch.full((K, K), -1.0 / (K - 1), dtype=torch.float64).fill_diagonal_(1.0)
    torch.testing.assert_close(gram, expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="d >= K-1"):
        simplex_etf(K, K - 2)


@pytest.mark.parametrize("K,d,alpha", [(4, 4, 1.0), (10, 9, 3.0), (10, 32, 0.5)])
def test_exact_collapse_gives_zero(K, d, alpha):
    features, labels, M = simplex_etf_features(K, d, n_per_class=6, seed=2)
    metrics = nc_metrics(features, labels, alpha * M, torch.zeros(K))
    assert set(metrics) == set(NC_KEYS)
    for key in ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc3", "nc4"):
        assert abs(metrics[key]) < 1e-9, (key, metrics[key])
    assert metrics["nc3_cosine"] == pytest.approx(1.0, abs=1e-12)
    no_classifier = nc_metrics(features, labels)
    assert math.isnan(no_classifier["nc3"]) and math.isnan(no_classifier["nc4"])


def test_within_class_noise_raises_nc1_monotonically():
    nc1 = [nc_metrics(*simplex_etf_features(6, 10, 200, noise=s, seed=3)[:2])["nc1"]
           for s in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert nc1[0] < 1e-12
    assert all(a < b for a, b in zip(nc1, nc1[1:])), nc1


def test_nc1_by_hand_pseudo_inverse():
    # Means (1,0), (-1,0) so Sigma_B = e1 e1^T; deviations (+-1, +-1) so Sigma_W = I.
    # tr(Sigma_W Sigma_B^+)/K = tr(e1 e1^T)/2 = 1/2: the e2 spread is outside Sigma_B's range.
    features = [[2, 1], [0, -1], [-2, 1], [0, -1]]
    assert nc_metrics(features, [0, 0, 1, 1])["nc1"] == pytest.approx(0.5, abs=1e-12)


def test_nc2_nc3_by_hand():
    # Three means (1,0), (0,1), (-1,0), one sample each: mu_G = (0, 1/3), centred means
    # (1,-1/3), (0,2/3), (-1,-1/3) with norms sqrt(10)/3, 2/3, sqrt(10)/3.
    features = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = np.array([0, 1, 2])
    norms = np.array([math.sqrt(10) / 3, 2 / 3, math.sqrt(10) / 3])
    cv = math.sqrt((norms ** 2).mean() - norms.mean() ** 2) / norms.mean()
    # cos(0,2) = (-1 + 1/9)/(10/9) = -0.8; cos(0,1) = cos(1,2) = (-2/9)/(2 sqrt(10)/9).
    c = -1 / math.sqrt(10)
    equiangular = (abs(-0.8 + 0.5) + 2 * abs(c + 0.5)) / 3
    gram = np.array([[1, c, -0.8], [c, 1, c], [-0.8, c, 1]])
    P = np.eye(3) - 1 / 3
    etf = np.linalg.norm(gram / np.linalg.norm(gram) - P / np.linalg.norm(P))
    # Classifier = centred means with row 0 flipped: ||W/|W| - M/|M|||_F = 2 |m_0| / |M|_F.
    centred = features - features.mean(0)
    W = centred.copy()
    W[0] *= -1
    m = nc_metrics(features, labels, W)
    assert m["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert m["nc2_equinorm"] == pytest.approx(cv, abs=1e-12)
    assert m["nc2_equiangular"] == pytest.approx(equiangular, abs=1e-12)
    assert m["nc2_etf"] == pytest.approx(etf, abs=1e-12)
    assert m["nc3"] == pytest.approx(2 * math.sqrt(10 / 24), abs=1e-12)
    assert m["nc3_cosine"] == pytest.approx((-1 + 1 + 1) / 3, abs=1e-12)
    cos = alignment_cosines(features, labels, W)
    assert cos["cosine"].tolist() == pytest.approx([-1.0, 1.0, 1.0], abs=1e-12)


def test_nc4_counts_forget_samples_moved_by_the_classifier():
    # The §6 construction: the forget row -c mu_f inside the window misclassifies exactly the
    # forget samples, while the nearest class mean still finds them: NC4 = 1/K.
    K, alpha = 8, 2.0
    features, labels, M = simplex_etf_features(K, 12, 5, seed=4)
    W = alpha * M.clone()
    W[3] = -1.0 * M[3]
    assert theory_bounds(alpha, K)[0] < 1.0 < theory_bounds(alpha, K)[1]
    assert nc_metrics(features, labels, W)["nc4"] == pytest.approx(1 / K, abs=1e-12)
    cos = alignment_cosines(features, labels, W, classes=[3, 5])
    assert cos["class"].tolist() == [3, 5]
    assert cos["cosine"].tolist() == pytest.approx([-1.0, 1.0], abs=1e-12)
    assert cos["count"].tolist() == [5, 5]


def test_subset_of_classes_counts_k_from_data():
    # Dropping one class of a K-simplex leaves a (K-1)-simplex around the subset's mean:
    # NC2 is 0 only if K is counted from the data (-1/(K-2), not -1/(K-1)).
    K = 6
    features, labels, M = simplex_etf_features(K, 10, 4, seed=5)
    retain = nc_metrics(features, labels, classes=[0, 1, 2, 4, 5])
    assert retain["nc2_equiangular"] < 1e-9 and retain["nc2_etf"] < 1e-9
    assert retain["nc2_equinorm"] < 1e-9 and retain["nc1"] < 1e-9
    # Non-contiguous class ids with W rows indexed by id; the other rows are junk.
    ids = torch.tensor([3, 7, 8, 12, 20, 21])
    W = torch.randn(25, 10, dtype=torch.float64)
    W[ids] = 2.0 * M
    sparse = nc_metrics(features, ids[labels], W, torch.zeros(25), classes=ids[:3].tolist())
    dense = nc_metrics(features, labels, 2.0 * M, classes=[0, 1, 2])
    for key in NC_KEYS:
        assert sparse[key] == pytest.approx(dense[key], abs=1e-12), key
    assert nc_metrics(features, ids[labels], W)["nc3"] < 1e-9
    with pytest.raises(ValueError, match=r"classes \[4\] have no samples"):
        nc_metrics(features, ids[labels], W, classes=[3, 4])
    with pytest.raises(ValueError, match="at least 2 classes"):
        nc_metrics(features, labels, classes=[1])
    with pytest.raises(ValueError, match="does not fit"):
        nc_metrics(features, ids[labels], 2.0 * M)


@pytest.mark.parametrize("K,d,alpha", [(4, 4, 1.0), (10, 9, 3.0), (10, 32, 0.5)])
def test_authors_forms_are_zero_under_exact_collapse(K, d, alpha):
    features, labels, M = simplex_etf_features(K, d, n_per_class=6, seed=2)
    metrics = nc_metrics_authors(features, labels, alpha * M, torch.zeros(K))
    assert tuple(metrics) == NC_AUTHORS_KEYS
    for key, value in metrics.items():
        assert abs(value) < 1e-9, (key, value)
    assert math.isnan(nc_metrics_authors(features, labels)["nc3"])


def test_authors_forms_grow_with_perturbations():
    K, d = 6, 10
    nc1 = [nc_metrics_authors(*simplex_etf_features(K, d, 200, noise=s, seed=3)[:2])["nc1"]
           for s in (0.0, 0.05, 0.1, 0.2, 0.4)]
    assert nc1[0] < 1e-12
    assert all(a < b for a, b in zip(nc1, nc1[1:])), nc1
    features, labels, M = simplex_etf_features(K, d, 3, seed=4)
    moved = features.clone()
    moved[labels == 2] += 0.3 * M[4]  # one class mean leaves the simplex
    assert nc_metrics_authors(moved, labels)["nc2_etf"] > 0.01
    W = M.clone()
    W[1] += 0.3 * M[3]                 # one classifier row leaves the means
    assert nc_metrics_authors(features, labels, W)["nc3"] > 0.01


def test_authors_forms_ignore_the_scale_of_each_sample():
    # They L2-normalise every feature: rescaling samples changes nothing, unlike Papyan's NC1.
    features, labels, M = simplex_etf_features(5, 8, 40, noise=0.3, seed=5)
    scale = torch.rand(len(labels), 1, generator=torch.Generator().manual_seed(6),
                       dtype=torch.float64) * 9.0 + 0.5
    W = 2.0 * M + 0.1
    before = nc_metrics_authors(features, labels, W)
    after = nc_metrics_authors(scale * features, labels, W)
    for key in NC_AUTHORS_KEYS:
        assert after[key] == pytest.approx(before[key], rel=1e-9, abs=1e-12), key
    assert abs(nc_metrics(scale * features, labels)["nc1"]
               - nc_metrics(features, labels)["nc1"]) > 0.1


def test_authors_nc1_weighs_every_class_the_same():
    # Unit features: class 0 = {(1, 0) x2, (0.6, 0.8), (0.6, -0.8)} (4 samples), class 1 =
    # {(-1, 0)} (1 sample). Means (0.8, 0), (-1, 0); mu_G = (0.44, 0) (5 samples).
    features = [[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]]
    labels = [0, 0, 0, 0, 1]
    # Sigma_B = 1/2 ((0.36)^2 + (1.44)^2) e1 e1^T; class 0's x-variance is (2 (0.2)^2 +
    # 2 (0.2)^2)/4 = 0.04 and class 1 has none, so the class-balanced Sigma_W_11 = 0.02
    # (pooling the 5 samples would give 0.032). NC1 = Sigma_W_11 / Sigma_B_11 / K.
    between = (0.36 ** 2 + 1.44 ** 2) / 2
    expected = 0.02 / between / 2
    assert nc_metrics_authors(features, labels)["nc1"] == pytest.approx(expected, abs=1e-12)


def test_authors_nc2_nc3_by_hand():
    # The three unit means of test_nc2_nc3_by_hand: centred (1,-1/3), (0,2/3), (-1,-1/3); their
    # inner products (not cosines) give G; P/sqrt(K-1) is the unit-norm simplex Gram.
    features = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = np.array([0, 1, 2])
    G = np.array([[10, -2, -8], [-2, 4, -2], [-8, -2, 10]]) / 9
    P = (np.eye(3) - 1 / 3) / math.sqrt(2)
    nc2 = np.linalg.norm(G / np.linalg.norm(G) - P)
    # W = the centred means with row 0 flipped: Z = W C^T is G with row 0 negated.
    W = features - features.mean(0)
    W[0] *= -1
    Z = G * np.array([[-1.0], [1.0], [1.0]])
    nc3 = np.linalg.norm(Z / np.linalg.norm(Z) - P)
    m = nc_metrics_authors(features, labels, W)
    assert m["nc2_etf"] == pytest.approx(nc2, abs=1e-12)
    assert m["nc3"] == pytest.approx(nc3, abs=1e-12)
    assert m["nc2_etf"] != pytest.approx(nc_metrics(features, labels)["nc2_etf"], abs=1e-3)


def test_authors_nc3_is_their_nc2_when_w_follows_the_means():
    # W = 3 C: Z = 3 C C^T, so NC3 = NC2 > 0 for means off the simplex, where Papyan's NC3 is 0.
    features, labels, _ = simplex_etf_features(5, 8, 4, noise=0.5, seed=7)
    unit = features / features.norm(dim=1, keepdim=True)
    centred = torch.stack([unit[labels == k].mean(0) for k in range(5)]) - unit.mean(0)
    m = nc_metrics_authors(features, labels, 3.0 * centred)
    assert m["nc2_etf"] > 0.01
    assert m["nc3"] == pytest.approx(m["nc2_etf"], abs=1e-12)
    assert nc_metrics(unit, labels, centred)["nc3"] < 1e-12


def test_authors_subset_keeps_the_global_mean():
    # Retain classes of a simplex, centred on the mean of *all* samples (the authors' retain
    # subsets), are not a smaller simplex: NC2 > 0, while Papyan's (subset-centred) form is 0.
    features, labels, M = simplex_etf_features(6, 10, 4, seed=8)
    retain = [0, 1, 2, 4, 5]
    assert nc_metrics(features, labels, classes=retain)["nc2_etf"] < 1e-9
    subset = nc_metrics_authors(features, labels, M, classes=retain)
    assert subset["nc2_etf"] > 0.01 and subset["nc1"] < 1e-12
    # Dropping the forget samples first moves mu_G to the subset mean: a (K-1)-simplex again.
    keep = torch.isin(labels, torch.tensor(retain))
    assert nc_metrics_authors(features[keep], labels[keep], M)["nc2_etf"] < 1e-9
    with pytest.raises(ValueError, match=r"classes \[7\] have no samples"):
        nc_metrics_authors(features, labels, classes=[0, 7])


def test_nc_metrics_by_form():
    features, labels, M = simplex_etf_features(4, 6, 5, noise=0.2, seed=9)
    b = torch.full((4,), 0.5, dtype=torch.float64)
    assert set(NC_FORMS) == {"papyan", "authors"}
    papyan = nc_metrics_by_form("papyan", features, labels, M, b)
    assert papyan == nc_metrics(features, labels, M, b)
    assert (nc_metrics_by_form("authors", features, labels, M, classes=[0, 1, 3])
            == nc_metrics_authors(features, labels, M, classes=[0, 1, 3]))
    with pytest.raises(ValueError, match=r"'cmf'.*valid choices: \['papyan', 'authors'\]"):
        nc_metrics_by_form("cmf", features, labels)


@pytest.mark.parametrize("K", [10, 100])
def test_forget_row_sweep_matches_the_theory(K):
    alpha = 1.5
    features, labels, M = simplex_etf_features(K, K, 2, seed=6)
    low, high = theory_bounds(alpha, K)
    assert (low, high) == pytest.approx((alpha / (K - 1), alpha * (K - 1)))
    inside = np.geomspace(low, high, 12)[1:-1]
    below = np.array([0.0, 0.5 * low, 0.9 * low])
    above = np.array([1.1 * high, 2.0 * high])
    sweep = forget_row_sweep(features, labels, M, alpha, forget_class=K // 2,
                             cs=np.concatenate([below, inside, above]))
    assert list(sweep.columns) == ["c", "retain_accuracy", "forget_accuracy"]
    n_below, n_inside = len(below), len(inside)
    part_below = sweep.iloc[:n_below]
    part_inside = sweep.iloc[n_below:n_below + n_inside]
    part_above = sweep.iloc[n_below + n_inside:]
    assert (part_inside["forget_accuracy"] == 0).all()
    assert (part_inside["retain_accuracy"] == 100).all()
    assert (part_below["forget_accuracy"] == 100).all()   # too weak: the forget class stays
    assert (part_below["retain_accuracy"] == 100).all()
    assert (part_above["retain_accuracy"] == 0).all()     # too strong: retain samples go to f
    assert (part_above["forget_accuracy"] == 0).all()


def test_replace_forget_row_by_hand():
    # Two classes on the axes, W = I: the forget logit of class 1 becomes -c h_2 (or
    # -c (h_2 - 1) with the centre at (0, 1)).
    features, labels, W = [[1.0, 0.0], [0.0, 1.0]], [0, 1], torch.eye(2)
    sweep = replace_forget_row(features, labels, W, None, 1, [0.0, 1.0], [-2.0, 0.5])
    assert sweep["forget_accuracy"].tolist() == [100.0, 0.0]  # logit 2 > 0, then -0.5 < 0
    assert sweep["retain_accuracy"].tolist() == [100.0, 100.0]  # sample 0: logit 0 < 1
    # Centred at (0, 1): sample 0 gets forget logit +c, which beats its own logit 1 at c = 2.
    centred = replace_forget_row(features, labels, W, None, 1, [0.0, 1.0], [0.5, 2.0],
                                 center=[0.0, 1.0])
    assert centred["retain_accuracy"].tolist() == [100.0, 0.0]
    # A bias on the other rows moves the comparison: b_0 = -3 lets a weak forget row win.
    biased = replace_forget_row(features, labels, W, [-3.0, 0.0], 1, [0.0, 1.0], [-0.5])
    assert biased["forget_accuracy"].tolist() == [100.0]
    assert biased["retain_accuracy"].tolist() == [0.0]
    # forget_row_sweep is the special case W = alpha M, direction mu_f.
    h, y, M = simplex_etf_features(6, 7, 3, noise=0.3, seed=8)
    cs = np.geomspace(1e-3, 1e3, 9)
    a = forget_row_sweep(h, y, M, 2.0, 4, cs)
    b = replace_forget_row(h, y, 2.0 * M, None, 4, M[4], cs)
    assert a.equals(b)
    with pytest.raises(ValueError, match="valid choices: 0..1"):
        replace_forget_row(features, labels, W, None, 2, [0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="do not fit"):
        replace_forget_row(features, labels, torch.eye(3), None, 1, [0.0, 1.0], [1.0])


def test_forget_row_window_known_answer():
    sweep = pd.DataFrame({"c": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
                          "retain_accuracy": [90.0, 90.0, 89.0, 91.0, 80.0, 10.0],
                          "forget_accuracy": [50.0, 4.0, 0.0, 0.0, 0.0, 0.0]})
    w = forget_row_window(sweep, reference_retain=90.0)
    assert (w["best_c"], w["best_retain"], w["best_forget"]) == (1.0, 91.0, 0.0)
    assert (w["low"], w["high"]) == (0.2, 1.0)
    assert w["log10_width"] == pytest.approx(math.log10(5.0))
    assert w["share"] == pytest.approx(3 / 6)
    none = forget_row_window(sweep.assign(forget_accuracy=50.0), 90.0)
    assert math.isnan(none["best_c"]) and math.isnan(none["low"]) and none["log10_width"] == 0.0
    with pytest.raises(ValueError, match="columns"):
        forget_row_window(sweep.drop(columns="c"), 90.0)


def test_ga_dynamics_cross_the_window_on_exact_collapse():
    K, alpha, lr = 6, 1.0, 0.05
    h, y, M = simplex_etf_features(K, K, 3, seed=9)
    low, high = theory_bounds(alpha, K)
    steps = int(1.5 * alpha * K / lr)
    d = forget_row_dynamics(h, y, alpha * M, None, 2, steps, lr, mode="ga")
    assert list(d["step"]) == list(range(steps + 1)) and set(d["class"]) == {2}
    # The row stays on the line of mu_f (cos = +-1) and walks down it: c = -along grows.
    assert np.allclose(d["cosine"].abs(), 1.0, atol=1e-9)
    assert (np.diff(d["along"]) < 0).all()
    assert d["cosine"].iloc[0] == pytest.approx(1.0) and d["cosine"].iloc[-1] == pytest.approx(-1.0)
    assert np.allclose(d["retain_norm"], alpha) and (d["bias"] == 0).all()  # others fixed
    # The proposition decides the accuracies at every step, and GA leaves through the top.
    c = -d["along"]
    inside = (c > low) & (c < high)
    perfect = (d["forget_accuracy"] == 0) & (d["retain_accuracy"] == 100)
    assert inside.any() and (c.iloc[-1] > high)
    assert (perfect == inside).all()


def test_rl_dynamics_flip_the_forget_row_and_keep_retain():
    K = 5
    h, y, M = simplex_etf_features(K, K, 4, seed=10)
    d = forget_row_dynamics(h, y, M, torch.zeros(K), 0, 600, 1.0, mode="rl", every=100, seed=1)
    assert list(d["step"]) == [0, 100, 200, 300, 400, 500, 600]
    assert d["cosine"].iloc[-1] < -0.99 and d["forget_accuracy"].iloc[-1] == 0
    assert (d["retain_accuracy"] == 100).all()
    assert d["bias"].iloc[-1] < 0  # the bias helps push the forget class down
    again = forget_row_dynamics(h, y, M, torch.zeros(K), 0, 600, 1.0, mode="rl", every=100, seed=1)
    assert again.equals(d)  # seeded relabelling


def test_ga_on_nonnegative_features_is_monotone_and_reaches_its_limit():
    # Non-negative (post-ReLU-like) features: each GA step lowers the forget logit of every
    # input, so forget accuracy never rises and retain accuracy never falls; the row turns to
    # minus the raw forget mean.
    generator = torch.Generator().manual_seed(11)
    K, d, n = 4, 8, 50
    centres = 2.0 * torch.rand(K, d, generator=generator, dtype=torch.float64)
    y = torch.arange(K).repeat_interleave(n)
    h = (centres[y] + 0.7 * torch.randn(K * n, d, generator=generator, dtype=torch.float64)).relu()
    W = torch.randn(K, d, generator=generator, dtype=torch.float64)
    b = torch.randn(K, generator=generator, dtype=torch.float64)
    for train_bias in (True, False):
        dyn = forget_row_dynamics(h, y, W, b, 1, 3000, 0.05, mode="ga", every=10,
                                  train_bias=train_bias)
        assert dyn["forget_accuracy"].iloc[0] > 0 and dyn["forget_accuracy"].iloc[-1] == 0
        assert (dyn["forget_accuracy"].diff().dropna() <= 0).all()
        assert (dyn["retain_accuracy"].diff().dropna() >= 0).all()
        assert (dyn["bias"] == float(b[1])).all() != train_bias
    mean_f = h[y == 1].mean(0)
    limit = -float(torch.nn.functional.cosine_similarity(mean_f, mean_f - h.mean(0), dim=0))
    assert dyn["cosine"].iloc[-1] == pytest.approx(limit, abs=0.02)
    assert abs(dyn["cosine"].iloc[0] - limit) > 0.1


def test_dynamics_several_forget_classes_and_bad_input():
    h, y, M = simplex_etf_features(5, 5, 2, seed=12)
    d = forget_row_dynamics(h, y, M, None, [3, 1], 4, 0.1, mode="ga", every=2)
    assert d[["step", "class"]].values.tolist() == [[0, 1], [0, 3], [2, 1], [2, 3], [4, 1], [4, 3]]
    test = forget_row_dynamics(h, y, M, None, 1, 0, 0.1, test=(h[y == 1], y[y == 1]))
    assert test["forget_accuracy"].iloc[0] == 100 and math.isnan(test["retain_accuracy"].iloc[0])
    with pytest.raises(ValueError, match=r"valid choices: \['ga', 'rl'\]"):
        forget_row_dynamics(h, y, M, None, 1, 3, 0.1, mode="sgd")
    with pytest.raises(ValueError, match="some \\(not all\\) rows"):
        forget_row_dynamics(h, y, M, None, 7, 3, 0.1)
    with pytest.raises(ValueError, match="lr > 0"):
        forget_row_dynamics(h, y, M, None, 1, 3, 0.0)


def test_nc1_is_nc_metrics_nc1_and_zero_under_exact_collapse():
    from illusion.geometry import nc1

    exact, labels, _ = simplex_etf_features(5, 5, n_per_class=4, seed=0)
    noisy, _, _ = simplex_etf_features(5, 5, n_per_class=4, noise=0.3, seed=0)
    assert nc1(exact, labels) == pytest.approx(0.0, abs=1e-12)
    assert nc1(noisy, labels) == nc_metrics(noisy, labels)["nc1"] > 0.01


def test_confusability_is_the_nearest_other_mean_cosine():
    from illusion.geometry import confusability

    K = 5
    means = simplex_etf(K, K, seed=3)
    # Every pair of a simplex ETF has the same cosine: no class looks more like another.
    assert confusability(means, [0]) == pytest.approx(-1 / (K - 1))
    assert confusability(means, [1, 3]) == pytest.approx(-1 / (K - 1))
    twin = means.clone()
    twin[4] = twin[0]  # class 4 has class 0's mean
    assert confusability(twin, [0]) == pytest.approx(1.0)
    assert confusability(twin, [0, 1]) < 1.0
    with pytest.raises(ValueError, match="some, not all.*0..4"):
        confusability(means, range(K))
    with pytest.raises(ValueError, match="0..4"):
        confusability(means, [5])


def test_step_sizes_follow_the_scale_of_rows_and_features():
    from illusion.geometry import ga_step_size, rl_step_size

    features = torch.full((6, 4), 2.0)  # every ||h|| = 4
    W = torch.full((3, 4), 1.0)          # every ||w_k|| = 2
    assert ga_step_size(features, W) == pytest.approx(0.02 * 2 / 4)
    assert ga_step_size(features, 3 * W, scale=0.1) == pytest.approx(0.1 * 6 / 4)
    assert rl_step_size(features) == pytest.approx(1 / 16)
    assert rl_step_size(2 * features.numpy()) == pytest.approx(1 / 64)


def test_dynamics_summary_reads_the_start_the_end_and_the_first_forgetting_step():
    from illusion.geometry import dynamics_summary

    run = pd.DataFrame({"step": [0, 0, 10, 10, 20, 20], "class": [1, 2] * 3,
                        "cosine": [0.9, 0.7, 0.1, -0.1, -0.5, -0.7],
                        "ga_limit_cosine": [-0.6, -0.8] * 3,
                        "forget_accuracy": [80.0, 80.0, 4.0, 4.0, 0.0, 0.0],
                        "retain_accuracy": [90.0, 90.0, 91.0, 91.0, 85.0, 85.0]})
    summary = dynamics_summary(run)
    assert summary.to_dict() == pytest.approx({
        "steps": 20, "cosine start": 0.8, "cosine end": -0.6, "GA limit (predicted)": -0.7,
        "forget start": 80.0, "forget end": 0.0, "retain start": 90.0, "retain end": 85.0,
        "first step forget <= 5%": 10, "best retain with forget <= 5%": 91.0})
    never = dynamics_summary(run.assign(forget_accuracy=50.0))
    assert math.isnan(never["first step forget <= 5%"])
    assert math.isnan(never["best retain with forget <= 5%"])
