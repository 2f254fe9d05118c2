"""Classifier-only unlearning (the paper's Table 2): re-learn only the last linear layer.

Every parameter is frozen, the last layer's weight and bias are zeroed and only ``fc`` is
unfrozen, and the registered method runs unchanged: only its context differs. BatchNorm's
running statistics never change, so the features at test time, hence the LP and NCC heads, are
the Original's by construction. Two protocols (the method setting's ``protocol`` option):

- ``"authors"``: the authors' code (``--zero_last_layer``): the model is in train mode with
  BatchNorm normalising each batch by its own statistics (running statistics untouched), on
  images augmented as the context says. The paper profiles use it.
- ``"cached"``: the backbone in eval mode, so the features of every split are fixed: they are
  extracted once (float32, un-augmented) and the method runs on a :class:`FeatureModel`
  (``features`` = identity, ``fc`` = the zeroed classifier) with a
  :class:`~illusion.data.ForgetSplit` of features. Seconds instead of minutes on a CPU; the
  default profile uses it, and the deviations chapter measures how far it is from the
  authors' protocol. Methods that work in input space (registered ``image_only``, listed
  in ``IMAGE_ONLY``) cannot use it.

Distillation methods (SCRUB) imitate the Original, not the zeroed starting model.

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
from .device import extract, synchronize
from .models import INFERENCE_BATCH_SIZE
from .unlearn import Context, Hook, get_method, having, traits, unlearn

PROTOCOLS = ("authors", "cached")
OPTIONS = ("protocol",)  # read from a method's classifier-only settings, besides its own
SPLIT_PARTS = ("forget_train", "retain_train", "forget_test", "retain_test", "retain_val")


class FeatureModel(nn.Module):
    """A classifier on cached penultimate features, with the ``features``/``fc`` convention, so
    a method that only calls ``model(x)``, ``model.features`` or ``model.fc`` runs on it."""

    def __init__(self, fc: nn.Linear, network_parameter_count: int | None = None):
        super().__init__()
        self.fc = fc
        # The weights of the network it stands for (SalUn ranks all of them).
        self.network_parameter_count = network_parameter_count

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


def _batch_statistics_mode(model: nn.Module) -> None:
    """Train mode in which BatchNorm normalises by batch statistics and leaves its running
    statistics alone (the authors' ``track_running_stats = False``)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False


def _restore_running_statistics(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = True
    return model


def classifier_context(ctx: Context, protocol: str = "cached", **changes) -> Context:
    """``ctx`` training ``fc`` only: the whole model in eval mode (``cached``) or in the
    authors' batch-statistics train mode (``authors``); hooks, seed and augmentation are kept
    unless ``changes`` say otherwise. The batch generator restarts from ``ctx.seed`` (as a
    fresh context would)."""
    mode = _batch_statistics_mode if protocol == "authors" else _eval_mode
    return dataclasses.replace(ctx, parameters=_classifier_parameters, train_mode=mode, **changes)


def float32_features(model: nn.Module, split: Split,
                     batch_size: int = INFERENCE_BATCH_SIZE) -> torch.Tensor:
    """Penultimate features in eval mode and float32. Unlike :func:`illusion.heads.extract`
    there is no bf16 autocast on CUDA: the methods train in float32, and the fast path must
    see the features the image path computes."""
    if len(split) == 0:
        return split.x.new_zeros(0, model.fc.in_features)
    return extract(model, split.x, lambda x: model.features(x).float(), batch_size)


def feature_split(model: nn.Module, split: ForgetSplit,
                  batch_size: int = INFERENCE_BATCH_SIZE) -> ForgetSplit:
    """The same forget/retain split with every image replaced by its penultimate features."""
    def part(s: Split) -> Split:
        return Split(float32_features(model, s, batch_size), s.y)
    return ForgetSplit(split.forget_set, *(part(getattr(split, name)) for name in SPLIT_PARTS),
                       split.pixels)


def _unfreeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def __getattr__(name: str):
    """``IMAGE_ONLY``: the methods registered with ``image_only=True``, read from the registry
    each time (PEP 562), so it cannot disagree with it."""
    if name == "IMAGE_ONLY":
        return frozenset(having("image_only"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def protocol_of(name: str, cfg: MethodConfig, protocol: str | None = None) -> str:
    """The protocol a run takes: ``protocol``, else the setting's ``protocol`` option, else
    ``cached`` (``authors`` for the methods registered ``image_only``)."""
    image_only = traits(name).image_only
    protocol = protocol or cfg.option("protocol") or ("authors" if image_only else "cached")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown classifier-only protocol {protocol!r}; valid choices: "
                         f"{list(PROTOCOLS)}")
    if protocol == "cached" and image_only:
        raise ValueError(f"method {name!r} needs images (registered image_only; IMAGE_ONLY = "
                         f"{sorted(having('image_only'))}); its classifier-only protocol must "
                         f"be 'authors'")
    return protocol


def run(name: str, model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
        ctx: Context | None = None, protocol: str | None = None,
        features: ForgetSplit | None = None) -> tuple[nn.Module, float]:
    """Classifier-only version of method ``name``; same signature and result as
    :func:`illusion.unlearn.unlearn`: (a new model whose only changed tensors are ``fc``'s,
    seconds). ``protocol`` (see the module docstring) defaults to :func:`protocol_of`; the
    ``cached`` seconds include the feature extraction. The context's hooks always receive a
    full model (backbone + the classifier being learnt). ``features``, the
    :func:`feature_split` of ``model`` and ``split``, saves the extraction when many methods
    run on one model (its time is then not in the returned seconds)."""
    get_method(name)  # unknown names fail here, before any work
    ctx = ctx or Context()
    if protocol_of(name, cfg, protocol) == "authors":
        frozen = freeze_all_but_classifier(copy.deepcopy(model))
        learnt, seconds = unlearn(name, frozen, split, cfg,
                                  classifier_context(ctx, "authors", teacher=model))
        return _unfreeze(_restore_running_statistics(learnt)), seconds

    device = next(model.parameters()).device
    synchronize(device)
    start = time.perf_counter()
    cached = features if features is not None else feature_split(model, split)
    synchronize(device)
    extract_seconds = time.perf_counter() - start
    full = copy.deepcopy(model)  # the backbone the learnt classifier is put back on

    def on_full(hook: Hook) -> Hook:
        def call(head: nn.Module, index: int) -> None:
            full.fc = head.fc  # shares the classifier being learnt
            hook(full, index)
        return call

    count = sum(p.numel() for p in model.parameters())
    head = freeze_all_but_classifier(FeatureModel(copy.deepcopy(model.fc), count))
    fast = classifier_context(ctx, "cached", crop_padding=0, flip=False,  # features cannot be cropped
                              teacher=FeatureModel(copy.deepcopy(model.fc), count),
                              on_epoch_start=on_full(ctx.on_epoch_start),
                              on_epoch_end=on_full(ctx.on_epoch_end),
                              on_step=on_full(ctx.on_step))
    learnt, seconds = unlearn(name, head, cached, cfg, fast)
    full.fc = learnt.fc
    return _unfreeze(full), extract_seconds + seconds
