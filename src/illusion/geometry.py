"""Neural-collapse and feature–classifier alignment geometry (float64), and the §6 theory:
exact-collapse features (``simplex_etf_features``), the forget-row window (``theory_bounds``,
``forget_row_sweep``, ``replace_forget_row``, ``forget_row_window``), the dynamics of
classifier-only unlearning on frozen features (``forget_row_dynamics``, its step sizes and
``dynamics_summary``) and how much classes look alike (``confusability``).

Notation. Features ``h_i`` (N x d) with labels ``y_i``; the classes present are counted from the
labels (``K`` is never assumed), class ids may be any integers. ``mu_k`` is the mean feature of
class k, ``mu_G`` the mean of all samples, ``M`` the K x d matrix of centred means
``mu_k - mu_G`` (rows in increasing class id), ``W`` (rows selected to the same classes) and
``b`` the classifier. The metrics (Papyan, Han & Donoho 2020, in the forms of the paper's code):

- NC1 = tr(Sigma_W Sigma_B^+) / K, with Sigma_W = 1/N sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T,
  Sigma_B = 1/K sum_k (mu_k - mu_G)(mu_k - mu_G)^T and ^+ the Moore–Penrose pseudo-inverse.
- NC2, three numbers that are 0 exactly when the centred means form a simplex ETF:
  ``nc2_equinorm`` = std_k ||mu_k - mu_G|| / mean_k ||mu_k - mu_G|| (population std);
  ``nc2_equiangular`` = mean over j != k of |cos(mu_j - mu_G, mu_k - mu_G) + 1/(K-1)|;
  ``nc2_etf`` = || G/||G||_F - P/||P||_F ||_F, where G is the K x K Gram (cosine) matrix of the
  normalised centred means and P = I - 11^T/K (the Gram of a simplex ETF, up to scale).
- NC3 (``nc3``) = || W/||W||_F - M/||M||_F ||_F; ``nc3_cosine`` = mean_k cos(w_k, mu_k - mu_G).
- NC4 (``nc4``) = share of samples whose classifier prediction argmax_k (w_k^T h + b_k) differs
  from the nearest-class-mean prediction argmin_k ||h - mu_k|| (both among the K classes).

On a subset of classes (``classes=``) the subset is the whole problem: samples of other classes
are dropped, K counts the classes left, mu_G is their mean and W keeps their rows only.

The authors' forms (``nc_metrics_authors``), the protocol of ``evaluation/nc.py`` in
ycgao1/CMF_Unlearning, differ from these: every feature is first L2-normalised; Sigma_W
averages the K class covariances instead of pooling the samples; NC2 compares the
*un-normalised* Gram matrix of the centred means with the simplex ETF; NC3 compares the K x K
matrix W M^T (classifier applied to the centred means) with it. ``NC_FORMS`` names both forms,
``nc_metrics_by_form`` picks one by name.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd
import torch

NC_KEYS = ("nc1", "nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc3", "nc3_cosine", "nc4")
# The metrics the authors' nc.py computes, under the names of the corresponding Papyan forms.
NC_AUTHORS_KEYS = ("nc1", "nc2_etf", "nc3")


def _as_float64(x, device=None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                           device=device).to(torch.float64)


def _as_labels(y, device) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y, device=device)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
    return y.long()


def _select(features, labels, W=None, b=None, classes: Iterable[int] | None = None):
    """float64 features of the chosen classes, labels remapped to 0..K-1, the class ids (K,)
    and W/b rows of those classes."""
    h = _as_float64(features)
    if h.ndim != 2:
        raise ValueError(f"features must be an N x d matrix, got shape {tuple(h.shape)}")
    y = _as_labels(labels, h.device)
    if y.shape != (h.shape[0],):
        raise ValueError(f"labels of shape {tuple(y.shape)} do not match {h.shape[0]} features")
    if classes is not None:
        wanted = torch.as_tensor(sorted({int(c) for c in classes}), dtype=torch.long,
                                 device=h.device)
        missing = sorted(set(wanted.tolist()) - set(y.unique().tolist()))
        if missing:
            raise ValueError(f"classes {missing} have no samples; classes present: "
                             f"{sorted(y.unique().tolist())}")
        keep = torch.isin(y, wanted)
        h, y = h[keep], y[keep]
    ids = y.unique(sorted=True)
    if len(ids) < 2:
        raise ValueError(f"geometry needs at least 2 classes, got {ids.tolist()}")
    if W is not None:
        W = _as_float64(W, h.device)
        if W.ndim != 2 or W.shape[1] != h.shape[1] or W.shape[0] <= int(ids.max()):
            raise ValueError(f"classifier of shape {tuple(W.shape)} does not fit features of "
                             f"dimension {h.shape[1]} with class ids up to {int(ids.max())}")
        W = W[ids]
        if b is not None:
            b = _as_float64(b, h.device)[ids]
    return h, torch.searchsorted(ids, y), ids, W, b


def _means(h: torch.Tensor, y: torch.Tensor, K: int) -> torch.Tensor:
    sums = torch.zeros(K, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, y, h)
    return sums / torch.bincount(y, minlength=K).to(h.dtype)[:, None]


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosines (0 where a row is zero)."""
    norms = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norms > 0, (a * b).sum(1) / norms.clamp_min(1e-300), torch.zeros_like(norms))


def _unit_rows(a: torch.Tensor) -> torch.Tensor:
    return a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _nc1(h: torch.Tensor, y: torch.Tensor, means: torch.Tensor, centred: torch.Tensor) -> float:
    # tr(Sigma_W Sigma_B^+)/K without d x d matrices: Sigma_B = 1/K C^T C for the centred means
    # C (K x d) = U S V^T, so Sigma_B^+ = K V S^-2 V^T and NC1 = sum_j (v_j^T Sigma_W v_j)/s_j^2.
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    rank = s > s.max() * max(centred.shape) * torch.finfo(s.dtype).eps  # pinv's default cut
    within = (h - means[y]) @ vt[rank].T                       # N x rank projections
    return float((within.pow(2).mean(0) / s[rank].pow(2)).sum())


def nc_metrics(features, labels, W=None, b=None, classes: Iterable[int] | None = None) -> dict:
    """NC1–NC4 of features (N x d) with ``labels``; NC3/NC4 need the classifier ``W`` (rows
    indexed by class id) and bias ``b`` (zero when None), and are NaN without ``W``. See the
    module docstring for the definitions; every value is 0 under exact neural collapse."""
    h, y, ids, W, b = _select(features, labels, W, b, classes)
    K = len(ids)
    means = _means(h, y, K)
    centred = means - h.mean(0)
    norms = centred.norm(dim=1)
    unit = _unit_rows(centred)
    cos = unit @ unit.T
    off = ~torch.eye(K, dtype=torch.bool, device=h.device)
    etf = torch.eye(K, dtype=h.dtype, device=h.device) - 1.0 / K
    out = {
        "nc1": _nc1(h, y, means, centred),
        "nc2_equinorm": float(norms.std(correction=0) / norms.mean()),
        "nc2_equiangular": float((cos[off] + 1.0 / (K - 1)).abs().mean()),
        "nc2_etf": float((cos / cos.norm() - etf / etf.norm()).norm()),
        "nc3": math.nan, "nc3_cosine": math.nan, "nc4": math.nan,
    }
    if W is not None:
        out["nc3"] = float((W / W.norm() - centred / centred.norm()).norm())
        out["nc3_cosine"] = float(_cosines(W, centred).mean())
        logits = h @ W.T + (b if b is not None else 0.0)
        nearest = torch.cdist(h, means).argmin(1)
        out["nc4"] = float((logits.argmax(1) != nearest).double().mean())
    return out


def nc1(features, labels) -> float:
    """NC1 alone of features (N x d) with ``labels`` (:func:`nc_metrics`)."""
    return nc_metrics(features, labels)["nc1"]


def _nc1_class_balanced(h: torch.Tensor, y: torch.Tensor, means: torch.Tensor,
                        centred: torch.Tensor) -> float:
    """tr(Sigma_W Sigma_B^+)/K with Sigma_W = 1/K sum_k 1/n_k sum_{i in k} (h_i - mu_k)(..)^T
    (each class weighs the same, whatever its size) and Sigma_B = 1/K C^T C."""
    K = len(means)
    # As in _nc1, Sigma_B^+ = K V S^-2 V^T; but the cut is scipy.linalg.pinv's default applied
    # to Sigma_B itself (eigenvalues s_j^2/K below d * eps * the largest are dropped).
    _, s, vt = torch.linalg.svd(centred, full_matrices=False)
    rank = s.pow(2) > s.max().pow(2) * h.shape[1] * torch.finfo(s.dtype).eps
    within = ((h - means[y]) @ vt[rank].T).pow(2)
    # _means of the squared projections: per class, the mean over its own samples.
    return float((_means(within, y, K).mean(0) / s[rank].pow(2)).sum())


def _distance_to_etf(matrix: torch.Tensor) -> float:
    """|| A/||A||_F - P/||P||_F ||_F for a K x K matrix A, P = I - 11^T/K (||P||_F = sqrt(K-1))."""
    K = matrix.shape[0]
    etf = torch.eye(K, dtype=matrix.dtype, device=matrix.device) - 1.0 / K
    return float((matrix / matrix.norm() - etf / etf.norm()).norm())


def nc_metrics_authors(features, labels, W=None, b=None,
                       classes: Iterable[int] | None = None) -> dict:
    """NC1, NC2 and NC3 in the forms of the authors' ``evaluation/nc.py`` (ycgao1/CMF_Unlearning,
    ``nc_metrics``), keyed like the Papyan forms of :func:`nc_metrics` they correspond to
    (``NC_AUTHORS_KEYS``); every value is 0 under exact neural collapse.

    Each feature is L2-normalised first, h_i <- h_i/||h_i|| (nc.py line 120), so the metrics do
    not change when samples are rescaled. On the normalised features, with mu_k the class means,
    mu_G the mean of *all* samples given and C (K x d) the centred means mu_k - mu_G:

    - ``nc1`` = tr(Sigma_W Sigma_B^+)/K with the class-balanced Sigma_W = 1/K sum_k 1/n_k
      sum_{i in k} (h_i - mu_k)(h_i - mu_k)^T and Sigma_B = 1/K C^T C; ^+ is the pseudo-inverse
      with scipy.linalg.pinv's default cut on Sigma_B (lines 124-139).
    - ``nc2_etf`` = || G/||G||_F - P/sqrt(K-1) ||_F with the un-normalised Gram G = C C^T (inner
      products of the centred means, not their cosines) and P = I - 11^T/K (lines 140-145).
    - ``nc3`` = || Z/||Z||_F - P/sqrt(K-1) ||_F with Z = W C^T, Z_ck = w_c^T (mu_k - mu_G): the
      classifier's scores of the centred means (lines 146-151). It is 0 when those scores form
      a simplex ETF, e.g. W proportional to C *and* C a simplex ETF; for W proportional to C
      it equals ``nc2_etf``. NaN without ``W``.

    ``b`` is accepted so both forms share a signature, but no metric here uses a bias. The
    authors have no NC2 equinorm/equiangular, no cosine NC3 and no NC4 in nc.py, so those keys
    are absent. (Their later ``evaluation/nc_cmf.py`` measures, on *un-normalised* features,
    NC3 = mean_k (1 - cos(w_k, mu_k - mu_G)), i.e. 1 - ``nc3_cosine`` of :func:`nc_metrics`,
    and the nearest-class-mean accuracy.)

    With ``classes`` the metrics cover those classes (K counts them, W keeps their rows) but
    mu_G stays the mean of all samples given, as the authors do for their retain and forget
    subsets (``use_global=True``, lines 127 and 174-182; they compute NC3 on all classes only,
    line 184). Their float32 and our float64 make the pinv cut differ in scale."""
    h, y, ids, W, _ = _select(features, labels, W, None, classes)
    h = _unit_rows(h)
    global_mean = _unit_rows(_as_float64(features, h.device)).mean(0)
    means = _means(h, y, len(ids))
    centred = means - global_mean
    out = {"nc1": _nc1_class_balanced(h, y, means, centred),
           "nc2_etf": _distance_to_etf(centred @ centred.T),
           "nc3": math.nan}
    if W is not None:
        out["nc3"] = _distance_to_etf(W @ centred.T)
    return out


# The two forms of the NC metrics by name: Papyan et al.'s (ours) and the authors' nc.py.
NC_FORMS = {"papyan": nc_metrics, "authors": nc_metrics_authors}


def nc_metrics_by_form(form: str, features, labels, W=None, b=None,
                       classes: Iterable[int] | None = None) -> dict:
    """The NC metrics in the named form (a key of ``NC_FORMS``), same arguments as
    :func:`nc_metrics`."""
    if form not in NC_FORMS:
        raise ValueError(f"unknown NC form {form!r}; valid choices: {list(NC_FORMS)}")
    return NC_FORMS[form](features, labels, W, b, classes)


def alignment_cosines(features, labels, W, classes: Iterable[int] | None = None) -> pd.DataFrame:
    """cos(w_c, mu_c - mu_G) per class, with mu_G the mean of *all* samples given; ``classes``
    only chooses which classes are reported (e.g. the forget classes). Columns: ``class``,
    ``cosine``, ``count`` (samples of the class)."""
    h, y, ids, W, _ = _select(features, labels, W)
    means = _means(h, y, len(ids))
    cos = _cosines(W, means - h.mean(0))
    table = pd.DataFrame({"class": ids.cpu().numpy(), "cosine": cos.cpu().numpy(),
                          "count": torch.bincount(y, minlength=len(ids)).cpu().numpy()})
    if classes is not None:
        wanted = sorted({int(c) for c in classes})
        missing = sorted(set(wanted) - set(table["class"]))
        if missing:
            raise ValueError(f"classes {missing} have no samples; classes present: "
                             f"{table['class'].tolist()}")
        table = table[table["class"].isin(wanted)].reset_index(drop=True)
    return table


def alignment_by_class(features, labels, W, forget_classes: Iterable[int]) -> pd.DataFrame:
    """:func:`alignment_cosines` of every class, with a ``forget`` column (the class is one of
    ``forget_classes``)."""
    cosines = alignment_cosines(features, labels, W)
    return cosines.assign(forget=cosines["class"].isin(forget_classes))


def confusability(means, classes: Iterable[int]) -> float:
    """How much ``classes`` look like the other classes: for each of them, the largest cosine
    between its centred mean and another class's, averaged over ``classes``. ``means`` are the
    K x d class means (row k of class k), centred here at their own mean."""
    means = _as_float64(means)
    classes = [int(c) for c in classes]
    others = [c for c in range(len(means)) if c not in classes]
    if not classes or not others or min(classes) < 0 or max(classes) >= len(means):
        raise ValueError(f"classes {classes} must be some, not all, of the rows of the means; "
                         f"valid choices: 0..{len(means) - 1}")
    unit = torch.nn.functional.normalize(means - means.mean(0), dim=1)
    cosine = unit @ unit.T
    return float(cosine[classes][:, others].max(1).values.mean())


def simplex_etf(K: int, d: int, seed: int = 0) -> torch.Tensor:
    """K x d float64 matrix whose rows form a simplex ETF: unit norm, pairwise inner products
    -1/(K-1), summing to zero; randomly rotated into R^d (needs d >= K-1)."""
    if K < 2 or d < K - 1:
        raise ValueError(f"a simplex ETF of K={K} classes needs K >= 2 and d >= K-1, got d={d}")
    # The centring matrix P = I - 11^T/K has K-1 unit eigenvalues; its eigenvectors V (K x K-1)
    # give K points V_k with P = V V^T, i.e. ||V_k||^2 = 1 - 1/K, V_j.V_k = -1/K.
    P = torch.eye(K, dtype=torch.float64) - 1.0 / K
    V = torch.linalg.eigh(P).eigenvectors[:, 1:]
    generator = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, K - 1, generator=generator, dtype=torch.float64))
    return math.sqrt(K / (K - 1)) * V @ Q.T


def simplex_etf_features(K: int, d: int, n_per_class: int, noise: float = 0.0,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features under exact neural collapse: class k's samples are mu_k (+ ``noise`` times
    standard Gaussian noise), the mu_k a simplex ETF with ||mu_k|| = 1. Returns (features
    (K*n_per_class x d), labels (sorted by class), M (K x d)), all float64 except labels."""
    if n_per_class < 1 or noise < 0:
        raise ValueError(f"need n_per_class >= 1 and noise >= 0, got {n_per_class}, {noise}")
    M = simplex_etf(K, d, seed)
    labels = torch.arange(K).repeat_interleave(n_per_class)
    generator = torch.Generator().manual_seed(seed + 1)
    features = M[labels] + noise * torch.randn(len(labels), d, generator=generator,
                                                dtype=torch.float64)
    return features, labels, M


def theory_bounds(alpha: float, K: int) -> tuple[float, float]:
    """The §6 window for the forget row w_f = -c mu_f when W = alpha M: forget samples are
    misclassified iff c > alpha/(K-1), retain samples keep their label iff c < alpha (K-1)."""
    if K < 2:
        raise ValueError(f"need K >= 2 classes, got {K}")
    return alpha / (K - 1), alpha * (K - 1)


def forget_row_sweep(features, labels, M, alpha: float, forget_class: int, cs) -> pd.DataFrame:
    """Accuracies (percent) of W = alpha M (no bias) with the forget row replaced by
    -c mu_f, for every c in ``cs`` (see :func:`replace_forget_row`). Columns: ``c``,
    ``retain_accuracy``, ``forget_accuracy``."""
    M = _as_float64(M)
    if not 0 <= forget_class < M.shape[0]:
        raise ValueError(f"forget_class {forget_class} is not a row of M; "
                         f"valid choices: 0..{M.shape[0] - 1}")
    return replace_forget_row(features, labels, alpha * M, None, forget_class, M[forget_class], cs)


def replace_forget_row(features, labels, W, b, forget_class: int, direction, cs,
                       center=None) -> pd.DataFrame:
    """Accuracies (percent) of the classifier (``W``, ``b``; zero bias when None) with only
    the forget row replaced, for every c in ``cs``: the forget logit becomes
    ``-c direction^T (h - center)`` (``center`` 0 when None), every other logit is kept. A tie
    between the forget logit and the best other logit counts as *not* predicting the forget
    class. Columns: ``c``, ``retain_accuracy``, ``forget_accuracy``."""
    h = _as_float64(features)
    y = _as_labels(labels, h.device)
    W = _as_float64(W, h.device)
    K = W.shape[0]
    if h.ndim != 2 or W.ndim != 2 or W.shape[1] != h.shape[1] or y.shape != (h.shape[0],):
        raise ValueError(f"features {tuple(h.shape)}, labels {tuple(y.shape)} and classifier "
                         f"{tuple(W.shape)} do not fit together")
    if not 0 <= forget_class < K:
        raise ValueError(f"forget_class {forget_class} is not a row of the classifier; "
                         f"valid choices: 0..{K - 1}")
    direction = _as_float64(direction, h.device).reshape(-1)
    centred = h - (_as_float64(center, h.device).reshape(1, -1) if center is not None else 0.0)
    cs = _as_float64(cs, h.device).reshape(-1)
    others = h @ W.T + (_as_float64(b, h.device) if b is not None else 0.0)
    others[:, forget_class] = -math.inf
    best, best_class = others.max(1)
    # Only the forget logit depends on c: one N x len(cs) comparison.
    forget_logit = -(centred @ direction)[:, None] * cs[None, :]
    predicts_forget = forget_logit > best[:, None]
    is_forget = y == forget_class
    retain_ok = (best_class == y)[:, None] & ~predicts_forget
    mean = lambda ok, rows: (100.0 * ok[rows].double().mean(0) if rows.any()  # noqa: E731
                             else torch.full_like(cs, math.nan))
    return pd.DataFrame({"c": cs.cpu().numpy(),
                         "retain_accuracy": mean(retain_ok, ~is_forget).cpu().numpy(),
                         "forget_accuracy": mean(predicts_forget, is_forget).cpu().numpy()})


def forget_row_window(sweep: pd.DataFrame, reference_retain: float, max_forget: float = 5.0,
                      max_retain_drop: float = 2.0) -> dict:
    """The best forget-row replacement of a sweep (``forget_row_sweep`` or
    ``replace_forget_row``): ``best_c``/``best_retain``/``best_forget`` maximise retain
    accuracy subject to forget accuracy <= ``max_forget``; ``low``/``high`` are the smallest
    and largest c that also keep retain accuracy within ``max_retain_drop`` pp of
    ``reference_retain`` (NaN when none does) and ``log10_width`` = log10(high/low) (0 when
    none, or a single c, does). ``share`` is the fraction of the swept c that do."""
    if not {"c", "retain_accuracy", "forget_accuracy"} <= set(sweep.columns):
        raise ValueError(f"a sweep needs columns c, retain_accuracy, forget_accuracy; got "
                         f"{list(sweep.columns)}")
    forgets = sweep[sweep["forget_accuracy"] <= max_forget]
    good = forgets[forgets["retain_accuracy"] >= reference_retain - max_retain_drop]
    best = forgets.loc[forgets["retain_accuracy"].idxmax()] if len(forgets) else None
    low, high = (good["c"].min(), good["c"].max()) if len(good) else (math.nan, math.nan)
    return {"best_c": math.nan if best is None else float(best["c"]),
            "best_retain": math.nan if best is None else float(best["retain_accuracy"]),
            "best_forget": math.nan if best is None else float(best["forget_accuracy"]),
            "low": float(low), "high": float(high),
            "log10_width": float(np.log10(high / low)) if len(good) and low > 0 else 0.0,
            "share": len(good) / max(1, len(sweep))}


def ga_step_size(features, W, scale: float = 0.02) -> float:
    """A learning rate for ``ga`` :func:`forget_row_dynamics` that moves a row by about
    ``scale`` of its norm per step: ``scale`` times the mean row norm of ``W`` over the mean
    feature norm."""
    W, features = _as_float64(W), _as_float64(features)
    return float(scale * W.norm(dim=1).mean() / features.norm(dim=1).mean())


def rl_step_size(features) -> float:
    """A learning rate for ``rl`` :func:`forget_row_dynamics`: 1 / mean ||h||^2, the inverse
    of a bound on the curvature of the cross-entropy in a row (at most ||h||^2 / 2)."""
    return float(1.0 / _as_float64(features).pow(2).sum(1).mean())


DYNAMICS_MODES = ("ga", "rl")


def forget_row_dynamics(features, labels, W, b, forget_class, steps: int, lr: float,
                        mode: str = "ga", weight_decay: float = 0.0, train_bias: bool = True,
                        every: int = 1, test=None, seed: int = 0) -> pd.DataFrame:
    """Full-batch gradient steps on a linear classifier over frozen ``features``, tracking the
    forget row(s). ``forget_class`` is one class id or several.

    - ``ga``: gradient *ascent* on the mean cross-entropy of the forget samples with respect
      to the forget rows only (weight and bias); every other row stays fixed.
    - ``rl``: Random Label on the whole classifier: descent on the mean cross-entropy of all
      samples, each forget sample relabelled to a uniformly random retain class, re-drawn at
      every step (seeded by ``seed``).

    ``weight_decay`` adds ``weight_decay/2 ||trained weights||^2`` to the minimised loss;
    ``b`` None means no bias, ``train_bias=False`` keeps ``b`` fixed. At step 0, every
    ``every`` steps and at the last, per forget class f, it records: ``cosine`` =
    cos(w_f, mu_f - mu_G) (means over ``features``); ``along`` = w_f^T (mu_f - mu_G) /
    ||mu_f - mu_G|| (-c for w_f = -c mu_f under exact collapse); ``norm`` = ||w_f||;
    ``retain_norm`` = the mean norm of the retain rows; ``bias`` = b_f (0 without bias); and
    the classifier's ``forget_accuracy`` and ``retain_accuracy`` (percent) on ``test`` =
    (features, labels), or on ``features`` when ``test`` is None. Returns a tidy DataFrame:
    ``step``, ``class`` and those columns."""
    if mode not in DYNAMICS_MODES:
        raise ValueError(f"unknown mode {mode!r}; valid choices: {list(DYNAMICS_MODES)}")
    if steps < 0 or every < 1 or lr <= 0:
        raise ValueError(f"need steps >= 0, every >= 1 and lr > 0, got {steps}, {every}, {lr}")
    h = _as_float64(features)
    y = _as_labels(labels, h.device)
    W = _as_float64(W, h.device).clone()
    K = W.shape[0]
    forget = sorted({int(c) for c in (np.atleast_1d(forget_class))})
    if W.ndim != 2 or W.shape[1] != h.shape[1] or y.shape != (h.shape[0],):
        raise ValueError(f"features {tuple(h.shape)}, labels {tuple(y.shape)} and classifier "
                         f"{tuple(W.shape)} do not fit together")
    if not forget or min(forget) < 0 or max(forget) >= K or len(forget) >= K:
        raise ValueError(f"forget classes {forget} must be some (not all) rows of the "
                         f"classifier; valid choices: 0..{K - 1}")
    present = set(y.unique().tolist())
    if not set(forget) <= present:
        raise ValueError(f"forget classes {sorted(set(forget) - present)} have no samples; "
                         f"classes present: {sorted(present)}")
    test_h, test_y = (h, y) if test is None else (_as_float64(test[0], h.device),
                                                  _as_labels(test[1], h.device))
    rows_f = torch.tensor(forget, device=h.device)
    retain_classes = torch.tensor([c for c in range(K) if c not in forget], device=h.device)
    is_forget, test_is_forget = torch.isin(y, rows_f), torch.isin(test_y, rows_f)
    centred = torch.stack([h[y == c].mean(0) for c in forget]) - h.mean(0)

    weight = W
    bias = _as_float64(b, h.device).clone() if b is not None else None
    generator = torch.Generator().manual_seed(seed)
    records = []

    def logits_of(x: torch.Tensor) -> torch.Tensor:
        return x @ weight.T + (bias if bias is not None else 0.0)

    def record(step: int) -> None:
        correct = (logits_of(test_h).argmax(1) == test_y).double()
        acc = {"forget_accuracy": 100.0 * correct[test_is_forget].mean().item(),
               "retain_accuracy": 100.0 * correct[~test_is_forget].mean().item()}
        cos = _cosines(weight[rows_f], centred)
        along = (weight[rows_f] * _unit_rows(centred)).sum(1)
        retain_norm = float(weight[retain_classes].norm(dim=1).mean())
        for i, c in enumerate(forget):
            records.append({"step": step, "class": c, "cosine": float(cos[i]),
                            "along": float(along[i]), "norm": float(weight[c].norm()),
                            "retain_norm": retain_norm,
                            "bias": float(bias[c]) if bias is not None else 0.0, **acc})

    # Closed-form gradients: d mean-CE / d logits = (softmax - onehot) / n.
    forget_h, forget_y = h[is_forget], y[is_forget]
    record(0)
    for step in range(1, steps + 1):
        if mode == "ga":  # ascent on the forget samples' CE = descent on its negative
            x, target, sign = forget_h, forget_y, -1.0
        else:
            draws = torch.randint(len(retain_classes), (len(y),), generator=generator)
            x, target, sign = h, torch.where(is_forget, retain_classes[draws.to(h.device)], y), 1.0
        delta = torch.softmax(logits_of(x), 1)
        delta[torch.arange(len(target), device=h.device), target] -= 1.0
        delta *= sign / len(target)
        grad_w, grad_b = delta.T @ x, delta.sum(0)
        rows = rows_f if mode == "ga" else slice(None)  # GA moves the forget rows only
        weight[rows] -= lr * (grad_w[rows] + weight_decay * weight[rows])
        if bias is not None and train_bias:
            bias[rows] -= lr * grad_b[rows]
        if step % every == 0 or step == steps:
            record(step)
    return pd.DataFrame(records)


def dynamics_summary(run: pd.DataFrame) -> pd.Series:
    """One :func:`forget_row_dynamics` run (a single loss on a single forget set) in a row:
    its steps, the cosine of the forget rows at the start and the end (mean over the forget
    classes) with GA's predicted limit (the run's ``ga_limit_cosine`` column), the forget and
    retain accuracies at the start and the end, and the first step with forget accuracy at
    most 5% with the best retain accuracy among such steps (NaN when none)."""
    start, end = run[run["step"] == 0], run[run["step"] == run["step"].max()]
    reach = run[run["forget_accuracy"] <= 5]
    return pd.Series({
        "steps": end["step"].iloc[0],
        "cosine start": start["cosine"].mean(), "cosine end": end["cosine"].mean(),
        "GA limit (predicted)": end["ga_limit_cosine"].mean(),
        "forget start": start["forget_accuracy"].iloc[0], "forget end": end["forget_accuracy"].iloc[0],
        "retain start": start["retain_accuracy"].iloc[0], "retain end": end["retain_accuracy"].iloc[0],
        "first step forget <= 5%": reach["step"].min(),
        "best retain with forget <= 5%": reach["retain_accuracy"].max()})
