"""Neural-collapse metrics, alignment cosines and the §6 forget-row theory."""

import math

import numpy as np
import pytest
import torch

from illusion.geometry import (NC_KEYS, alignment_cosines, forget_row_sweep, nc_metrics,
                               simplex_etf, simplex_etf_features, theory_bounds)


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
