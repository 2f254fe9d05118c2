"""Membership-inference efficacy (MIA-efficacy) of the SalUn and ℓ1-sparse papers.

An attacker learns to tell members (training samples) from non-members by the model's
confidence in the true label: an RBF support-vector classifier (C=3, gamma='auto') is fitted on
retain-training samples (members, 1) against test samples (non-members, 0), the two subsampled
to the same size. Efficacy is the percentage of forget samples the attacker calls non-members:
100 means D_f looks like data the model never saw.

The authors of "An Illusion of Unlearning?" run another protocol (``mia_efficacy_authors``):
the same attacker, fitted on all retain-training samples (members) against all forget-training
samples (non-members), unbalanced, scored on the *test* images of the forget classes.
``MIA_PROTOCOLS`` names both; ``mia_by_protocol`` runs one from samples given by role.
"""

from __future__ import annotations

import numpy as np
import torch


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
    return _non_member_percent(members, outsiders, target)


def _non_member_percent(members: np.ndarray, outsiders: np.ndarray, target: np.ndarray) -> float:
    """Percent of ``target`` that an RBF SVC (C=3, gamma='auto') fitted on members (1) against
    outsiders (0) calls non-member."""
    from sklearn.svm import SVC  # here: importing scikit-learn costs every chapter ~1 s
    attacker = SVC(C=3, gamma="auto", kernel="rbf")
    attacker.fit(np.concatenate([members, outsiders]),
                 np.r_[np.ones(len(members)), np.zeros(len(outsiders))])
    return 100.0 * float(np.mean(attacker.predict(target) == 0))


def mia_efficacy_authors(retain_logits: torch.Tensor, retain_y: torch.Tensor,
                         forget_logits: torch.Tensor, forget_y: torch.Tensor,
                         forget_test_logits: torch.Tensor, forget_test_y: torch.Tensor) -> float:
    """MIA efficacy in the protocol of the authors' code (ycgao1/CMF_Unlearning): percent of the
    *test* images of the forget classes (``forget_test``) that an SVC calls non-member, the SVC
    trained on the confidences of *all* retain-training samples (members) against *all*
    forget-training samples, D_f (non-members).

    Their ``SVC_MIA`` (utils.py lines 766-839) uses one feature, the softmax probability of the
    true label, and the attacker of SalUn (``SVC(C=3, gamma='auto', kernel='rbf')``, line 799);
    it reports 1 - mean(prediction) over the target test samples (line 811), a fraction we give
    in percent. The roles are those of ``maybe_eval_and_save`` (unlearn/tools.py lines 34-40):
    shadow_train = retain_loader and shadow_test = forget_loader, the training splits of the
    retain and forget classes (main.py lines 302, 325-326), target_test = test_forget_loader
    (main.py lines 495-496 and 567-568), target_train = None.

    How it differs from :func:`mia_efficacy` (SalUn): the non-members are D_f, not held-out test
    images; the target is the forget classes' test images, not D_f; nothing is subsampled, so the
    attacker sees the classes in their natural proportions (e.g. 9 members per non-member for
    one CIFAR-10 class) and no seed enters. (A block of their final evaluation that is disabled,
    inside a string literal, main.py lines 650-656, used the retain classes' test images as
    non-members instead; passing those as ``forget_logits``/``forget_y`` reproduces it.)"""
    members, outsiders = confidence(retain_logits, retain_y), confidence(forget_logits, forget_y)
    target = confidence(forget_test_logits, forget_test_y)
    if min(len(members), len(outsiders), len(target)) == 0:
        raise ValueError(f"mia_efficacy_authors needs retain, forget and forget-test samples; "
                         f"got {len(members)}, {len(outsiders)}, {len(target)}")
    return _non_member_percent(members, outsiders, target)


# The two MIA protocols by name, and the roles (each a (logits, labels) pair) that each one's
# function reads, in its argument order.
MIA_PROTOCOLS = {"salun": mia_efficacy, "authors": mia_efficacy_authors}
MIA_ROLES = {"salun": ("retain", "test", "forget"),
             "authors": ("retain", "forget", "forget_test")}


def roles(feats, forget_classes) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The (logits, labels) of every role of :func:`mia_by_protocol` from one model's
    :class:`~illusion.heads.Features` of the whole training set and the test split."""
    forget = torch.tensor(forget_classes, device=feats.train_y.device)
    in_train, in_test = torch.isin(feats.train_y, forget), torch.isin(feats.test_y, forget)
    return {"retain": (feats.train_logits[~in_train], feats.train_y[~in_train]),
            "test": (feats.test_logits[~in_test], feats.test_y[~in_test]),
            "forget": (feats.train_logits[in_train], feats.train_y[in_train]),
            "forget_test": (feats.test_logits[in_test], feats.test_y[in_test])}


def mia_by_protocol(protocol: str, *, retain=None, test=None, forget=None, forget_test=None,
                    seed: int = 0) -> float:
    """MIA efficacy (percent) of the named protocol (a key of ``MIA_PROTOCOLS``) from samples
    given by role, each a (logits, labels) pair: ``retain`` = D_r, ``test`` = held-out images
    of the retain classes, ``forget`` = D_f, ``forget_test`` = test images of the forget
    classes. A role the protocol does not read (``MIA_ROLES``) may be None; ``seed`` only
    matters to SalUn's protocol, the only one that subsamples."""
    if protocol not in MIA_PROTOCOLS:
        raise ValueError(f"unknown MIA protocol {protocol!r}; valid choices: {list(MIA_PROTOCOLS)}")
    given = {"retain": retain, "test": test, "forget": forget, "forget_test": forget_test}
    missing = [role for role in MIA_ROLES[protocol] if given[role] is None]
    if missing:
        raise ValueError(f"the {protocol!r} MIA protocol needs the roles {missing}")
    arguments = [part for role in MIA_ROLES[protocol] for part in given[role]]
    options = {"seed": seed} if protocol == "salun" else {}
    return MIA_PROTOCOLS[protocol](*arguments, **options)
