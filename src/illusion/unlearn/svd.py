"""SVD unlearning (Kodge et al., "Deep unlearning: fast and efficient gradient-free class
forgetting"), as the paper's code applies it: training-free, last linear layer only.

The input activations of ``model.fc`` (the penultimate features) of a class-balanced retain
batch and of a forget batch, each A (d × n), give scaled projections onto the spaces they
occupy: A = U S Vᵀ, r_i = s_i² / Σ s², λ_i = α r_i / ((α - 1) r_i + 1), M = U diag(λ) Uᵀ
(M_r with ``alpha_r``, M_f with ``alpha_f``). The directions used by the forget class and not
by the retain classes, M_f - M_f M_r, are removed from the layer's input space:
P = I - (M_f - M_f M_r), W ← W Pᵀ. The bias is left alone.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit, Split, per_class_sample
from . import Context, register


def scaled_projection(activations: torch.Tensor, alpha: float) -> torch.Tensor:
    """M = U diag(λ) Uᵀ for activations of shape (d, n)."""
    u, s, _ = torch.linalg.svd(activations, full_matrices=False)
    energy = s.square() / s.square().sum()
    scale = alpha * energy / ((alpha - 1) * energy + 1)
    return (u * scale) @ u.T


def projection(retain_features: torch.Tensor, forget_features: torch.Tensor,
               alpha_r: float, alpha_f: float) -> torch.Tensor:
    """P = I - (M_f - M_f M_r) from features of shape (n, d)."""
    m_r = scaled_projection(retain_features.T, alpha_r)
    m_f = scaled_projection(forget_features.T, alpha_f)
    eye = torch.eye(len(m_f), dtype=m_f.dtype, device=m_f.device)
    return eye - (m_f - m_f @ m_r)


def sample(split: Split, count: int, generator: torch.Generator, balanced: bool) -> torch.Tensor:
    """Inputs of ``count`` random samples of ``split`` (``count // classes`` of every class
    when ``balanced``, all of a class where it has fewer)."""
    if balanced:
        order = per_class_sample(split.y, max(1, count // len(torch.unique(split.y))), generator)
    else:
        order = torch.randperm(len(split), generator=generator).to(split.y.device)
    return split.x[order[:count]]


@torch.no_grad()
def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.features(x).float()


@register("svd", baseline=True, edits_classifier=True, options=("alpha_r", "alpha_f"))
def svd_unlearn(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    alpha_r, alpha_f = float(cfg.option("alpha_r", 1000.0)), float(cfg.option("alpha_f", 30.0))
    if alpha_r <= 0 or alpha_f <= 0:
        raise ValueError(f"svd needs positive alpha_r and alpha_f, got {alpha_r}, {alpha_f}")
    if len(split.forget_train) == 0 or len(split.retain_train) == 0:
        raise ValueError("svd needs both forget and retain samples")
    weight = model.fc.weight
    if not any(p is weight for p in ctx.parameters(model)):
        raise ValueError("svd edits only the last linear layer (model.fc.weight), which this "
                         "context does not train")
    ctx.on_epoch_start(model, 0)
    model.eval()  # features as at test time; BatchNorm statistics untouched
    retain = penultimate(model, sample(split.retain_train, cfg.batch_size, ctx.generator, True))
    forget = penultimate(model, sample(split.forget_train, cfg.batch_size, ctx.generator, False))
    with torch.no_grad():
        p = projection(retain, forget, alpha_r, alpha_f)
        weight.copy_(weight @ p.T.to(weight.dtype))
    ctx.on_step(model, 1)
    ctx.on_epoch_end(model, 0)
    return model
