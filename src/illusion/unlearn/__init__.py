"""Unlearning methods, one function per file, found through a registry by name.

Every method has one signature::

    method(model, split, cfg, ctx) -> model

``model`` starts as a copy of the Original model (``features``/``fc`` convention), ``split`` is
the :class:`~illusion.data.ForgetSplit` (D_f, D_r, ...), ``cfg`` the method's
:class:`~illusion.config.MethodConfig`, and ``ctx`` a :class:`Context` through which the
method asks which parameters to train, how to put the model in training mode, and which hooks
to call. Wrappers (classifier-only, CMF) change the context, never a method's code.
:func:`unlearn` runs a method by name and measures its wall time (the paper's RTE).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import MethodConfig, SettingError
from ..data import ForgetSplit

Hook = Callable[[nn.Module, int], None]


def _all_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(model.parameters())


def _train_mode(model: nn.Module) -> None:
    model.train()


def _no_hook(model: nn.Module, index: int) -> None:
    pass


@dataclass
class Context:
    """How a method trains: what a wrapper may change without touching the method."""

    seed: int = 1234
    parameters: Callable[[nn.Module], list[nn.Parameter]] = _all_parameters
    train_mode: Callable[[nn.Module], None] = _train_mode
    on_epoch_start: Hook = _no_hook       # CMF recomputes its class-mean classifier here
    on_epoch_end: Hook = _no_hook
    on_step: Hook = _no_hook              # called after every optimiser step (curves)
    crop_padding: int = 0                 # augmentation of image batches; off for features
    flip: bool = False
    # The frozen model distillation methods (SCRUB) imitate; None: a copy of the starting
    # model. Classifier-only sets it to the Original, since its starting model has a zeroed fc.
    teacher: nn.Module | None = None
    generator: torch.Generator = field(init=False)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)


Method = Callable[[nn.Module, ForgetSplit, MethodConfig, Context], nn.Module]

# The paper's seven baselines and two standard methods beyond its tables, in the book's order.
BASELINES = ("retain_ft", "rl", "salun", "neggrad_plus", "scrub", "unsir", "svd", "ga", "l1_sparse")
# Training-free methods that only edit the last layer: classifier-only runs add nothing.
CLASSIFIER_EDITS = ("svd", "prune")
METHODS: dict[str, Method] = {}
# The options each method reads from its MethodConfig, besides those of the shared training
# loop (``_loop.run_epochs``), which every method accepts.
OPTIONS: dict[str, tuple[str, ...]] = {}
LOOP_OPTIONS = ("weight_decay", "clip", "lr_decay_epochs", "lr_decay_factor")


def register(name: str, options: tuple[str, ...] = ()) -> Callable[[Method], Method]:
    """Register ``fn`` as method ``name``, reading the method-specific ``options``."""
    def add(fn: Method) -> Method:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = fn
        OPTIONS[name] = tuple(options)
        fn.method_name = name
        return fn
    return add


def check_options(name: str, cfg: MethodConfig, setting: str, extra: tuple[str, ...] = ()) -> None:
    """Refuse an option that method ``name`` does not read (a typo would silently do nothing);
    ``setting`` names the settings in the error, ``extra`` are options a wrapper reads."""
    known = set(OPTIONS.get(name, ())) | set(LOOP_OPTIONS) | set(extra)
    unknown = sorted(set(cfg.options) - known)
    if unknown:
        raise SettingError(f"setting '{setting}.options' has unknown option(s) {unknown} for "
                           f"method {name!r}; valid choices: {sorted(known)}")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown unlearning method {name!r}; valid choices: {sorted(METHODS)}")
    return METHODS[name]


def unlearn(name: str, model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
            ctx: Context | None = None) -> tuple[nn.Module, float]:
    """Run method ``name`` on a deep copy of ``model``; return (unlearned model, seconds)."""
    method = get_method(name)
    ctx = ctx or Context()
    torch.manual_seed(ctx.seed)
    model = copy.deepcopy(model)
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model = method(model, split, cfg, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model.eval(), time.perf_counter() - start


# Importing the method modules registers them.
from . import (  # noqa: E402,F401
    ga, l1_sparse, neggrad_plus, prune, retain_ft, rl, salun, scrub, svd, unsir,
)
