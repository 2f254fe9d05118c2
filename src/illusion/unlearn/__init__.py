"""Unlearning methods, one function per file, found through a registry by name.

Every method has one signature::

    method(model, split, cfg, ctx) -> model

``model`` starts as a copy of the Original model (``features``/``fc`` convention), ``split`` is
the :class:`~illusion.data.ForgetSplit` (D_f, D_r, ...), ``cfg`` the method's
:class:`~illusion.config.MethodConfig`, and ``ctx`` a :class:`Context` through which the
method asks which parameters to train, how to put the model in training mode, and which hooks
to call. Wrappers (classifier-only, CMF) change the context, never a method's code.
:func:`unlearn` runs a method by name and measures its wall time (the paper's RTE).

A method's traits are declared where it is registered, and nowhere else::

    @register("svd", baseline=True, edits_classifier=True, options=("alpha_r", "alpha_f"))

``BASELINES``, ``CLASSIFIER_EDITS``, ``OPTIONS`` (and ``classifier_only.IMAGE_ONLY``) are read
from the registry (:func:`having`, :func:`traits`).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import MethodConfig, SettingError
from ..data import ForgetSplit, Split
from ..device import synchronize

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

METHODS: dict[str, Method] = {}
# The options of the shared training loop (``_loop.run_epochs``), which every method accepts.
LOOP_OPTIONS = ("weight_decay", "clip", "lr_decay_epochs", "lr_decay_factor")


@dataclass(frozen=True)
class Traits:
    """What the library knows of a method besides its code, declared where it is registered
    (:func:`register`); every list of methods with a trait is derived from these."""

    # One of the book's baselines (the paper's seven and two standard methods beyond its
    # tables): the methods every chapter runs, in registration order.
    baseline: bool = False
    # Training-free, edits only the last layer: a classifier-only run would add nothing.
    edits_classifier: bool = False
    # Its loss needs images, not features (UNSIR learns noise in input space): its
    # classifier-only runs cannot use the cached-features protocol.
    image_only: bool = False
    # Built against an attack beyond the paper (Spotter, against the prototypical attack): the
    # book runs it in full in Table 1 and in its 'Beyond the paper' chapter, not among the
    # paper's baselines.
    defence: bool = False
    # The options it reads from its MethodConfig, besides ``LOOP_OPTIONS``.
    options: tuple[str, ...] = ()


def register(name: str, *, baseline: bool = False, edits_classifier: bool = False,
             image_only: bool = False, defence: bool = False,
             options: tuple[str, ...] = ()) -> Callable[[Method], Method]:
    """Register ``fn`` as method ``name`` with its :class:`Traits` (``fn.traits``)."""
    def add(fn: Method) -> Method:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        METHODS[name] = fn
        fn.method_name = name
        fn.traits = Traits(baseline, edits_classifier, image_only, defence, tuple(options))
        return fn
    return add


def traits(name: str) -> Traits:
    """The traits method ``name`` was registered with."""
    return getattr(get_method(name), "traits", Traits())


def having(trait: str) -> tuple[str, ...]:
    """The registered methods with ``trait`` (a :class:`Traits` flag), in registration order."""
    if trait not in {f.name for f in dataclasses.fields(Traits)} - {"options"}:
        raise ValueError(f"unknown method trait {trait!r}; valid choices: "
                         f"{[f.name for f in dataclasses.fields(Traits) if f.name != 'options']}")
    return tuple(name for name in METHODS if getattr(traits(name), trait))


# Lists derived from the registry on every read (PEP 562), so they cannot disagree with it:
# ``BASELINES`` (the book's baselines in the book's order), ``CLASSIFIER_EDITS`` (training-free
# methods that only edit the last layer), ``OPTIONS`` ({method: options it reads}).
_DERIVED = {
    "BASELINES": lambda: having("baseline"),
    "CLASSIFIER_EDITS": lambda: having("edits_classifier"),
    "OPTIONS": lambda: {name: traits(name).options for name in METHODS},
}


def __getattr__(name: str):
    if name in _DERIVED:
        return _DERIVED[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_options(name: str, cfg: MethodConfig, setting: str, extra: tuple[str, ...] = ()) -> None:
    """Refuse an option that method ``name`` does not read (a typo would silently do nothing);
    ``setting`` names the settings in the error, ``extra`` are options a wrapper reads."""
    own = traits(name).options if name in METHODS else ()
    known = set(own) | set(LOOP_OPTIONS) | set(extra)
    unknown = sorted(set(cfg.options) - known)
    if unknown:
        raise SettingError(f"setting '{setting}.options' has unknown option(s) {unknown} for "
                           f"method {name!r}; valid choices: {sorted(known)}")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown unlearning method {name!r}; valid choices: {sorted(METHODS)}")
    return METHODS[name]


class InputChangedError(RuntimeError):
    """A method wrote into data it was lent: its split, its settings or its teacher model.
    Those are shared with every later run, so the run is refused and nothing is stored."""


def _lent(split: ForgetSplit, cfg: MethodConfig, ctx: Context):
    """Copies of what a run reads but must not change (every part of ``split``, the options
    of ``cfg``, ``ctx.teacher``): the method gets the copies, the originals stay untouched."""
    parts = {f.name: getattr(split, f.name) for f in dataclasses.fields(split)}
    split_copy = dataclasses.replace(split, **{
        name: Split(part.x.clone(), part.y.clone()) for name, part in parts.items()
        if isinstance(part, Split)})
    cfg_copy = dataclasses.replace(cfg, options=copy.deepcopy(dict(cfg.options)))
    ctx_copy = dataclasses.replace(ctx, teacher=copy.deepcopy(ctx.teacher))
    ctx_copy.generator = ctx.generator  # the run's random stream, shared with its caller
    return split_copy, cfg_copy, ctx_copy


def _changed(split: ForgetSplit, lent: ForgetSplit, cfg: MethodConfig, lent_cfg: MethodConfig,
             ctx: Context, lent_ctx: Context) -> list[str]:
    """What the method changed of what it was lent (by value, bitwise)."""
    changed = []
    for f in dataclasses.fields(split):
        part, copy_ = getattr(split, f.name), getattr(lent, f.name)
        if isinstance(part, Split) and not (  # torch.equal: same shape and values
                isinstance(copy_, Split) and torch.equal(copy_.x, part.x)
                and torch.equal(copy_.y, part.y)):
            changed.append(f"split.{f.name}")
    if lent_cfg != cfg:
        changed.append("cfg")
    if ctx.teacher is not None:
        before, after = ctx.teacher.state_dict(), lent_ctx.teacher.state_dict()
        if before.keys() != after.keys() or not all(
                torch.equal(before[k], after[k]) for k in before):
            changed.append("ctx.teacher")
    return changed


def unlearn(name: str, model: nn.Module, split: ForgetSplit, cfg: MethodConfig,
            ctx: Context | None = None) -> tuple[nn.Module, float]:
    """Run method ``name`` on a deep copy of ``model``; return (unlearned model, seconds).

    The method gets copies of its split, settings and teacher, compared with the originals
    after the run: a method that wrote into them (in place, or by replacing a part) raises
    :class:`InputChangedError`, and the data every later run reads stays as it was."""
    method = get_method(name)
    ctx = ctx or Context()
    torch.manual_seed(ctx.seed)
    model = copy.deepcopy(model)
    lent_split, lent_cfg, lent_ctx = _lent(split, cfg, ctx)
    device = next(model.parameters()).device
    synchronize(device)
    start = time.perf_counter()
    model = method(model, lent_split, lent_cfg, lent_ctx)
    synchronize(device)
    seconds = time.perf_counter() - start
    changed = _changed(split, lent_split, cfg, lent_cfg, ctx, lent_ctx)
    if changed:
        raise InputChangedError(
            f"method {name!r} changed what it was lent: {', '.join(changed)} (forget set "
            f"{split.forget_set}); a method must not write into its inputs, which every later "
            f"run shares. Nothing was stored.")
    return model.eval(), seconds


# Importing the method modules registers them, in this order: the book's (BASELINES keeps it).
from . import (  # noqa: E402,F401,I001
    retain_ft, rl, salun, neggrad_plus, scrub, unsir, svd, ga, l1_sparse, prune, spotter,
)
