"""Membership-inference efficacy (MIA-efficacy) of the SalUn and ℓ1-sparse papers.

An attacker learns to tell members (training samples) from non-members by the model's
confidence in the true label: an RBF support-vector classifier (C=3, gamma='auto') is fitted on
retain-training samples (members, 1) against test samples (non-members, 0), the two subsampled
to the same size. Efficacy is the percentage of forget samples the attacker calls non-members:
100 means D_f looks like data the model never saw.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.svm import SVC


def confidence(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Softmax probability of the true label, one column (n, 1) as float64 NumPy."""
    if logits.dim() != 2 or len(logits) != len(y):
        raise ValueError(f"need logits of shape (n, classes) and n labels, got "
                         f"{tuple(logits.shape)} and {tuple(y.shape)}")
    probs = torch.softmax(logits.detach().double(), dim=1)
    return probs.gather(1, y.view(-1, 1).long().to(probs.device)).cpu().numpy()


def mia_efficacy(retain_logits: torch.Tensor, retain_y: torch.Tensor,
                 test_logits: torch.Tensor, test_y: torch.Tensor,
                 forget_logits: torch.Tensor, forget_y: torch.Tensor, seed: int = 0) -> float:
    """Percent of forget samples predicted non-member by an SVC trained on confidences of
    retain (members) vs test (non-members) samples, balanced by seeded subsampling."""
    members, outsiders = confidence(retain_logits, retain_y), confidence(test_logits, test_y)
    target = confidence(forget_logits, forget_y)
    if min(len(members), len(outsiders), len(target)) == 0:
        raise ValueError(f"mia_efficacy needs retain, test and forget samples; got "
                         f"{len(members)}, {len(outsiders)}, {len(target)}")
    n = min(len(members), len(outsiders))
    rng = np.random.default_rng(seed)
    members = members[rng.choice(len(members), n, replace=False)]
    outsiders = outsiders[rng.choice(len(outsiders), n, replace=False)]
    attacker = SVC(C=3, gamma="auto", kernel="rbf")
    attacker.fit(np.concatenate([members, outsiders]), np.r_[np.ones(n), np.zeros(n)])
    return 100.0 * float(np.mean(attacker.predict(target) == 0))
