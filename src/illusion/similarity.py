"""Representation similarity: linear CKA between two models' penultimate features on the same
images (Kornblith et al., 2019; used for unlearning by Kim, Cha & Kim, "Are We Truly
Forgetting?").

    cka = linear_cka(features_a, features_b)      # 1: the same up to rotation and scale

Linear CKA of X (n × d₁) and Y (n × d₂), each column-centred, is
``‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)``: invariant to an orthogonal map and an isotropic scale of
either, so two models whose features differ only by such a change score 1. This is the plain
(biased) estimator: with n ≫ d, as on every split here (200 forget test images per class on
``default`` for 64-d features), its bias is small, and it is the form the unlearning papers
report. A feature-level forgetter moves towards Retrain on the forget images and stays with the
Original on the retain images.
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (plain) of features ``x`` and ``y`` of the same ``n`` images, in float64; NaN
    when either is constant (no variance to compare)."""
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"linear_cka needs two feature matrices of the same images, got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if (x == x[:1]).all() or (y == y[:1]).all():  # every image the same: nothing to compare
        return float("nan")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.T @ x).square().sum()
    norms = (x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()
    return float(cross / norms)
