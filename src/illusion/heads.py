"""Evaluation heads on penultimate features: output, linear probe (LP) and NCC.

One pass extracts the features (and the model's logits) of the training and test splits;
every head reuses them. Accuracies are in percent on the test images of the retain classes
(``retain``) and of the forget classes (``forget``).

- output: the model's own classifier.
- lp: a fresh linear layer (with bias) trained with cross-entropy on the frozen features of the
  whole training set, forget classes included, true labels. ``lbfgs`` is full-batch L-BFGS
  (fast, deterministic); ``sgd`` is the paper's protocol (SGD lr 0.01, momentum 0.9, batch 128,
  best epoch on a 90/10 split).
- ncc: class means of the training features (all classes), Euclidean-nearest mean.

Each head is a :class:`Head` (``fit``/``predict``, scikit-learn's shape) in the registry
:data:`HEADS`, which evaluations, the results tables and the claim checks all read: a new head
is one registered class.

A model with a CMF head is measured in its head's own geometry, as the authors do: LP and NCC
fit on ẑ = normalize(normalize(f) − μ), the features the CMF head classifies
(:func:`head_geometry`); ``geometry="raw"`` keeps the raw features as a second view.

Beside the heads, the same features give a model's MIA efficacy and the alignment of its
classifier with its class means (:func:`mia_and_alignment`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from . import device
from .config import SGD_SCHEDULES, ForgetSet, HeadConfig
from .data import Split, augment
from .geometry import alignment_by_class
from .mia import mia_by_protocol, roles
from .models import INFERENCE_BATCH_SIZE

GEOMETRIES = ("model", "raw")


@dataclass
class Features:
    """Penultimate features and logits of one model on the training and test splits."""

    train: torch.Tensor
    train_y: torch.Tensor
    train_logits: torch.Tensor
    test: torch.Tensor
    test_y: torch.Tensor
    test_logits: torch.Tensor
    num_classes: int


@dataclass(frozen=True)
class Augmentation:
    """One augmented pass: random crop with ``padding`` and ``flip``, drawn from ``seed``."""

    padding: int
    flip: bool
    seed: int


def extract(model: nn.Module, split: Split, batch_size: int = INFERENCE_BATCH_SIZE,
            with_logits: bool = False, augmentation: Augmentation | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Penultimate features (float32) of a split in eval mode, under bf16 autocast on CUDA;
    logits from the same pass. With ``augmentation`` every image is augmented once (the
    authors' feature extraction)."""
    generator = torch.Generator().manual_seed(augmentation.seed) if augmentation else None

    def compute(x: torch.Tensor):
        if augmentation:
            x = augment(x, augmentation.padding, augmentation.flip, generator)
        f = model.features(x)
        return (f.float(), model.fc(f).float()) if with_logits else f.float()

    out = device.extract(model, split.x, compute, batch_size, mixed_precision=True)
    return out if with_logits else (out, None)


def train_augmentation(profile) -> Augmentation | None:
    """The one augmented pass of the heads' training features on ``profile`` (its
    ``heads.augment_train``): the Original's crop and flip, drawn from the profile's seed. The
    book and ``illusion audit`` both read it here, so they measure the same features."""
    recipe = profile.original
    return (Augmentation(recipe.crop_padding, recipe.flip, profile.seed)
            if profile.heads.augment_train else None)


def features(model: nn.Module, train: Split, test: Split,
             batch_size: int = INFERENCE_BATCH_SIZE,
             train_augmentation: Augmentation | None = None) -> Features:
    train_f, train_logits = extract(model, train, batch_size, with_logits=True,
                                    augmentation=train_augmentation)
    test_f, test_logits = extract(model, test, batch_size, with_logits=True)
    return Features(train_f, train.y, train_logits, test_f, test.y, test_logits,
                    model.fc.out_features)


def linear_probe_lbfgs(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                       max_iter: int = 300, l2: float = 1e-4) -> nn.Linear:
    """Full-batch L-BFGS on standardised features; returns a linear layer on raw features.

    The loss is mean cross-entropy plus ``l2``·‖W‖² (not the bias). Its gradient is written
    out, as in :func:`linear_probe_sgd`: ``(softmax - onehot)ᵀ [x | 1] / N`` plus ``2·l2·W``, so
    each of the ~400 loss evaluations is two matrix products instead of an autograd pass (half
    the time of one fit)."""
    # Standardising makes the problem well conditioned, so L-BFGS converges in few steps.
    mean, std = train_x.double().mean(0), train_x.double().std(0).clamp_min(1e-6)
    x = (train_x.double() - mean) / std
    # [W | b] acting on [x | 1], from zero.
    x = torch.cat([x, x.new_ones(len(x), 1)], 1)
    onehot = nn.functional.one_hot(train_y, num_classes).to(x)
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device,
                         requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], lr=1, max_iter=max_iter,
                                  tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    @torch.no_grad()
    def closure():
        logits = x @ weight.T
        log_norm = torch.logsumexp(logits, 1)
        loss = (log_norm - (logits * onehot).sum(1)).mean() + l2 * weight[:, :-1].square().sum()
        grad = torch.exp(logits - log_norm[:, None]).sub_(onehot).T @ x / len(x)
        grad[:, :-1] += 2 * l2 * weight[:, :-1]
        weight.grad = grad
        return loss

    optimizer.step(closure)
    # Fold the standardisation into the layer, so it applies to raw features.
    out = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    with torch.no_grad():
        scaled = weight[:, :-1] / std
        out.weight.copy_(scaled.float())
        out.bias.copy_((weight[:, -1] - scaled @ mean).float())
    return out


def head_geometry(model: nn.Module, feats: Features) -> Features:
    """The features ``model``'s own head classifies: ẑ for a CMF head (its ``centred``), the
    penultimate features themselves for a linear head. Logits are unchanged."""
    centred = getattr(model.fc, "centred", None)
    if centred is None:
        return feats
    with torch.no_grad():
        return dataclasses.replace(feats, train=centred(feats.train).float(),
                                   test=centred(feats.test).float())


def linear_probe_sgd(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                     epochs: int = 20, lr: float = 0.01, batch_size: int = 128,
                     seed: int = 1234, schedule: str = "constant",
                     patience: int | None = None) -> nn.Linear:
    """The paper's protocol: SGD (momentum 0.9, no weight decay) on 90% of the training
    features, the epoch with the best accuracy on the other 10% kept. ``schedule="cosine"``
    anneals the LR over ``epochs`` (per epoch); ``patience`` stops after that many epochs
    without a better validation accuracy (the authors' Tiny-ImageNet and CIFAR-100 settings).

    The same steps as ``torch.optim.SGD`` on an ``nn.Linear`` with mean cross-entropy (its
    initialisation, batch order, momentum buffer), written out: the gradient of a softmax
    layer is ``(softmax - onehot)ᵀ x / B``, so a step is two small matrix products, with the
    bias as a column of ones and no autograd; each epoch gathers its shuffled batches once.
    Thousands of steps on cached features then cost milliseconds each, not autograd's
    overhead."""
    if schedule not in SGD_SCHEDULES:
        raise ValueError(f"unknown probe schedule {schedule!r}; valid choices: {list(SGD_SCHEDULES)}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_y), generator=generator).to(train_y.device)
    n_val = max(1, len(order) // 10)
    val_idx, fit_idx = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    init = nn.Linear(train_x.shape[1], num_classes)
    with torch.inference_mode():
        # [W | b] acting on [x | 1]: one product gives the logits, one the whole gradient.
        weight = torch.cat([init.weight, init.bias[:, None]], 1).to(train_x)
        x = torch.cat([train_x.float(), train_x.new_ones(len(train_x), 1)], 1)
        onehot = nn.functional.one_hot(train_y, num_classes).to(x)
        val_x, val_y = x[val_idx], train_y[val_idx]
        momentum = torch.zeros_like(weight)
        best, best_weight, best_epoch = -1.0, weight.clone(), 0
        for epoch in range(epochs):
            # CosineAnnealingLR's closed form, stepped once per epoch (eta_min 0).
            step_lr = lr * (1 + math.cos(math.pi * epoch / epochs)) / 2 if schedule == "cosine" else lr
            perm = fit_idx[torch.randperm(len(fit_idx), generator=generator).to(train_y.device)]
            for xb, yb in zip(x[perm].split(batch_size), onehot[perm].split(batch_size)):
                residual = torch.softmax(xb @ weight.T, 1).sub_(yb)
                momentum.addmm_(residual.T, xb, beta=0.9, alpha=1.0 / len(xb))
                weight.sub_(momentum, alpha=step_lr)
            val_acc = ((val_x @ weight.T).argmax(1) == val_y).float().mean().item()
            if val_acc > best:
                best, best_epoch, best_weight = val_acc, epoch, weight.clone()
            if patience is not None and epoch - best_epoch >= patience:
                break
    probe = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    with torch.no_grad():
        probe.weight.copy_(best_weight[:, :-1])
        probe.bias.copy_(best_weight[:, -1])
    return probe


def fit_linear_probe(train_x, train_y, num_classes: int, cfg: HeadConfig, method: str | None = None):
    method = method or cfg.lp
    if method == "lbfgs":
        return linear_probe_lbfgs(train_x, train_y, num_classes, cfg.lbfgs_max_iter, cfg.lbfgs_l2)
    if method == "sgd":
        return linear_probe_sgd(train_x, train_y, num_classes, cfg.sgd_epochs, cfg.sgd_lr,
                                cfg.sgd_batch_size, schedule=cfg.sgd_schedule,
                                patience=cfg.sgd_patience)
    raise ValueError(f"unknown linear-probe method {method!r}; valid choices: ['lbfgs', 'sgd']")


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean feature of every class (rows of absent classes are NaN)."""
    sums = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, y, x)
    counts = torch.bincount(y, minlength=num_classes).to(x.dtype)
    return sums / counts[:, None]


def ncc_predict(means: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x.double(), means.double()).nan_to_num(float("inf")).argmin(1)


def split_accuracy(pred: torch.Tensor, y: torch.Tensor, forget: ForgetSet) -> dict[str, float]:
    is_forget = torch.isin(y, torch.tensor(forget.classes, device=y.device))
    correct = (pred == y).double()
    mean = lambda m: 100.0 * correct[m].mean().item() if m.any() else float("nan")  # noqa: E731
    return {"retain": mean(~is_forget), "forget": mean(is_forget)}


def layerwise_probe(model: nn.Module, train: Split, test: Split, forget: ForgetSet,
                    cfg: HeadConfig) -> pd.DataFrame:
    """A linear probe (L-BFGS) on the pooled output of each of the model's stages
    (``stage_names``: the stem and stages of a ResNet, the blocks of a ViT; tidy: stage, split,
    accuracy): where in the network the forgotten classes stay separable."""
    parts = [device.extract(model, s.x, lambda x: [f.float() for f in model.stage_features(x)])
             for s in (train, test)]
    rows = []
    names = model.stage_names
    for name, train_f, test_f in zip(names, *parts):
        probe = fit_linear_probe(train_f, train.y, model.fc.out_features, cfg, "lbfgs")
        with torch.no_grad():
            pred = probe(test_f).argmax(1)
        for split, acc in split_accuracy(pred, test.y, forget).items():
            rows.append({"stage": name, "split": split, "accuracy": acc})
    return pd.DataFrame(rows)


class Head:
    """An evaluation head in scikit-learn's shape: ``fit(x, y)`` on the training split,
    ``predict(x)`` the class of every row of another. ``reads`` says which tensors of
    :class:`Features` it classifies: the penultimate ``features`` or the model's ``logits``.
    Decorated with :func:`register`, a subclass is one more head of every evaluation, results
    table and claim check."""

    name: str
    reads = "features"

    def __init__(self, cfg: HeadConfig, num_classes: int):
        self.cfg, self.num_classes = cfg, num_classes

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> "Head":
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


# Every head by name, in the order tables show them (registration order).
HEADS: dict[str, type[Head]] = {}


def register(cls: type[Head]) -> type[Head]:
    if cls.reads not in ("features", "logits"):
        raise ValueError(f"head {cls.name!r} reads {cls.reads!r}; valid choices: "
                         f"['features', 'logits']")
    HEADS[cls.name] = cls
    return cls


def representation_heads() -> tuple[str, ...]:
    """The heads that read the penultimate features (LP, NCC): what the representation still
    knows, as opposed to what the model outputs."""
    return tuple(name for name, head in HEADS.items() if head.reads == "features")


# The second opinion on the linear probe: the converged full-batch L-BFGS probe, fitted on the
# same features as the ``lp`` head (the paper's SGD protocol on every profile, which every check
# reads). Tables 1-3 show it beside ``lp`` under this head name; it never decides a verdict
# (:func:`illusion.claims.with_second_opinion` says where it would decide another one).
SECOND_OPINION = "lp_lbfgs"
SECOND_OPINION_PROBE = "lbfgs"


def table_heads() -> tuple[str, ...]:
    """The heads as tables show them: every registered head, then the second opinion."""
    return (*HEADS, SECOND_OPINION)


@register
class Output(Head):
    """The model's own classifier."""

    name, reads = "output", "logits"

    def fit(self, x, y):
        return self

    def predict(self, x):
        return x.argmax(1)


@register
class LinearProbe(Head):
    """A fresh linear layer trained on the features (``cfg.lp``: L-BFGS or the paper's SGD)."""

    name = "lp"

    def fit(self, x, y):
        self.probe_ = fit_linear_probe(x, y, self.num_classes, self.cfg)
        return self

    @torch.no_grad()
    def predict(self, x):
        return self.probe_(x).argmax(1)


@register
class NearestClassCentre(Head):
    """The Euclidean-nearest class mean of the training features."""

    name = "ncc"

    def fit(self, x, y):
        self.means_ = class_means(x, y, self.num_classes)
        return self

    def predict(self, x):
        return ncc_predict(self.means_, x)


def evaluate_features(feats: Features, forget: ForgetSet, cfg: HeadConfig,
                      heads=HEADS, lp_method: str | None = None,
                      fitted: dict[str, tuple[torch.Tensor, float]] | None = None) -> pd.DataFrame:
    """Tidy table: one row per head x split, with ``accuracy`` (percent) and ``seconds`` (the
    head's fitting and predicting time). ``lp_method`` overrides ``cfg.lp``. ``fitted``: the
    test predictions and seconds of the feature heads already fitted on these same features
    (with these settings), reused and filled here: a head is fitted on every class of the
    training split, so its fit does not depend on the forget set, only its accuracies do."""
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        raise ValueError(f"unknown head {unknown[0]!r}; valid choices: {list(HEADS)}")
    if lp_method is not None:
        cfg = dataclasses.replace(cfg, lp=lp_method)
    rows = []
    for name in heads:
        head = HEADS[name](cfg, feats.num_classes)
        reuse = fitted is not None and head.reads == "features"
        if reuse and name in fitted:
            pred, seconds = fitted[name]
        else:
            train, test = ((feats.train_logits, feats.test_logits) if head.reads == "logits"
                           else (feats.train, feats.test))
            start = time.perf_counter()
            pred = head.fit(train, feats.train_y).predict(test)
            seconds = time.perf_counter() - start
            if reuse:
                fitted[name] = pred, seconds
        for split, acc in split_accuracy(pred, feats.test_y, forget).items():
            rows.append({"head": name, "split": split, "accuracy": acc, "seconds": seconds})
    return pd.DataFrame(rows)


def mia_and_alignment(feats: Features, W: torch.Tensor, forget_classes: tuple[int, ...],
                      seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """MIA efficacy and classifier/feature alignment of one model from its features in its
    head's own geometry and its classifier rows ``W``: ``{"mia", "alignment_forget",
    "alignment_retain"}`` and the cosine of every class
    (:func:`illusion.geometry.alignment_by_class`).

    MIA: SalUn's protocol (:func:`illusion.mia.mia_efficacy`), members = retain training
    images, non-members = test images of the retain classes, reported as the percentage of D_f
    called non-member. Alignment: cosine between each classifier row and its centred class mean
    over the training features, averaged over forget and over retain classes."""
    cosines = alignment_by_class(feats.train, feats.train_y, W, forget_classes)
    is_forget = cosines["forget"]
    values = {"mia": mia_by_protocol("salun", **roles(feats, forget_classes), seed=seed),
              "alignment_forget": float(cosines["cosine"][is_forget].mean()),
              "alignment_retain": float(cosines["cosine"][~is_forget].mean())}
    return values, cosines
