"""Prune: training-free, zero the forget-class rows of the last linear layer (weight and bias),
as in the paper's code.

The forget logit is then exactly 0 for every input. That is not the same as removing the
class: a sample is still predicted as a forget class whenever every other logit is negative,
so output forget accuracy need not reach 0, while the features are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MethodConfig
from ..data import ForgetSplit
from . import Context, register


@register("prune", edits_classifier=True)
def prune(model: nn.Module, split: ForgetSplit, cfg: MethodConfig, ctx: Context) -> nn.Module:
    classes = split.forget_set.classes
    if max(classes) >= model.fc.out_features:
        raise ValueError(f"forget classes {classes} are not rows of a classifier with "
                         f"{model.fc.out_features} outputs (valid: 0..{model.fc.out_features - 1})")
    rows = torch.tensor(classes, device=model.fc.weight.device)
    with torch.no_grad():
        model.fc.weight[rows] = 0
        if model.fc.bias is not None:
            model.fc.bias[rows] = 0
    return model
