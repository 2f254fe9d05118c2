"""Classifier-only unlearning (the paper's Table 2): re-learn only the last linear layer.

Every parameter is frozen, the last layer's weight and bias are zeroed and only ``fc`` is
unfrozen; BatchNorm stays in eval mode (the context's ``train_mode`` puts the whole model in
eval), and the registered method runs unchanged: only its context differs. The features, hence
the LP and NCC heads, are the Original's by construction.

Because the backbone is frozen, the features of every split are fixed: the fast path extracts
them once (float32) and runs the method on a :class:`FeatureModel` (``features`` = identity, ``fc`` = the
zeroed classifier) with a :class:`~illusion.data.ForgetSplit` of features. It sees
un-augmented features, and so does the image path (augmentation is off in both, so both give
the same classifier up to float error). Distillation methods (SCRUB) imitate the Original, not
the zeroed starting model. Methods that work in input space (``IMAGE_ONLY``) always take the image path.

    model, seconds = run("rl", original, split, cfg, ctx)
"""

from __future__ import annotations

import copy
import dataclasses
import time

import torch
from torch import nn

from .config import MethodConfig
from .data import ForgetSplit, Split
from .models import INFERENCE_BATCH_SIZE
from .unlearn import Context, Hook, get_method, unlearn

# Methods whose loss needs images, not features (UNSIR learns noise in input space).
IMAGE_ONLY = {"unsir"}
SPLIT_PARTS = ("forget_train", "retain_train", "forget_test", "retain_test", "retain_val")


class FeatureModel(nn.Module):
    """A classifier on cached penultimate features, with the ``features``/``fc`` convention, so
    a method that only calls ``model(x)``, ``model.features`` or ``model.fc`` runs on it."""

    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def freeze_all_but_classifier(model: nn.Module) -> nn.Module:
    """In place: freeze every parameter, zero ``fc`` (weight and bias) and unfreeze only it."""
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        for p in model.fc.parameters():
            p.zero_()
            p.requires_grad_(True)
    return model


def _classifier_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(model.fc.parameters())


def _eval_mode(model: nn.Module) -> None:
    model.eval()  # BatchNorm keeps its running statistics; dropout (if any) is off


def classifier_context(ctx: Context, **changes) -> Context:
    """``ctx`` training ``fc`` only, with the whole model in eval mode; hooks, seed,
    augmentation and clip are kept unless ``changes`` say otherwise. The batch generator
    restarts from ``ctx.seed`` (as a fresh context would)."""
    return dataclasses.replace(ctx, parameters=_classifier_parameters, train_mode=_eval_mode,
                               **changes)


@torch.no_grad()
def float32_features(model: nn.Module, split: Split,
                     batch_size: int = INFERENCE_BATCH_SIZE) -> torch.Tensor:
    """Penultimate features in eval mode and float32. Unlike :func:`illusion.heads.extract`
    there is no bf16 autocast on CUDA: the methods train in float32, and the fast path must
    see the features the image path computes."""
    was_training = model.training
    model.eval()
    chunks = [model.features(split.x[i:i + batch_size]).float()
              for i in range(0, len(split), batch_size)]
    out = torch.cat(chunks) if chunks else split.x.new_zeros(0, model.fc.in_features)
    model.train(was_training)
    return out


def feature_split(model: nn.Module, split: ForgetSplit,
                  batch_size: int = INFERENCE_BATCH_SIZE) -> ForgetSplit:
    """The same forget/retain split with every image replaced by its penultimate features."""
    def part(s: Split) -> Split:
        return Split(float32_features(model, s, batch_size), s.y)
    return ForgetSplit(split.forget_set, *(part(getattr(split, name)) for name in SPLIT_PARTS))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _unfreeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def run(name: str, model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
        ctx: Context | None = None, use_cached_features: bool | None = None,
        features: ForgetSplit | None = None) -> tuple[nn.Module, float]:
    """Classifier-only version of method ``name``; same signature and result as
    :func:`illusion.unlearn.unlearn`: (a new model whose only changed tensors are ``fc``'s,
    seconds). ``use_cached_features`` None takes the fast feature path when the method allows
    it (not in ``IMAGE_ONLY``); its seconds include the feature extraction. The context's hooks
    always receive a full model (backbone + the classifier being learnt). ``features``, the
    :func:`feature_split` of ``model`` and ``split``, saves the extraction when many methods
    run on one model (its time is then not in the returned seconds)."""
    get_method(name)  # unknown names fail here, before any work
    ctx = ctx or Context()
    if use_cached_features is None:
        use_cached_features = name not in IMAGE_ONLY
    if use_cached_features and name in IMAGE_ONLY:
        raise ValueError(f"method {name!r} needs images (IMAGE_ONLY = {sorted(IMAGE_ONLY)}); "
                         f"use_cached_features must be False or None for it")
    if not use_cached_features:
        frozen = freeze_all_but_classifier(copy.deepcopy(model))
        learnt, seconds = unlearn(name, frozen, split, cfg,
                                  classifier_context(ctx, crop_padding=0, flip=False,
                                                     teacher=model))
        return _unfreeze(learnt), seconds

    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    cached = features if features is not None else feature_split(model, split)
    _sync(device)
    extract_seconds = time.perf_counter() - start
    full = copy.deepcopy(model)  # the backbone the learnt classifier is put back on

    def on_full(hook: Hook) -> Hook:
        def call(head: nn.Module, index: int) -> None:
            full.fc = head.fc  # shares the classifier being learnt
            hook(full, index)
        return call

    head = freeze_all_but_classifier(FeatureModel(copy.deepcopy(model.fc)))
    fast = classifier_context(ctx, crop_padding=0, flip=False,  # features cannot be cropped
                              teacher=FeatureModel(copy.deepcopy(model.fc)),
                              on_epoch_start=on_full(ctx.on_epoch_start),
                              on_epoch_end=on_full(ctx.on_epoch_end),
                              on_step=on_full(ctx.on_step))
    learnt, seconds = unlearn(name, head, cached, cfg, fast)
    full.fc = learnt.fc
    return _unfreeze(full), extract_seconds + seconds
