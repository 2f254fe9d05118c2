"""One profile's models and evaluations, computed once and shared through the artifact store.

    exp = Experiment("default")
    original = exp.original()                   # trained (or loaded) Original model
    retrain = exp.retrain(ForgetSet((6,)))      # Retrain on D_r
    rl = exp.unlearned("rl", ForgetSet((6,)))   # an unlearning method, starting from Original
    table = exp.evaluate(rl)                    # output / LP / NCC x retain / forget

Every artifact's key holds its whole configuration and the key of its parent, so chapters and
re-runs share what is already computed and recompute exactly what a changed setting affects.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

from .config import ForgetSet, Profile, resolve
from .data import Dataset, ForgetSplit, load_dataset, split_forget
from .heads import HEADS, Features, evaluate_features, features
from .models import build_model
from .store import Store, spec_key
from .train import fit, resolve_device
from .unlearn import Context, unlearn


@dataclass
class Trained:
    """A model with its provenance: ``name`` is the registry name (``original``, ``retrain``,
    ``rl``, ...), ``variant`` is ``full``, ``classifier_only`` or ``cmf``."""

    name: str
    variant: str
    forget_set: ForgetSet | None
    model: nn.Module
    spec: dict
    record: dict = field(default_factory=dict)  # history, seconds, ...

    @property
    def key(self) -> str:
        return spec_key(self.spec)

    @property
    def seconds(self) -> float:
        return float(self.record.get("seconds", float("nan")))


@dataclass
class Variant:
    """How a method is run: ``base`` gives the model it starts from (Original, or a
    CMF-prepared Original), ``run`` runs the named method on it."""

    base: Callable[["Experiment"], Trained]
    run: Callable[..., tuple[nn.Module, float]]  # (name, model, split, cfg, ctx) -> (model, s)


VARIANTS: dict[str, Variant] = {
    "full": Variant(base=lambda exp: exp.original(), run=unlearn),
}


def register_variant(name: str, variant: Variant) -> None:
    VARIANTS[name] = variant


class Experiment:
    def __init__(self, profile: str | Profile = "default", overrides: Mapping[str, Any] | None = None,
                 store: Store | None = None, force: bool = False, device: str | None = None):
        self.profile = resolve(profile, overrides)
        self.device = resolve_device(device or self.profile.device)
        self.store = store or Store(force=force)
        self._data: Dataset | None = None
        self._splits: dict[ForgetSet, ForgetSplit] = {}
        self._models: dict[str, Trained] = {}
        self._features: dict[str, Features] = {}

    # ---------------------------------------------------------------- data
    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.profile.data, self.device)
        return self._data

    def split(self, forget_set: ForgetSet | int | str) -> ForgetSplit:
        forget_set = ForgetSet.parse(forget_set)
        if forget_set not in self._splits:
            self._splits[forget_set] = split_forget(self.data, forget_set)
        return self._splits[forget_set]

    def new_model(self) -> nn.Module:
        torch.manual_seed(self.profile.seed)
        m = self.profile.model
        return build_model(m.arch, self.data.num_classes, self.data.in_channels, m.width).to(self.device)

    # ---------------------------------------------------------------- models
    def _trained(self, name: str, variant: str, forget_set: ForgetSet | None, spec: dict,
                 compute: Callable[[], tuple[nn.Module, dict]],
                 build: Callable[[], nn.Module] | None = None) -> Trained:
        """Load the model of ``spec`` from the store, or ``compute`` it and store it. ``build``
        makes an empty module of the right structure (default: the profile's model)."""
        key = spec_key(spec)
        if key not in self._models:
            def run() -> dict:
                model, record = compute()
                return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "record": record}
            payload = self.store.load_or_compute("models", spec, run)
            model = (build or self.new_model)()
            model.load_state_dict(payload["state_dict"])
            self._models[key] = Trained(name, variant, forget_set, model.eval(), spec,
                                        payload["record"])
        return self._models[key]

    def original_spec(self) -> dict:
        p = self.profile
        return {"kind": "original", "data": p.data, "model": p.model, "train": p.original,
                "seed": p.seed}

    def original(self) -> Trained:
        def compute():
            start = time.perf_counter()
            model, history = fit(self.new_model(), self.data.train, self.data.val,
                                 self.profile.original, self.profile.seed,
                                 checkpoint=self.store.path("checkpoints", self.original_spec(), ".pt"),
                                 desc="original")
            return model, {"history": history, "seconds": time.perf_counter() - start}
        return self._trained("original", "full", None, self.original_spec(), compute)

    def retrain(self, forget_set: ForgetSet | int | str) -> Trained:
        forget_set = ForgetSet.parse(forget_set)
        p = self.profile
        spec = {"kind": "retrain", "data": p.data, "model": p.model, "train": p.retrain,
                "seed": p.seed, "forget_set": forget_set}
        split = self.split(forget_set)

        def compute():
            start = time.perf_counter()
            model, history = fit(self.new_model(), split.retain_train, split.retain_val,
                                 p.retrain, p.seed, desc=f"retrain {forget_set}",
                                 checkpoint=self.store.path("checkpoints", spec, ".pt"))
            return model, {"history": history, "seconds": time.perf_counter() - start}
        return self._trained("retrain", "full", forget_set, spec, compute)

    def context(self, **hooks) -> Context:
        recipe = self.profile.original
        return Context(seed=self.profile.seed, crop_padding=recipe.crop_padding,
                       flip=recipe.flip, **hooks)

    def unlearned(self, method: str, forget_set: ForgetSet | int | str,
                  variant: str = "full") -> Trained:
        """``method`` run from the variant's base model on ``forget_set`` (stored)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid choices: {sorted(VARIANTS)}")
        forget_set = ForgetSet.parse(forget_set)
        cfg = self.profile.method(method, variant)
        base = VARIANTS[variant].base(self)
        spec = {"kind": "unlearn", "method": method, "variant": variant, "config": cfg,
                "forget_set": forget_set, "parent": base.key, "seed": self.profile.seed}

        def compute():
            model, seconds = VARIANTS[variant].run(method, base.model, self.split(forget_set),
                                                   cfg, self.context())
            return model, {"seconds": seconds}
        return self._trained(method, variant, forget_set, spec, compute,
                             build=lambda: copy.deepcopy(base.model))

    # ---------------------------------------------------------------- evaluation
    def features(self, trained: Trained) -> Features:
        """Penultimate features of the training and test splits, extracted once per model."""
        if trained.key not in self._features:
            self._features[trained.key] = features(trained.model, self.data.train, self.data.test,
                                                   self.profile.heads.feature_batch_size)
        return self._features[trained.key]

    def evaluate(self, trained: Trained, forget_set: ForgetSet | int | str | None = None,
                 heads=HEADS, lp: str | None = None) -> pd.DataFrame:
        """Tidy accuracies: model, variant, forget_set, head, split, accuracy, seconds.

        ``seconds`` is the model's training/unlearning wall time for the output head and the
        head's own fitting time for LP and NCC."""
        forget_set = ForgetSet.parse(forget_set if forget_set is not None else trained.forget_set)
        heads_cfg = self.profile.heads
        spec = {"kind": "evaluate", "model": trained.key, "forget_set": forget_set,
                "heads": list(heads), "config": heads_cfg, "lp": lp or heads_cfg.lp}

        def compute() -> pd.DataFrame:
            table = evaluate_features(self.features(trained), forget_set, heads_cfg, heads, lp)
            table.loc[table["head"] == "output", "seconds"] = trained.seconds
            table.insert(0, "model", trained.name)
            table.insert(1, "variant", trained.variant)
            table.insert(2, "forget_set", forget_set.name)
            return table
        return self.store.table("evaluations", spec, compute)
