"""``illusion audit``: the representation-level report of any compatible checkpoint;
``illusion evaluate``: does an unlearning method (yours) create the illusion of unlearning?

    illusion evaluate --method mypkg.mymod:my_unlearn --profile default \\
                      [--forget-sets 6 2-4-6] [--set methods.my_unlearn.lr=1e-3] [--out DIR]
                      [--model timm:NAME|torchvision:NAME|resnet18 [--input-size N]
                       [--model-option KEY=VALUE ...]]

runs the method (built-in, an entry point of group ``illusion.methods``, or ``module:function``;
see :mod:`illusion.outside` for how it declares its traits and settings) in full, classifier-only
and under CMF, with the Original and Retrain, and prints and saves its rows of Tables 1-3, its
relearning AUCs and the verdict on every claim it can be judged on
(:mod:`illusion.evaluation`). It trains every model itself, on the profile's architecture or
on ``--model``'s (``--model A --input-size N --model-option depth=2`` are
``--set model.arch=A --set model.input_size=N --set model.options.depth=2``; a timm or
torchvision model so chosen is built once, untrained, to check the name and options). Bad
input (an unknown method, a module that does not import, a module without that function, a
bad setting or forget set, an unknown model or model option) ends with exit status 2 and a
message naming the value and the valid choices, before anything is computed or written; a
method that fails while it runs ends with status 1, and nothing of it is stored or written.

    illusion audit --checkpoint model.pt --dataset fashion-mnist --forget 6 \\
                   [--retrain retrain.pt] [--original original.pt] [--profile default]
                   [--out DIR] [--attack-steps N]
                   [--model timm:NAME|torchvision:NAME|resnet18 [--input-size N]
                    [--model-option KEY=VALUE ...]]
    illusion audit --config audit.json          # the same keys in a JSON object

For the unlearned model (and the Retrain model, when given) it prints and saves under
``--out`` (``report.json`` and one CSV per table), measured as the book measures (chapters 2-7:
the same functions, the profile's settings):

- ``heads.csv``: Output / LP / NCC accuracy on test retain and test forget;
- ``geometry.csv``: NC1-NC4 (``illusion.geometry.nc_metrics``), the mean cosine between each
  classifier row and its centred class mean for forget and retain classes, MIA efficacy;
- ``alignment.csv``: that cosine per class;
- ``relearning.csv``: relearning curves of every attack of ``illusion.attacks.ATTACKS``, those
  from a fresh head (``few_shot_fresh``, ``head_only_fresh``) included;
- ``prototype.csv``: the training-free prototypical relearning attack
  (``illusion.attacks.prototype_attack``, the profile's ``probes.prototype_*`` budgets; it runs
  even with ``--attack-steps 0``, which skips only the fine-tuning attacks);
- ``recovery.csv``: one recovery per model and attack (model, attack, auc, keeps_retain): the
  fine-tuning curves' AUC and each prototype configuration's mean forget accuracy over its
  budgets (``illusion.attacks.prototype_recovery``; ``keeps_retain`` False where it costs more
  than ``PROTOTYPE_RETAIN_KEPT`` pp of retain accuracy, always True for fine-tuning);
- ``strongest.csv``: per model, the attack that gives back the most among those that keep the
  retain classes (``illusion.attacks.strongest``);
- ``over_unlearning.csv``: OU@ε (``illusion.over_unlearning``: mean JS divergence to the
  Original's masked softmax on the forget training images perturbed by targeted PGD and by
  Gaussian noise, the profile's ``probes.ou_*`` settings) of the model, the Retrain and the
  Original; it needs ``--original`` (the Original model's checkpoint) and is empty without it;
- ``similarity.csv``: linear CKA (``illusion.similarity.linear_cka``) of the model's (and the
  Retrain's) penultimate test features with the Original's and the Retrain's, whichever are
  given, on test retain and test forget separately.

Checkpoints (``--checkpoint``, ``--retrain``, ``--original``; one ``--model`` for all three).
State dicts are saved with ``torch.save(model.state_dict(), path)`` or as the artifact store's
payload ``{"state_dict": ..., "record": ..., "_key": ...}`` and loaded with
``weights_only=True``; the ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile)
prefixes are dropped. Three kinds:

- without ``--model`` (or with ``--model resnet18`` etc., the same as ``--arch``): a state
  dict of an ``illusion.models`` ResNet (``resnet10``/``resnet18``/``resnet50``, with the
  CIFAR stem; keys ``conv1.weight``, ``bn1.*``, ``stages.<i>.<j>.*``, ``fc.weight``,
  ``fc.bias``): width, input channels and number of classes are read from ``conv1.weight``
  and ``fc.weight``, the layout from the keys; a CMF head's buffers
  ``fc.weight/mu/tau/normalize_first`` are recognised;
- with ``--model timm:NAME`` or ``--model torchvision:NAME``: a state dict of the model that
  library builds, with its own keys (``torch.save(model.state_dict())`` of
  ``timm.create_model(NAME, ...)`` or ``torchvision.models.get_model(NAME, ...)``:
  ``head.weight``, ``fc.weight``, ``classifier.6.weight``, ``heads.head.weight``, ...), or the
  store's payload of our adapted model (keys ``body.*``, ``fc.*``, a CMF head included). The
  model is built without pretrained weights (``pretrained=False``), with ``--model-option
  KEY=VALUE`` as keyword arguments of the constructor (``depth=2``; values read as JSON
  when they parse) and ``--input-size N`` (images resized to N pixels a side, a ViT built for
  them; :class:`illusion.models.Adapted`); its number of classes is read from the
  classifier's weight, a timm model's input channels from its first 4-d weight (stem or
  patch embedding; else the dataset's); the keys then load strictly, and grey images are
  repeated over a colour model's channels;
- a *TorchScript* module (``torch.jit.save(torch.jit.script(model), path)``; ``--model`` does
  not apply) that exposes ``features(x)`` (penultimate features) and ``fc`` (the last linear
  layer) with ``model(x) == model.fc(model.features(x))``; ``torch.jit.trace`` keeps only
  ``forward`` and is not enough.

A state dict whose keys do not match gets one line naming the first missing and unexpected
keys and shape mismatches, the architecture tried (without ``--model``, our three ResNets)
and, when the keys look like a torchvision ResNet's or a ViT's, the ``--model`` to pass.

    illusion run --profile default [--overrides FILE] [--set seed=1235]
                 [--executor processes|ray] [--jobs N] [--address HOST:PORT]

computes every model and table the book's chapters read on a profile (:mod:`illusion.plan`), in
this process (``serial``), in single-threaded processes of this machine (``processes``, one
per core or ``--jobs``), or as tasks on a Ray cluster (``ray``: a new local one, or the one at
``--address``), so that the chapters afterwards only read the artifact store. It prints one line
per node that computed something and a summary. Bad input (an unknown profile, executor or
setting) ends with exit status 2 before anything is computed.

Bad input (a missing or unreadable file, a state dict of another architecture, an unknown
``--model`` or model option, ``--width`` with a timm/torchvision model or ``--input-size`` /
``--model-option`` with ours, a checkpoint with NaN or infinite weights, a class count that
differs from the dataset's, an unknown dataset, a forget class out of range, a relearning
budget out of range, an existing file as ``--out``; the same for ``--retrain`` and
``--original``) is found before any computation and ends with exit status 2 and a one-line
message naming the problem and the valid choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.std import tqdm  # the text bar: tqdm.auto warns in kernels without ipywidgets

from .config import PROFILES, SEED, ForgetSet, Profile, SettingError, read_overrides, resolve
from .data import SOURCES, Dataset, DataUnavailable, ForgetSplit, load_dataset, split_forget
from .models import (ARCHITECTURES, Adapted, adapt, build_model, build_native,
                     PretrainedWeightsMissing, infer_architecture, split_arch)
from .train import DivergedError, check_finite, resolve_device

# Settings of an audit with their defaults (None: required, read from the checkpoint, or, for
# the relearning budget, the profile's ``attack`` settings, as the book's chapter 6 uses them;
# ``retrain`` and ``original``: optional checkpoints to compare against).
DEFAULTS: dict[str, Any] = {
    "checkpoint": None, "dataset": None, "forget": None,
    "arch": None, "width": None, "profile": "default", "retrain": None, "original": None,
    "out": "illusion-audit", "attack_steps": None, "attack_lr": None, "shots": None,
    "device": "auto", "seed": None, "model": None, "input_size": None, "model_options": None,
}
REQUIRED = ("checkpoint", "dataset", "forget")
PATH_KEYS = ("checkpoint", "retrain", "original", "out")
NUMBERS = {"width": int, "attack_steps": int, "shots": int, "seed": int, "attack_lr": float,
           "input_size": int}
# Keyword arguments of a timm or torchvision constructor that the checkpoint decides.
READ_FROM_CHECKPOINT = ("num_classes", "in_chans", "pretrained", "weights")
# timm ViT names by embedding width, with their standard depth.
VIT_SIZES = {192: ("tiny", 12), 384: ("small", 12), 768: ("base", 12), 1024: ("large", 24),
             1280: ("huge", 32)}
# torchvision ResNets by blocks per stage and block type (Bottleneck: a third convolution).
TORCHVISION_RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
                       ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101",
                       ((3, 8, 36, 3), True): "resnet152"}


class AuditError(ValueError):
    """A problem with the audit's inputs; ``illusion audit`` exits with status 2."""


# --------------------------------------------------------------------------------------------
# Checkpoints


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding compiled ``code/``; ``torch.save`` files
    hold only pickles and tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _read(path: Path) -> Any:
    if path.is_dir():
        raise AuditError(f"checkpoint {path} is a folder; give the path of a checkpoint file "
                         f"(a state dict saved with torch.save, or a TorchScript module)")
    if not path.is_file():
        raise AuditError(f"checkpoint file not found: {path}")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # TorchScript's deprecation notice is not ours
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as error:
            raise AuditError(f"cannot read TorchScript checkpoint {path}: "
                             f"{type(error).__name__}: {str(error).splitlines()[0][:300]}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        with open(path, "rb") as f:
            head = f.read(16)
        # torch.save writes a zip archive (a pickle in the legacy format): anything else, a
        # text file say, only confuses the unpickler ("KeyError: 101").
        if zipfile.is_zipfile(path) or head.startswith(b"\x80"):
            problem = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
        else:
            problem = f"not a file written by torch.save: it starts with {head!r}"
        raise AuditError(
            f"cannot read checkpoint {path} ({problem}). Expected a "
            f"state dict saved with torch.save(model.state_dict(), path) (loadable with "
            f"weights_only=True), the store's payload {{'state_dict': ...}}, or a TorchScript "
            f"module saved with torch.jit.save(torch.jit.script(model), path)") from None


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]          # the artifact store's payload
    elif isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]               # illusion.train.fit's resumable checkpoint
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise AuditError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of "
                         f"parameter names to tensors) nor a TorchScript module")
    # Wrappers add prefixes: DataParallel ("module.") and torch.compile ("_orig_mod.").
    state = {}
    for key, value in obj.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def _examples(keys: Sequence[str], n: int = 4) -> str:
    keys = list(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def suggested_model(state: Mapping[str, torch.Tensor]) -> str | None:
    """The ``--model`` (and its options) that a state dict's keys look like, when they are a
    torchvision (or timm) ResNet's (``layer1.0.conv1.weight``) or a timm or torchvision ViT's
    (``blocks.0.*`` / ``patch_embed.*``, ``encoder.layers.*``); else None. A guess from the
    names and shapes, for an error message."""
    state = {k.removeprefix("body."): v for k, v in state.items()}
    if "layer1.0.conv1.weight" in state and not any(k.startswith("stages.") for k in state):
        blocks: dict[int, set[int]] = {}
        for key in state:
            layer, _, rest = key.partition(".")
            index = rest.partition(".")[0]
            if layer.startswith("layer") and layer[5:].isdigit() and index.isdigit():
                blocks.setdefault(int(layer[5:]), set()).add(int(index))
        layout = tuple(len(blocks[i]) for i in sorted(blocks))
        name = TORCHVISION_RESNETS.get((layout, any(".conv3." in k for k in state)))
        return f"--model torchvision:{name}" if name else "--model torchvision:resnetN"
    proj = state.get("patch_embed.proj.weight")
    if proj is not None and proj.dim() == 4 and any(k.startswith("blocks.") for k in state):
        size, depth = VIT_SIZES.get(proj.shape[0], (None, None))
        patch = proj.shape[-1]
        found = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        hint = f"--model timm:vit_{size or '<size>'}_patch{patch}_224"
        if found != depth:
            hint += f" --model-option depth={found}"
        tokens = state.get("pos_embed")
        if tokens is not None and tokens.dim() == 3:
            cells = tokens.shape[1] - ("cls_token" in state)
            grid = math.isqrt(cells)
            if grid * grid == cells and grid * patch != 224:
                hint += f" --input-size {grid * patch}"
        return hint
    if "conv_proj.weight" in state and any(k.startswith("encoder.layers.") for k in state):
        return "--model torchvision:vit_b_16 (or the ViT of its size)"
    return None


def _model_flags(arch: str, input_size: int | None = None,
                 options: Mapping[str, Any] | None = None) -> str:
    """``--model timm:NAME --model-option depth=2 --input-size 32``: a model as flags."""
    options = sorted((options or {}).items())
    return " ".join([f"--model {arch}",
                     *(f"--model-option {k}={json.dumps(v)}" for k, v in options),
                     *([f"--input-size {input_size}"] if input_size else [])])


def _hint(state: Mapping[str, torch.Tensor], given: str) -> str:
    """'; its keys look like ...: pass --model ...' when they look like a model other than the
    one the flags ``given`` name."""
    model = suggested_model(state)
    if model is None or set(model.split()) <= set(given.split()):
        return ""
    return f"; its keys look like those of {model}: pass that"


def model_from_state_dict(state: Mapping[str, torch.Tensor], arch: str | None = None,
                          width: int | None = None, path: str | Path = "checkpoint") -> nn.Module:
    """An ``illusion.models`` ResNet holding ``state``; its sizes read from the tensors."""
    tried = (f"tried illusion {arch}" if arch is not None else
             f"tried illusion {'/'.join(sorted(ARCHITECTURES))}")
    conv, fc = state.get("conv1.weight"), state.get("fc.weight")
    if conv is None or fc is None or conv.dim() != 4 or fc.dim() != 2:
        raise AuditError(
            f"{path} is not a state dict of a supported architecture: it has no 4-d "
            f"'conv1.weight' and 2-d 'fc.weight' (its keys: {_examples(sorted(state))}; "
            f"{tried}). Supported: illusion.models ResNets {sorted(ARCHITECTURES)} (keys "
            f"'conv1.weight', 'stages.<i>.<j>.*', 'fc.weight'), a timm or torchvision model "
            f"with its own keys (--model timm:NAME or torchvision:NAME), or a TorchScript module "
            f"exposing features and fc" + _hint(state, f"--model {arch}" if arch else ""))
    given_arch = arch is not None
    if arch is None:  # read from the blocks; an unknown layout is checked against ResNet-18
        arch = infer_architecture(state) or "resnet18"
    if arch not in ARCHITECTURES:
        raise AuditError(f"unknown architecture {arch!r}; valid choices: {sorted(ARCHITECTURES)}")
    found_width, in_channels, num_classes = conv.shape[0], conv.shape[1], fc.shape[0]
    if width is not None and width != found_width:
        raise AuditError(f"width {width} does not match {path}: its conv1.weight has "
                         f"{found_width} output channels (omit --width to read it from the file)")
    if num_classes < 2:
        raise AuditError(f"{path} has a classifier with {num_classes} output(s); need >= 2 classes")
    model = build_model(arch, num_classes, in_channels, found_width)
    if "fc.mu" in state:  # a class-mean-feature head (illusion.cmf)
        from .cmf import empty_cmf_model
        model = empty_cmf_model(model)
    problem = _mismatch(state, {k: v.shape for k, v in model.state_dict().items()})
    if problem:
        raise AuditError(
            f"{path} does not match architecture {arch!r} (width {found_width}, {in_channels} "
            f"input channels, {num_classes} classes; {tried}): {problem}. Valid "
            f"architectures: {sorted(ARCHITECTURES)} with illusion.models key names "
            f"('conv1.weight', 'stages.0.0.conv1.weight', ..., 'fc.weight'), or --model "
            f"timm:NAME / torchvision:NAME with those libraries' own keys"
            + _hint(state, f"--model {arch}" if given_arch else ""))
    model.load_state_dict(state)
    return model


def _mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> str:
    """'missing keys ...; unexpected keys ...; shape mismatches ...', or '' when they match."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v)}" for k, v in expected.items()
              if k in state and state[k].shape != v]
    problems = [f"missing keys {_examples(missing)}" if missing else "",
                f"unexpected keys {_examples(unexpected)}" if unexpected else "",
                f"shape mismatches (file vs model) {_examples(shapes, 2)}" if shapes else ""]
    return "; ".join(p for p in problems if p)


def outside_model_from_state_dict(state: Mapping[str, torch.Tensor], arch: str,
                                  input_size: int | None = None,
                                  options: Mapping[str, Any] | None = None,
                                  path: str | Path = "checkpoint",
                                  in_channels: int | None = None) -> Adapted:
    """The timm or torchvision model ``arch`` holding ``state``, as an
    :class:`illusion.models.Adapted`. ``state`` has the library's own keys (a
    ``torch.save(model.state_dict())`` of the model timm or torchvision built: ``head.weight``,
    ``fc.weight``, ``classifier.6.weight``, ...), or an adapted model's (``body.*``, ``fc.*``:
    the artifact store's, a CMF head's buffers included). The model is built without
    pretrained weights, with ``options`` (the constructor's keyword arguments, e.g.
    ``{"depth": 2}``) and ``input_size``; its number of classes is read from the classifier's
    weight, a timm model's input channels from the first 4-d weight (its stem or patch
    embedding; ``in_channels``, the data's, where there is none), and the keys load strictly."""
    source = split_arch(arch)[0]
    adapted_keys = (any(k.startswith("body.") for k in state)
                    and all(k.startswith(("body.", "fc.")) for k in state))
    body = {k.removeprefix("body."): v for k, v in state.items()
            if k.startswith("body.")} if adapted_keys else state
    stem = next((v for v in body.values() if v.dim() == 4), None)
    channels = stem.shape[1] if stem is not None else in_channels or 3
    try:
        # 2 classes for now: the classifier is replaced by one of the checkpoint's rows below.
        native = build_native(arch, 2, channels, input_size=input_size, options=options)
    except (ValueError, TypeError, RuntimeError) as error:
        raise AuditError(f"cannot build {_model_flags(arch, input_size, options)[8:]}: "
                         f"{type(error).__name__}: {str(error).splitlines()[0][:300]}") from None
    names = {module: name for name, module in native.named_modules()}
    layout = {k: v.shape for k, v in native.state_dict().items()}
    try:
        model = adapt(native, arch, input_size)
    except ValueError as error:
        raise AuditError(str(error)) from None
    head = names[model.fc]  # the classifier's name in the library's model: "head", "fc", ...
    weight = state.get("fc.weight" if adapted_keys else f"{head}.weight")
    if weight is not None and weight.dim() == 2:
        if weight.shape[0] < 2:
            raise AuditError(f"{path} has a classifier with {weight.shape[0]} output(s); need "
                             f">= 2 classes")
        model.fc = nn.Linear(model.fc.in_features, weight.shape[0],
                             bias=model.fc.bias is not None)
    if adapted_keys and "fc.mu" in state:  # a class-mean-feature head (illusion.cmf)
        from .cmf import empty_cmf_model
        model = empty_cmf_model(model)
    if adapted_keys:
        expected = {k: v.shape for k, v in model.state_dict().items()}
    else:
        expected = layout | {f"{head}.{k}": v.shape for k, v in model.fc.state_dict().items()}
    problem = _mismatch(state, expected)
    if problem:
        given = _model_flags(arch, input_size, options)
        tokens = state.get("pos_embed"), expected.get("pos_embed")
        if None not in tokens and tokens[0].dim() == len(tokens[1]) == 3 and (
                tokens[0].shape[1] != tokens[1][1]):
            problem += "; a ViT's pos_embed fixes its image size: pass --input-size"
        sizes = ([f"{channels} input channels"] if source == "timm" else []) + (
            [f"{model.fc.out_features} classes"] if weight is not None else [])
        sizes.append(f"{source}'s own key names" + (" under body./fc." if adapted_keys else ""))
        raise AuditError(
            f"{path} does not match {arch} ({', '.join(sizes)}; tried "
            f"{given.removeprefix('--model ')}): {problem}" + _hint(state, given))
    if adapted_keys:
        model.load_state_dict(state)
    else:
        fc_keys = {f"{head}.{k}" for k in model.fc.state_dict()}
        # The library's keys that adapting dropped with the classifier load nowhere.
        body_keys = set(model.body.state_dict())
        model.body.load_state_dict({k: v for k, v in state.items() if k in body_keys})
        model.fc.load_state_dict({k.removeprefix(f"{head}."): v for k, v in state.items()
                                  if k in fc_keys})
    return model


def load_checkpoint(path: str | Path, arch: str | None = None, width: int | None = None, *,
                    input_size: int | None = None, options: Mapping[str, Any] | None = None,
                    in_channels: int | None = None) -> tuple[nn.Module, str]:
    """The model stored at ``path`` (CPU, eval mode) and its kind: ``"state_dict"`` or
    ``"torchscript"``. ``arch``: one of our ResNets (default: read from the keys), or
    ``timm:NAME`` / ``torchvision:NAME`` with ``input_size`` and ``options``
    (:func:`outside_model_from_state_dict`; ``in_channels``: the data's, for a timm model
    whose input channels its weights do not show). Raises :class:`AuditError` naming what is
    wrong."""
    path = Path(path)
    return _model_of(_read(path), path, arch, width, input_size, options, in_channels)


def _model_of(obj: Any, path: Path, arch: str | None, width: int | None,
              input_size: int | None, options: Mapping[str, Any] | None,
              in_channels: int | None) -> tuple[nn.Module, str]:
    """:func:`load_checkpoint` of what :func:`_read` read from ``path``."""
    if isinstance(obj, torch.jit.ScriptModule):
        fc = getattr(obj, "fc", None)
        if not hasattr(obj, "features") or fc is None or getattr(fc, "weight", None) is None:
            raise AuditError(f"TorchScript module {path} must expose features(x) and fc (a "
                             f"linear layer with weight); compile it with torch.jit.script "
                             f"(torch.jit.trace keeps only forward)")
        return obj.eval(), "torchscript"
    state = _state_dict(obj, path)
    if arch is not None and split_arch(arch)[0] != "illusion":
        return (outside_model_from_state_dict(state, arch, input_size, options, path,
                                              in_channels).eval(), "state_dict")
    return model_from_state_dict(state, arch, width, path).eval(), "state_dict"


# --------------------------------------------------------------------------------------------
# The audit


@dataclass
class AuditReport:
    """Tidy tables of one audit; ``model`` is ``checkpoint`` or ``retrain`` in each (and
    ``original`` in ``over_unlearning``); ``similarity``'s ``reference`` is ``original`` or
    ``retrain``."""

    meta: dict
    heads: pd.DataFrame       # model, head, split, accuracy, seconds
    geometry: pd.DataFrame    # model, metric, value
    alignment: pd.DataFrame   # model, class, cosine, count, forget
    relearning: pd.DataFrame  # model, attack, step, forget_accuracy, retain_accuracy
    prototype: pd.DataFrame   # model, form, alpha, shots, forget_accuracy, retain_accuracy,
    #                           retain_before
    recovery: pd.DataFrame    # model, attack, auc, keeps_retain
    strongest: pd.DataFrame   # model, attack, auc
    over_unlearning: pd.DataFrame  # model, perturbation, value
    similarity: pd.DataFrame  # model, reference, split, cka

    TABLES = ("heads", "geometry", "alignment", "relearning", "prototype", "recovery",
              "strongest", "over_unlearning", "similarity")

    def to_dict(self) -> dict:
        """Plain JSON types (NaN becomes null)."""
        def records(df: pd.DataFrame) -> list[dict]:
            return df.astype(object).where(df.notna(), None).to_dict("records")
        return {"meta": self.meta, **{name: records(getattr(self, name)) for name in self.TABLES}}

    def save(self, out: str | Path) -> list[Path]:
        from .store import atomic_write_text

        out = Path(out)
        written = [out / "report.json"]
        atomic_write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False, default=str),
                          written[0])
        for name in self.TABLES:
            written.append(out / f"{name}.csv")
            atomic_write_text(getattr(self, name).to_csv(index=False), written[-1])
        return written

    def summary(self) -> str:
        m = self.meta
        model = [m["arch"], *([f"width {m['width']}"] if m.get("width") is not None else []),
                 *([f"{m['input_size']} px"] if m.get("input_size") else []),
                 *(f"{k}={v}" for k, v in sorted((m.get("model_options") or {}).items())),
                 f"{m['num_classes']} classes"]
        lines = [f"Audit of {m['checkpoint']} ({', '.join(model)}) on {m['dataset']} (profile "
                 f"{m['profile']}), forget set {m['forget_set']} {m['forget_names']}, device "
                 f"{m['device']}"]

        def block(title: str, table: pd.DataFrame, index, value: str,
                  digits: int = 2) -> None:
            if table.empty:
                return
            wide = table.pivot_table(index=index, columns="model", values=value, sort=False,
                                     dropna=False)
            lines.extend(["", title,
                          wide.to_string(float_format=lambda v: f"{v:8.{digits}f}")])

        block("Accuracy (%) on test retain / forget", self.heads, ["head", "split"], "accuracy")
        block("Geometry (train features) and MIA efficacy (%)", self.geometry, "metric", "value")
        if not self.recovery.empty:
            # A prototype configuration that breaks the retain classes is marked, not hidden.
            shown = self.recovery.assign(auc=[
                f"{auc:6.2f}" + ("" if keeps else " x")
                for auc, keeps in zip(self.recovery["auc"], self.recovery["keeps_retain"])])
            wide = shown.pivot_table(index="attack", columns="model", values="auc",
                                     aggfunc="first", sort=False)
            probes = m.get("probes", {})
            lines.extend([
                "", f"Recovery (%): fine-tuning attacks, mean forget accuracy over "
                    f"{m['attack_steps']} steps (AUC); prototypes, mean over K = "
                    f"{list(probes.get('prototype_shots', []))} (x: costs more than "
                    f"{m.get('prototype_retain_kept', 0):g} pp of retain accuracy, not counted)",
                wide.fillna("").to_string()])
        if not self.recovery.empty:
            best = {model: f"{attack} {auc:.2f}" for model, attack, auc in
                    self.strongest[["model", "attack", "auc"]].itertuples(index=False)}
            lines.extend(["", "Strongest attack (recovery, %): " + "; ".join(
                f"{model}: {best.get(model, 'none that keeps the retain classes')}"
                for model in self.recovery["model"].unique())])
        if m.get("original"):
            block("Over-unlearning OU@ε (mean JS divergence to the Original's masked softmax, "
                  "at most ln 2)", self.over_unlearning, "perturbation", "value", digits=4)
        else:
            lines.extend(["", "Over-unlearning OU@ε: needs --original (the Original model's "
                              "checkpoint); not measured"])
        block("Linear CKA of penultimate test features with the reference", self.similarity,
              ["reference", "split"], "cka", digits=4)
        if self.similarity.empty:
            lines.extend(["", "Linear CKA: needs --original or --retrain; not measured"])
        return "\n".join(lines)


def _check_budget(attack_steps: int, attack_lr: float, shots: int, seed: int | None) -> None:
    """The relearning budget and seed, each an integer or finite number in its range."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(attack_steps) or attack_steps < 0:
        raise AuditError(f"--attack-steps must be an integer >= 0 (0 skips relearning); got "
                         f"{attack_steps!r}")
    if not isinstance(attack_lr, (int, float)) or not math.isfinite(attack_lr) or attack_lr <= 0:
        raise AuditError(f"--attack-lr must be a finite number > 0; got {attack_lr!r}")
    if not is_int(shots) or shots < 1:
        raise AuditError(f"--shots must be an integer >= 1; got {shots!r}")
    if seed is not None and (not is_int(seed) or not SEED.allows(seed)):
        raise AuditError(f"--seed must be an integer {SEED.text}; got {seed!r}")


def _check_out(out: Path) -> None:
    """``out`` is a folder, or can become one: the report never overwrites a file."""
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise AuditError(f"--out {out}: {existing} is a file, not a folder; give a folder for "
                         f"the report (created when missing; no file is overwritten)")
    if not os.access(existing, os.W_OK):
        raise AuditError(f"--out {out}: folder {existing} is not writable")


# The audit's names of the metrics of :func:`illusion.heads.mia_and_alignment`, in the order
# its geometry table lists them (after the NC metrics).
AUDIT_METRICS = {"alignment_forget": "cos_forget", "alignment_retain": "cos_retain",
                 "mia": "mia_efficacy"}


def _outside_only(arch: str, input_size: int | None, options: Mapping[str, Any]) -> None:
    """No --input-size nor --model-option for ``arch``, one of our ResNets."""
    if input_size is not None or options:
        flag = ("--input-size" if input_size is not None else
                f"--model-option {next(iter(options))}")
        raise AuditError(f"{flag} applies to a 'timm:NAME' or 'torchvision:NAME' --model, not "
                         f"{arch}")


def _checked_model(arch: str | None, model: str | None, width: int | None,
                   input_size: int | None, options: Mapping[str, Any] | None
                   ) -> tuple[str | None, dict[str, Any]]:
    """The architecture of the state dicts (``--model``, or ``--arch`` which names only our
    ResNets; None: read from the keys) and the options of its constructor, checked against
    each other: ``--width`` applies to our ResNets, ``--input-size`` and ``--model-option`` to
    timm's and torchvision's."""
    if arch is not None and model is not None and arch != model:
        raise AuditError(f"--arch {arch} and --model {model} disagree; give one (--arch names "
                         f"only our ResNets, --model any architecture)")
    arch = model if model is not None else arch
    source = None
    if arch is not None:
        try:
            source = split_arch(arch)[0]
        except ValueError as error:
            raise AuditError(f"--model: {error}") from None
    if options is not None and not (isinstance(options, Mapping)
                                    and all(isinstance(k, str) for k in options)):
        raise AuditError(f"model options must be a mapping of keyword arguments to values "
                         f"(--model-option KEY=VALUE), got {options!r}")
    options = dict(options or {})
    if input_size is not None and (not isinstance(input_size, int)
                                   or isinstance(input_size, bool) or input_size < 1):
        raise AuditError(f"--input-size must be an integer >= 1 (pixels a side); got "
                         f"{input_size!r}")
    if source in (None, "illusion"):
        _outside_only(arch or "our ResNets (the default without --model)", input_size, options)
    if source not in (None, "illusion") and width is not None:
        raise AuditError(f"--width applies to our ResNets, not {arch}: its sizes are read from "
                         f"the checkpoint and --model-option")
    reserved = sorted(set(options) & set(READ_FROM_CHECKPOINT))
    if reserved:
        raise AuditError(f"--model-option {reserved[0]}: read from the checkpoint (classes, "
                         f"input channels) or not needed (pretrained weights); leave it out")
    return arch, options


def _checked_settings(dataset: str, profile: str, forget, device: str, attack_steps: int | None,
                      attack_lr: float | None, shots: int | None, seed: int | None
                      ) -> tuple[Profile, ForgetSet, torch.device, dict]:
    """The audit's settings, forget set, device and relearning budget (the profile's
    ``attack`` settings where not given), each checked before anything loads."""
    if dataset not in SOURCES:
        raise AuditError(f"unknown dataset {dataset!r}; valid choices: {sorted(SOURCES)}")
    if profile not in PROFILES:
        raise AuditError(f"unknown profile {profile!r}; valid choices: {sorted(PROFILES)}")
    settings = resolve(profile, {"data.name": dataset})
    attack = settings.attack
    budget = {"steps": attack.steps if attack_steps is None else attack_steps,
              "lr": attack.lr if attack_lr is None else attack_lr,
              "shots": attack.shots if shots is None else shots}
    _check_budget(budget["steps"], budget["lr"], budget["shots"], seed)
    budget |= {"batch_size": attack.batch_size,
               "eval_every": min(attack.eval_every, max(1, budget["steps"]))}
    try:
        forget_set = ForgetSet.parse(forget)
    except SettingError as error:
        raise AuditError(str(error)) from None
    try:
        run_device = resolve_device(device)
        torch.empty(0, device=run_device)
    except (RuntimeError, AssertionError) as error:
        raise AuditError(f"device {device!r} is not usable ({error}); valid choices: 'auto', "
                         f"'cpu', 'cuda', 'cuda:<index>', 'mps'") from None
    return settings, forget_set, run_device, budget


def _load(paths: Mapping[str, Path], arch: str | None, width: int | None,
          input_size: int | None, options: Mapping[str, Any], settings: Profile,
          run_device: torch.device, forget_set: ForgetSet, attack_steps: int, shots: int
          ) -> tuple[dict[str, tuple[nn.Module, str]], Dataset, ForgetSplit]:
    """The checkpoints (each finite), the dataset and its forget split, checked against each
    other: class count, image channels, forget classes, the few-shot and prototype attacks'
    shots, the normalisation over-unlearning perturbs on (with an Original). The files are
    read before the data loads, the models built after (a timm model whose weights do not
    show its input channels takes the data's)."""
    read = {name: _read(p) for name, p in paths.items()}
    dataset = settings.data.name
    try:
        data = load_dataset(settings.data, run_device)
    except DataUnavailable as error:
        raise AuditError(str(error)) from None
    loaded = {name: _model_of(obj, paths[name], arch, width if name == "checkpoint" else None,
                              input_size, options, data.in_channels)
              for name, obj in read.items()}
    del read
    for name, (model, _) in loaded.items():
        try:
            check_finite(model, f"checkpoint {paths[name]}")
        except DivergedError as error:
            raise AuditError(str(error)) from None
    for name, (model, _) in loaded.items():
        k = model.fc.weight.shape[0]
        if k != data.num_classes:
            raise AuditError(f"{paths[name]} has {k} output classes but dataset {dataset!r} has "
                             f"{data.num_classes}; audit it on a dataset with {k} classes")
        conv = getattr(model, "conv1", None)
        # An adapted model repeats grey images over its colour channels (Adapted.prepare).
        channels = (model.in_channels if isinstance(model, Adapted) else
                    conv.in_channels if isinstance(conv, nn.Conv2d) else None)
        if channels is not None and channels != data.in_channels and not (
                isinstance(model, Adapted) and data.in_channels == 1):
            raise AuditError(f"{paths[name]} takes {channels}-channel images but dataset "
                             f"{dataset!r} has {data.in_channels} channel(s)")
    try:
        forget_set.check_classes(data.num_classes, f"dataset {dataset!r}")
    except SettingError as error:
        raise AuditError(str(error)) from None
    split = split_forget(data, forget_set)
    counts = torch.bincount(split.forget_train.y, minlength=data.num_classes)
    fewest = int(counts[list(forget_set.classes)].min())
    if attack_steps and shots > fewest:
        raise AuditError(f"shots={shots} exceeds the {fewest} training images of the smallest "
                         f"forget class; choose shots <= {fewest}")
    most = max(settings.probes.prototype_shots)
    if most > fewest:
        raise AuditError(f"the prototype attack's budget K = {most} (profile "
                         f"{settings.name!r}, probes.prototype_shots) exceeds the {fewest} "
                         f"training images of the smallest forget class; audit on a profile "
                         f"whose budgets are <= {fewest}")
    if "original" in loaded and split.pixels is None:
        raise AuditError(f"over-unlearning (--original) perturbs images on the [0, 1] pixel "
                         f"scale, but dataset {dataset!r} was loaded without its normalisation "
                         f"(Dataset.pixels)")
    return loaded, data, split


def _measure(name: str, model: nn.Module, path: Path, data: Dataset, split: ForgetSplit,
             forget_set: ForgetSet, settings: Profile, seed: int, budget: dict | None,
             stage: Callable[[str], None]) -> dict[str, Any]:
    """Every table of one model, with the library's functions: heads
    (:func:`illusion.heads.evaluate_features`), NC metrics, MIA and alignment
    (:func:`illusion.heads.mia_and_alignment`), the prototypical relearning attack with the
    profile's ``probes`` budgets (:func:`illusion.attacks.prototype_attack`) and, with a
    ``budget`` (the keyword arguments of :func:`illusion.attacks.run_attacks`), the curves of
    every attack (its default ``names``, the fresh-head attacks included). Its raw features
    come back as ``"features"`` (for :func:`_compare`). ``stage(name)`` announces each stage
    (to the progress bar)."""
    from .attacks import prototype_attack, prototype_recovery, recovery_table, run_attacks
    from .geometry import nc_metrics
    from .heads import (evaluate_features, features, head_geometry, mia_and_alignment,
                        train_augmentation)
    from .results import labelled

    stage("features")
    try:
        # The book's protocol (Experiment.features): the whole training set, augmented once
        # where the profile says so, then in the head's own geometry.
        raw = features(model, data.whole_train, data.test,
                       train_augmentation=train_augmentation(settings))
        feats = head_geometry(model, raw)
    except RuntimeError as error:
        raise AuditError(f"{path} cannot process images of {settings.data.name!r} of shape "
                         f"{tuple(data.train.x.shape[1:])}: {str(error).splitlines()[0]}") from None
    stage("heads")
    measured = {"heads": labelled(evaluate_features(feats, forget_set, settings.heads), model=name)}
    stage("geometry")
    W = model.fc.weight.detach().float()
    b = getattr(model.fc, "bias", None)
    geometry = nc_metrics(feats.train, feats.train_y, W, None if b is None else b.detach().float())
    values, cosines = mia_and_alignment(feats, W, forget_set.classes, seed)
    geometry |= {AUDIT_METRICS[k]: values[k] for k in AUDIT_METRICS}
    measured["geometry"] = [{"model": name, "metric": k, "value": v} for k, v in geometry.items()]
    measured["alignment"] = labelled(cosines, model=name)
    recovery = []
    if budget:
        stage("relearning")
        # The head-only attacks read these same features, as the book's relearning does.
        curve = run_attacks(model, split, seed=seed, train=data.whole_train, features=raw,
                            **budget)
        measured["relearning"] = labelled(curve, model=name)
        recovery.append(labelled(recovery_table(curve, by=("attack",)), model=name)
                        .assign(keeps_retain=True))
    stage("prototypes")
    # Training-free, so it runs whatever the fine-tuning budget (chapter 7's protocol).
    probes = settings.probes
    table = labelled(prototype_attack(model, split, shots=list(probes.prototype_shots),
                                      alphas=list(probes.prototype_alphas),
                                      draws=probes.prototype_draws, seed=seed, features=raw),
                     model=name)
    measured["prototype"] = table
    recovery.append(prototype_recovery(table, by=("model",)))
    measured["recovery"] = pd.concat(recovery, ignore_index=True)
    measured["features"] = raw
    return measured


def _compare(loaded: Mapping[str, tuple[nn.Module, str]], features: Mapping[str, Any],
             data: Dataset, split: ForgetSplit, forget_set: ForgetSet, settings: Profile,
             seed: int, device: torch.device,
             stage: Callable[[str], None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The probes that compare the audited models with the Original and the Retrain, as the
    book's chapter 7 computes them: OU@ε (:mod:`illusion.over_unlearning`; with an Original)
    of every model, the Original's own included, and the linear CKA
    (:func:`illusion.similarity.linear_cka`) of each audited model's raw penultimate test
    features (``features``: name -> :class:`~illusion.heads.Features` of :func:`_measure`)
    with the Original's and the Retrain's, on test retain and test forget."""
    from .heads import extract
    from .over_unlearning import over_unlearning, perturb, references
    from .similarity import linear_cka

    ou = pd.DataFrame(columns=["model", "perturbation", "value"])
    tests = {name: f.test for name, f in features.items()}
    if "original" in loaded:
        original = loaded["original"][0].to(device).eval()
        stage("original: over-unlearning")
        probes = settings.probes
        try:
            images = perturb(original, split.forget_train, split.pixels,
                             epsilon=probes.ou_epsilon, step=probes.ou_step,
                             steps=probes.ou_steps, sigma=probes.ou_sigma, seed=seed)
            refs = references(original, images, forget_set.classes)
            rows = [{"model": name, "perturbation": kind, "value": value}
                    for name, (model, _) in loaded.items()
                    for kind, value in over_unlearning(model.to(device).eval(), images,
                                                       refs).items()]
            # The Original's test features, extracted once, as Experiment.features does.
            tests["original"] = extract(original, data.test)[0]
        except ValueError as error:  # a model whose outputs are not finite there
            raise AuditError(str(error)) from None
        except RuntimeError as error:
            raise AuditError(f"the Original cannot process images of "
                             f"{settings.data.name!r} of shape "
                             f"{tuple(data.test.x.shape[1:])}: {str(error).splitlines()[0]}"
                             ) from None
        ou = pd.DataFrame(rows, columns=ou.columns)
    stage("similarity")
    test_y = data.test.y
    is_forget = torch.isin(test_y, torch.tensor(forget_set.classes, device=test_y.device))
    rows = [{"model": name, "reference": reference, "split": part,
             "cka": linear_cka(tests[name][mask], tests[reference][mask])}
            for name in features for reference in ("original", "retrain")
            if reference in tests and reference != name
            for part, mask in (("retain", ~is_forget), ("forget", is_forget))]
    return ou, pd.DataFrame(rows, columns=["model", "reference", "split", "cka"])


def _report(meta: dict, measured: list[dict[str, Any]], over_unlearning: pd.DataFrame,
            similarity: pd.DataFrame) -> AuditReport:
    """The tables of every model (:func:`_measure`) stacked into one report, with each model's
    strongest attack (:func:`illusion.attacks.strongest`) and the comparisons of
    :func:`_compare`."""
    from .attacks import strongest

    def stacked(table: str, columns: list[str]) -> pd.DataFrame:
        parts = [m[table] for m in measured if table in m]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    recovery = stacked("recovery", ["model", "attack", "auc", "keeps_retain"])
    return AuditReport(
        meta, stacked("heads", ["model", "head", "split", "accuracy", "seconds"]),
        pd.DataFrame([row for m in measured for row in m["geometry"]],
                     columns=["model", "metric", "value"]),
        stacked("alignment", ["model", "class", "cosine", "count", "forget"]),
        stacked("relearning", ["model", "attack", "step", "forget_accuracy", "retain_accuracy"]),
        stacked("prototype", ["model", "form", "alpha", "shots", "forget_accuracy",
                              "retain_accuracy", "retain_before"]),
        recovery, strongest(recovery, by=("model",)), over_unlearning, similarity)


def audit(checkpoint: str | Path, dataset: str, forget, arch: str | None = None,
          width: int | None = None, profile: str = "default", retrain: str | Path | None = None,
          attack_steps: int | None = None, attack_lr: float | None = None,
          shots: int | None = None, device: str = "auto", seed: int | None = None,
          original: str | Path | None = None, progress: bool = True, model: str | None = None,
          input_size: int | None = None, model_options: Mapping[str, Any] | None = None
          ) -> AuditReport:
    """Audit the model at ``checkpoint`` (and ``retrain``) on ``dataset`` for ``forget``
    (a class id, ``"2-4-6"`` or a list), measured as the book measures on ``profile``: its
    data subset, head settings, feature augmentation, relearning budget (``attack_steps``,
    ``attack_lr`` and ``shots`` override the budget's; ``attack_steps=0`` skips the
    fine-tuning attacks) and probe settings (``probes``: prototype budgets, OU@ε's
    perturbations). ``original``, the Original model's checkpoint (loaded and checked like
    ``retrain``), enables OU@ε and the CKA with the Original. ``model``: the architecture of
    every state dict, one of our ResNets (as ``arch``; default: read from the keys) or
    ``timm:NAME`` / ``torchvision:NAME``, built with ``input_size`` and ``model_options``
    (the constructor's keyword arguments) and loaded with that library's own keys
    (:func:`load_checkpoint`)."""
    from .attacks import PROTOTYPE_RETAIN_KEPT

    arch, model_options = _checked_model(arch, model, width, input_size, model_options)
    settings, forget_set, run_device, budget = _checked_settings(
        dataset, profile, forget, device, attack_steps, attack_lr, shots, seed)
    seed = settings.seed if seed is None else seed
    paths = {"checkpoint": Path(checkpoint)}
    if retrain is not None:
        paths["retrain"] = Path(retrain)
    if original is not None:
        paths["original"] = Path(original)
    loaded, data, split = _load(paths, arch, width, input_size, model_options, settings,
                                run_device, forget_set, budget["steps"], budget["shots"])
    budget = budget if budget["steps"] else None

    audited = [name for name in loaded if name != "original"]  # the Original is a reference
    bar = tqdm(total=len(audited) + 1, desc="audit", file=sys.stderr, disable=not progress,
               leave=False)
    measured = []
    for name in audited:
        model = loaded[name][0]
        measured.append(_measure(name, model.to(run_device).eval(), paths[name], data, split,
                                 forget_set, settings, seed, budget,
                                 lambda stage, name=name: bar.set_postfix_str(f"{name}: {stage}")))
        bar.update()
    features = {name: m.pop("features") for name, m in zip(audited, measured)}
    over_unlearning, similarity = _compare(loaded, features, data, split, forget_set, settings,
                                           seed, run_device, bar.set_postfix_str)
    bar.update()
    bar.close()

    m0, kind = loaded["checkpoint"]
    conv = getattr(m0, "conv1", None)
    meta = {
        "checkpoint": str(paths["checkpoint"]), "checkpoint_kind": kind,
        "retrain": str(paths["retrain"]) if "retrain" in paths else None,
        "original": str(paths["original"]) if "original" in paths else None,
        "arch": getattr(m0, "arch", arch or "torchscript"),
        "width": conv.out_channels if isinstance(conv, nn.Conv2d) else width,
        "input_size": getattr(m0, "input_size", None), "model_options": model_options,
        "num_classes": data.num_classes, "dataset": dataset, "profile": profile,
        "forget_set": forget_set.name,
        "forget_names": [data.classes[c] for c in forget_set.classes],
        "device": str(run_device), "seed": seed,
        "attack_steps": budget["steps"] if budget else 0,
        "attack_lr": budget["lr"] if budget else None,
        "shots": budget["shots"] if budget else None,
        "probes": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in dataclasses.asdict(settings.probes).items()},
        "prototype_retain_kept": PROTOTYPE_RETAIN_KEPT, "torch": torch.__version__,
    }
    return _report(meta, measured, over_unlearning, similarity)


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="illusion", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = commands.add_parser(
        "audit", help="representation-level report of a checkpoint",
        description="Output/LP/NCC accuracy, alignment, NC metrics, MIA, relearning (fine-"
                    "tuning, fresh-head and prototype attacks, the strongest of them), "
                    "over-unlearning OU@ε (with --original) and CKA with the Original and the "
                    "Retrain of a checkpoint (and of a Retrain checkpoint), printed and saved "
                    "as JSON + CSV.")
    # Every default is None here so that --config values can fill what the command line left
    # out; the real defaults are in DEFAULTS (and shown in the help).
    a.add_argument("--config", metavar="FILE.json",
                   help="JSON object with any of the keys below (dashes or underscores); "
                        "relative paths are relative to the file; the command line wins")
    a.add_argument("--checkpoint", metavar="PATH", help="state dict or TorchScript module")
    a.add_argument("--dataset", choices=sorted(SOURCES), help="dataset the model was trained on")
    a.add_argument("--forget", metavar="CLASSES", help="forget class(es): '3' or '2-4-6'")
    a.add_argument("--model", metavar="ARCH",
                   help="architecture of the state dicts: resnet10|resnet18|resnet50 (ours; "
                        "default: read from the keys), timm:NAME or torchvision:NAME (a state "
                        "dict with that library's own keys, e.g. timm:vit_tiny_patch16_224)")
    a.add_argument("--input-size", type=int, dest="input_size", metavar="N",
                   help="with a timm/torchvision --model: images are resized to N pixels a side "
                        "(and a ViT is built for them)")
    a.add_argument("--model-option", action="append", dest="model_options",
                   metavar="KEY=VALUE",
                   help="with a timm/torchvision --model: a keyword argument of its "
                        "constructor, the value read as JSON when it parses (e.g. depth=2); "
                        "repeatable")
    a.add_argument("--arch", choices=sorted(ARCHITECTURES),
                   help="our ResNet's architecture (the same as --model for them)")
    a.add_argument("--width", type=int,
                   help="first-stage width of our ResNet (default: read from conv1.weight)")
    a.add_argument("--profile", choices=sorted(PROFILES),
                   help=f"data subset, head settings and relearning budget, measured as the "
                        f"book measures on it (default: {DEFAULTS['profile']})")
    a.add_argument("--retrain", metavar="PATH", help="Retrain checkpoint to compare against")
    a.add_argument("--original", metavar="PATH",
                   help="Original checkpoint (the model before unlearning): enables "
                        "over-unlearning OU@ε and the CKA with the Original")
    a.add_argument("--out", metavar="DIR", help=f"output folder (default: {DEFAULTS['out']})")
    a.add_argument("--attack-steps", type=int, dest="attack_steps",
                   help="relearning budget in steps, 0 to skip the fine-tuning attacks (the "
                        "training-free prototype attack still runs; default: the profile's "
                        "attack.steps)")
    a.add_argument("--attack-lr", type=float, dest="attack_lr",
                   help="relearning learning rate (default: the profile's attack.lr)")
    a.add_argument("--shots", type=int,
                   help="forget images per class of the few-shot attack (default: the profile's "
                        "attack.shots)")
    a.add_argument("--device", help=f"'auto', 'cpu', 'cuda', ... (default: {DEFAULTS['device']})")
    a.add_argument("--seed", type=int, help="seed of the attacks and MIA (default: the profile's)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")

    e = commands.add_parser(
        "evaluate", help="does an unlearning method create the illusion of unlearning?",
        description="Run one unlearning method (built-in, an entry point of group "
                    "'illusion.methods', or module:function) in full, classifier-only and under "
                    "CMF, and print and save its rows of Tables 1-3 (output / LP / NCC accuracy, "
                    "with Original and Retrain), its relearning AUCs and the verdict on each claim.")
    e.add_argument("--method", required=True, metavar="NAME|MODULE:FUNCTION",
                   help="a registered method, an entry point of group 'illusion.methods', or a "
                        "path like mypkg.mymod:my_unlearn")
    e.add_argument("--profile", default="default", choices=sorted(PROFILES),
                   help="settings and data (default: default)")
    e.add_argument("--forget-sets", nargs="+", dest="forget_sets", metavar="CLASSES",
                   help="forget sets like 6 or 2-4-6 (default: the profile's)")
    e.add_argument("--set", action="append", default=[], dest="settings", metavar="KEY=VALUE",
                   help="a setting override, the value read as JSON when it parses "
                        "(e.g. methods.my_unlearn.lr=1e-3, attack.steps=50); repeatable")
    e.add_argument("--out", metavar="DIR",
                   help="output folder (default: illusion-evaluate/<method name>)")
    e.add_argument("--device", help="'auto', 'cpu', 'cuda', ... (default: the profile's)")
    e.add_argument("--model", metavar="ARCH",
                   help="the architecture to evaluate the method on, instead of the profile's: "
                        "resnet10|resnet18|resnet50, timm:NAME or torchvision:NAME (the same as "
                        "--set model.arch=ARCH)")
    e.add_argument("--input-size", type=int, dest="input_size", metavar="N",
                   help="images resized to N pixels a side for a timm/torchvision model (--set "
                        "model.input_size=N)")
    e.add_argument("--model-option", action="append", default=[], dest="model_options",
                   metavar="KEY=VALUE",
                   help="a keyword argument of the timm/torchvision constructor, e.g. depth=2 "
                        "(--set model.options.KEY=VALUE); repeatable")

    r = commands.add_parser(
        "run", help="compute every model and table the book reads, here or on a Ray cluster",
        description="Plan every model and table the chapters read on a profile as a dependency "
                    "graph and compute what the artifact store lacks ($ILLUSION_CACHE; with "
                    "Ray, a folder every worker sees at the same path); the chapters then only "
                    "read it.")
    r.add_argument("--profile", default="default", choices=sorted(PROFILES),
                   help="settings and data (default: default)")
    r.add_argument("--set", action="append", default=[], dest="settings", metavar="KEY=VALUE",
                   help="a setting override, the value read as JSON when it parses (seed=1235 "
                        "for the book of 'make book SEED=1235'); repeatable")
    r.add_argument("--overrides", type=Path, default=None, metavar="FILE",
                   help="a JSON object of settings to override (tests/tiny.json), before --set")
    r.add_argument("--executor", default="serial",
                   help="'serial' (this process, node after node; default), 'processes' "
                        "(single-threaded processes of this machine, one per core or --jobs) "
                        "or 'ray' (a Ray task per node)")
    r.add_argument("--jobs", type=int, default=None,
                   help="processes of the 'processes' executor (default: one per core)")
    r.add_argument("--address", metavar="HOST:PORT",
                   help="an existing Ray cluster (default: a new local one)")
    return parser


def _overrides(pairs: Sequence[str], flag: str = "--set",
               example: str = "methods.rl.lr=1e-3") -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as overrides; a value is JSON when it parses, else a string."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AuditError(f"{flag} {pair!r}: write KEY=VALUE, like {example}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _model_settings(model: str | None, input_size: int | None, pairs: Sequence[str],
                    overrides: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """``illusion evaluate``'s ``--model``, ``--input-size`` and ``--model-option`` as the
    settings they stand for (``model.arch``, ``model.input_size``, ``model.options.KEY``).
    A timm or torchvision model so chosen (or by ``--set model.*``) is built once, untrained,
    so that a wrong name or option ends here, before anything is computed."""
    from .config import get_profile

    options = _overrides(pairs, "--model-option", "depth=2")
    settings: dict[str, Any] = {}
    if model is not None:
        if overrides.get("model.arch", model) != model:
            raise AuditError(f"--model {model} and --set model.arch={overrides['model.arch']} "
                             f"disagree; give one")
        try:
            split_arch(model)
        except ValueError as error:
            raise AuditError(f"--model: {error}") from None
        settings["model.arch"] = model
    if input_size is not None:
        if input_size < 1:
            raise AuditError(f"--input-size must be an integer >= 1 (pixels a side); got "
                             f"{input_size}")
        settings["model.input_size"] = input_size
    settings |= {f"model.options.{k}": v for k, v in options.items()}
    given = {**overrides, **settings}
    if not any(k == "model" or k.startswith("model.") for k in given):
        return settings
    base = get_profile(profile).model
    arch = given.get("model.arch", base.arch)
    try:
        source = split_arch(arch)[0]
    except (ValueError, AttributeError):
        return settings  # not a name: the profile's own validation says so
    if source == "illusion":
        _outside_only(arch if "model.arch" in given else f"{arch} (the profile's)",
                      input_size, options)
        return settings
    reserved = sorted(set(options) & {"num_classes", "in_chans", "pretrained", "weights"})
    if reserved:
        raise AuditError(f"--model-option {reserved[0]}: set by the data (classes, input "
                         f"channels) or by --set model.pretrained=true; leave it out")
    every = given.get("model.options", base.options)
    every = {**(every if isinstance(every, Mapping) else {}),
             **{k.removeprefix("model.options."): v for k, v in given.items()
                if k.startswith("model.options.")}}
    size = given.get("model.input_size", base.input_size)
    try:
        build_native(arch, 10, 3, input_size=size if isinstance(size, int) else None,
                     options=every)
    except (ValueError, TypeError, RuntimeError) as error:
        raise AuditError(f"cannot build {arch} with options {every}: {type(error).__name__}: "
                         f"{str(error).splitlines()[0][:300]}") from None
    return settings


def evaluate_command(args: argparse.Namespace) -> int:
    """``illusion evaluate``: every input checked before anything runs (exit 2), the report
    written only when all of it is computed."""
    from .evaluation import EvaluateError, evaluate_method
    from .outside import MethodError, OutsideMethodError, load
    from .unlearn import InputChangedError

    bad_input = (AuditError, EvaluateError, MethodError, SettingError, DataUnavailable)
    try:
        overrides = _overrides(args.settings)
        overrides |= _model_settings(args.model, args.input_size, args.model_options,
                                     overrides, args.profile)
        name = load(args.method)
        out = Path(args.out or Path("illusion-evaluate") / name)
        _check_out(out)
        report = evaluate_method(args.method, args.profile, args.forget_sets, overrides,
                                 device=args.device)
    except bad_input as error:
        print(f"illusion evaluate: error: {error}", file=sys.stderr)
        return 2
    except (OutsideMethodError, DivergedError, InputChangedError) as error:
        print(f"illusion evaluate: error: {error}. No report was written.", file=sys.stderr)
        return 1
    files = report.save(out)
    print(report.summary())
    print("\nSaved: " + ", ".join(str(f) for f in files))
    for variant, error in report.meta["failed"].items():
        print(f"illusion evaluate: error: the {variant} variant failed, the report leaves it "
              f"out: {error}", file=sys.stderr)
    return 1 if report.meta["failed"] else 0


def run_command(args: argparse.Namespace) -> int:
    """``illusion run``: bad input ends with status 2 before anything is computed."""
    from .plan import PlanError, run

    try:
        if args.jobs is not None and (args.jobs < 1 or args.executor != "processes"):
            raise AuditError(f"--jobs {args.jobs}: give an integer >= 1, with --executor "
                             f"processes (got --executor {args.executor})")
        overrides = read_overrides(args.overrides) if args.overrides else {}
        overrides |= _overrides(args.settings)
        summary = run(args.profile, overrides, args.executor, args.address,
                      progress=lambda line: print(line, flush=True), jobs=args.jobs)
    except (AuditError, PlanError, SettingError, DataUnavailable,
            PretrainedWeightsMissing) as error:
        print(f"illusion run: error: {error}", file=sys.stderr)
        return 2
    except DivergedError as error:
        print(f"illusion run: error: {error}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _number(key: str, value: Any, path: Path) -> int | float:
    """A number of a config file, as the command line would read it: ``5.7`` or ``true`` is no
    step count."""
    kind = NUMBERS[key.replace("-", "_")]
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise TypeError(value)  # int() would read them as 5 and 1
        return kind(value)
    except (TypeError, ValueError):
        raise AuditError(f"{key!r} in {path} must be {'an integer' if kind is int else 'a number'}, "
                         f"got {value!r}") from None


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Command line over --config over DEFAULTS, validated."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if "model_options" in given:  # --model-option KEY=VALUE, repeated
        given["model_options"] = _overrides(given["model_options"], "--model-option", "depth=2")
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise AuditError(f"config file not found: {path}")
        try:
            config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AuditError(f"config file {path} is not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise AuditError(f"config file {path} must hold a JSON object, not {type(config).__name__}")
        for key, value in config.items():
            name = key.replace("-", "_")
            if name not in DEFAULTS:
                raise AuditError(f"unknown key {key!r} in {path}; valid choices: {sorted(DEFAULTS)}")
            if name in PATH_KEYS and value is not None:
                value = str(path.parent / value)  # an absolute value stays as it is
            if name in NUMBERS and value is not None:
                value = _number(key, value, path)
            given.setdefault(name, value)
    settings = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    missing = [k for k in REQUIRED if settings[k] is None]
    if missing:
        raise AuditError("missing " + ", ".join(f"--{k}" for k in missing)
                         + " (give them on the command line or in --config)")
    choices = {"dataset": SOURCES, "profile": PROFILES, "arch": ARCHITECTURES}
    for key, valid in choices.items():
        if settings[key] is not None and settings[key] not in valid:
            raise AuditError(f"unknown {key} {settings[key]!r}; valid choices: {sorted(valid)}")
    _check_out(Path(settings["out"]))
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``illusion`` command; returns the exit status (2 on bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's own errors (status 2) and --help (0)
        return int(exit_.code or 0)
    if args.command == "evaluate":
        return evaluate_command(args)
    if args.command == "run":
        return run_command(args)
    try:
        settings = _settings(args)
        out = settings.pop("out")
        report = audit(**settings, progress=not args.quiet)
    except (AuditError, DivergedError) as error:  # a diverged attack: a relearning LR too large
        print(f"illusion {args.command}: error: {error}", file=sys.stderr)
        return 2
    files = report.save(out)
    print(report.summary())
    print("\nSaved: " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
