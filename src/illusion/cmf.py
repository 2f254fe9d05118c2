"""The class-mean-feature (CMF) classifier and CMF unlearning (the paper's §5, REFERENCE §8).

The CMF head replaces the last linear layer by class means of the current features: over the
whole training split with true labels,

    z_i = f_i / ‖f_i‖,   m_c = mean of z_i in class c,   μ = mean of all z_i,
    w_c = (m_c − μ) / ‖m_c − μ‖,   logit_c(x) = τ ⟨normalize(normalize(f(x)) − μ), w_c⟩.

This is the authors' code ("code" reading). The paper's Algorithm 1 ("paper" reading) averages
raw features, takes μ = mean of the class means and ẑ = normalize(f − μ). The two agree when
every feature has the same norm and the classes are balanced; otherwise they differ a little.

W and μ are buffers, never parameters: no gradient reaches them, and output accuracy can only
change when the features do. CMF unlearning (Algorithm 2) runs any registered method unchanged,
through a context that recomputes W at every epoch start and trains the encoder only (and at
every epoch end, which a hook then sees; an unchanged model is never recomputed twice); W is
recomputed once more at the end, with true labels (the forget classes keep their rows). The
CMF settings of RL, SalUn and NegGrad+ bound the gradient norm to 1.0 (the common ``clip``
option), as the authors do for those three only.

    cmf_model = prepare(original, data.train, profile.method("prepare", "cmf"), Context())
    unlearned, seconds = run("rl", cmf_model, split, profile.method("rl", "cmf"), Context())
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .config import MethodConfig
from .data import ForgetSplit, Split
from .device import synchronize
from .heads import class_means, extract
from .models import INFERENCE_BATCH_SIZE
from .unlearn import Context, unlearn
from .unlearn._loop import concat, image_batches, run_epochs

READINGS = ("code", "paper")
PREPARE_OPTIONS = ("weight_decay", "reading", "tau")  # the options prepare() reads


class CMFHead(nn.Module):
    """Cosine classifier on centred, normalised features with class-mean weights.

    Holds only buffers: ``weight`` (K x d, unit rows w_c), ``mu`` (d), ``tau`` (scalar) and
    ``normalize_first`` (the reading: True for "code"). All of them travel in the state_dict,
    so a stored model loads into any CMF head of the same shape. Quacks like ``nn.Linear``
    (``weight``, ``in_features``, ``out_features``) so the rest of the library reads it as is.
    """

    def __init__(self, in_features: int, num_classes: int, reading: str = "code", tau: float = 1.0):
        super().__init__()
        check_reading(reading)
        self.register_buffer("weight", torch.zeros(num_classes, in_features))
        self.register_buffer("mu", torch.zeros(in_features))
        self.register_buffer("tau", torch.tensor(float(tau)))
        self.register_buffer("normalize_first", torch.tensor(reading == "code"))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def reading(self) -> str:
        return "code" if bool(self.normalize_first) else "paper"

    def centred(self, f: torch.Tensor) -> torch.Tensor:
        """ẑ: the (normalised, for the code reading) feature minus μ, normalised."""
        # torch.where rather than an `if` on the buffer: no device sync in the forward pass.
        f = torch.where(self.normalize_first, F.normalize(f, dim=1), f)
        return F.normalize(f - self.mu.to(f.dtype), dim=1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.centred(f)
        return self.tau.to(z.dtype) * F.linear(z, self.weight.to(z.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def check_reading(reading: str) -> None:
    if reading not in READINGS:
        raise ValueError(f"unknown CMF reading {reading!r}; valid choices: {list(READINGS)}")


@torch.no_grad()
def class_mean_classifier(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          reading: str = "code", tau: float = 1.0) -> CMFHead:
    """The CMF head built from ``features`` (N x d) with labels ``labels`` (every class must
    occur). ``reading``: "code" (normalise each feature first, μ = mean of all of them) or
    "paper" (raw features, μ = mean of the class means)."""
    check_reading(reading)
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"a CMF head needs features of every class; classes {missing} have none")
    f = features.double()
    if reading == "code":
        f = F.normalize(f, dim=1)
        means = class_means(f, labels, num_classes)
        mu = f.mean(0)
    else:
        means = class_means(f, labels, num_classes)
        mu = means.mean(0)
    head = CMFHead(f.shape[1], num_classes, reading, tau).to(features.device)
    head.weight.copy_(F.normalize(means - mu, dim=1))
    head.mu.copy_(mu)
    return head


def head_is_cmf(model: nn.Module) -> bool:
    return isinstance(getattr(model, "fc", None), CMFHead)


def _require_cmf(model: nn.Module) -> CMFHead:
    if not head_is_cmf(model):
        raise ValueError(f"expected a model with a CMF head, got fc={type(getattr(model, 'fc', None)).__name__}; "
                         f"build one with illusion.cmf.attach or illusion.cmf.prepare")
    return model.fc


@torch.no_grad()
def recompute(model: nn.Module, train: Split, batch_size: int = INFERENCE_BATCH_SIZE) -> nn.Module:
    """Recompute the CMF head of ``model`` in place from the features (eval mode, no gradient)
    of the whole split ``train``, true labels."""
    head = _require_cmf(model)
    feats, _ = extract(model, train, batch_size)
    fresh = class_mean_classifier(feats, train.y, head.out_features, head.reading)
    head.weight.copy_(fresh.weight)
    head.mu.copy_(fresh.mu)
    return model


def empty_cmf_model(model_like: nn.Module, reading: str = "code", tau: float = 1.0) -> nn.Module:
    """A deep copy of ``model_like`` whose ``fc`` is an (all-zero) CMF head of the same shape:
    the module to ``load_state_dict`` a stored CMF model into (reading and τ load with it)."""
    fc = model_like.fc
    model = copy.deepcopy(model_like)
    device = next(model.parameters()).device
    model.fc = CMFHead(fc.in_features, fc.out_features, reading, tau).to(device)
    return model


def attach(model: nn.Module, train: Split, reading: str = "code", tau: float = 1.0) -> nn.Module:
    """A deep copy of ``model`` with its last layer replaced by the CMF head of ``train``."""
    return recompute(empty_cmf_model(model, reading, tau), train)


def _state_versions(model: nn.Module) -> tuple[int, ...]:
    """The in-place version counter of every parameter and buffer of ``model``: any optimiser
    step or BatchNorm update moves one of them (autograd's own counter, ``Tensor._version``)."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers()))


def _cmf_context(ctx: Context, train: Split) -> tuple[Context, Callable[[nn.Module], None]]:
    """``ctx`` changed for CMF training, and its ``refresh(model)``: W recomputed at every
    epoch start (then the caller's own hook) and at every epoch end (before the caller's hook,
    which so measures the W the stored model would have); the encoder trains alone. Shares the
    caller's generator. ``refresh`` recomputes only when the model changed since it last did:
    an epoch end and the next start (or the end of the run) share one recomputation."""
    wrapped = copy.copy(ctx)  # not dataclasses.replace: that would re-seed a new generator
    computed_at: tuple[int, ...] | None = None

    def refresh(model: nn.Module) -> None:
        nonlocal computed_at
        if computed_at != _state_versions(model):
            recompute(model, train)
            computed_at = _state_versions(model)

    def on_epoch_start(model: nn.Module, epoch: int) -> None:
        refresh(model)
        ctx.on_epoch_start(model, epoch)

    def on_epoch_end(model: nn.Module, epoch: int) -> None:
        refresh(model)
        ctx.on_epoch_end(model, epoch)

    def parameters(model: nn.Module) -> list[nn.Parameter]:
        head = {id(p) for p in model.fc.parameters()}  # empty for a CMF head; kept as a guard
        return [p for p in ctx.parameters(model) if id(p) not in head]

    wrapped.on_epoch_start = on_epoch_start
    wrapped.on_epoch_end = on_epoch_end
    wrapped.parameters = parameters
    return wrapped, refresh


def _cross_entropy(model: nn.Module, batch, epoch: int) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def prepare(model: nn.Module, train: Split, cfg: MethodConfig, ctx: Context | None = None) -> nn.Module:
    """The CMF Original: a copy of ``model`` with a CMF head, its encoder fine-tuned with CE on
    CMF logits over ``train`` for ``cfg.epochs`` (SGD as the unlearning methods, weight decay
    ``cfg.option('weight_decay')``), W recomputed at every epoch start and at the end.
    Options ``reading`` ("code") and ``tau`` (1.0) choose the head."""
    ctx = ctx or Context()
    model = empty_cmf_model(model, cfg.option("reading", "code"), cfg.option("tau", 1.0))
    cmf_ctx, refresh = _cmf_context(ctx, train)
    model = run_epochs(model, cfg, cmf_ctx, lambda epoch: image_batches(train, cfg, ctx),
                       _cross_entropy)
    refresh(model)
    return model.eval()


def run(name: str, model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
        ctx: Context | None = None) -> tuple[nn.Module, float]:
    """CMF unlearning (Algorithm 2): the registered method ``name``, unchanged, on a copy of
    the CMF model ``model``; returns (unlearned model, seconds), like
    :func:`illusion.unlearn.unlearn`. W is recomputed from the whole training split (forget
    and retain, true labels) at every epoch start and at the end."""
    _require_cmf(model)
    ctx = ctx or Context()
    train = concat(split.forget_train, split.retain_train)
    cmf_ctx, refresh = _cmf_context(ctx, train)
    model, seconds = unlearn(name, model, split, cfg, cmf_ctx)
    start = time.perf_counter()
    refresh(model)
    synchronize(next(model.parameters()).device)
    return model.eval(), seconds + time.perf_counter() - start
