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
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

from . import classifier_only, cmf
from .attacks import PROTOTYPE_FORMS, prototype_attack, run_attacks
from .config import PROFILES, ForgetSet, MethodConfig, Profile, SettingError, get_profile, resolve
from .curves import StepCounter, check_resolution, probe_subset, quick_heads, unlearning_curve
from .data import Dataset, ForgetSplit, Split, load_dataset, split_forget
from .heads import (GEOMETRIES, HEADS, SECOND_OPINION, SECOND_OPINION_PROBE, Augmentation,
                    Features, evaluate_features, features, head_geometry, layerwise_probe,
                    mia_and_alignment, train_augmentation)
from .models import backbone_changes, ensure_pretrained, model_from_config
from .over_unlearning import over_unlearning, perturb, references
from .results import labelled
from .similarity import linear_cka
from .store import Store, spec_key
from .train import DivergedError, check_finite, fit, resolve_device
from .unlearn import METHODS, Context, check_options, having, unlearn


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

    @property
    def label(self) -> str:
        return model_label(self.name, self.variant, self.forget_set)

    def provenance(self, forget_set: ForgetSet) -> dict[str, str]:
        """The leading columns of its tables measured on ``forget_set``
        (:func:`illusion.results.labelled`)."""
        return {"model": self.name, "variant": self.variant, "forget_set": forget_set.name}


def model_label(name: str, variant: str, forget_set: ForgetSet | None) -> str:
    """How messages name a model: ``rl (full, forget set 1-2)``."""
    return f"{name} ({variant}" + (f", forget set {forget_set})" if forget_set else ")")


@dataclass
class Variant:
    """How a method is run: ``base`` gives the model it starts from (Original, or a
    CMF-prepared Original), ``run`` runs the named method on it, with the extra keyword
    arguments ``inputs`` gives (shared, precomputed inputs)."""

    base: Callable[["Experiment"], Trained]
    run: Callable[..., tuple[nn.Module, float]]  # (name, model, split, cfg, ctx) -> (model, s)
    inputs: Callable[["Experiment", ForgetSet], dict] = lambda exp, forget_set: {}
    options: tuple[str, ...] = ()  # options the variant reads from a method's settings


VARIANTS: dict[str, Variant] = {
    "full": Variant(base=lambda exp: exp.original(), run=unlearn),
    # The frozen backbone's features are extracted once per forget set, for every method.
    "classifier_only": Variant(base=lambda exp: exp.original(), run=classifier_only.run,
                               inputs=lambda exp, fs: {"features": exp.original_feature_split(fs)},
                               options=classifier_only.OPTIONS),
    "cmf": Variant(base=lambda exp: exp.cmf_original(), run=cmf.run),
}


def check_method_options(profile: Profile) -> None:
    """Every option of every method setting is one the method (or its variant's wrapper, or
    the CMF preparation) reads: a typo fails here, before anything trains."""
    for name, cfg in profile.methods.items():
        if name in METHODS:  # an unknown method is refused, with the valid names, when run
            check_options(name, cfg, f"methods.{name}")
    for variant, table in profile.variant_methods.items():
        for name, cfg in table.items():
            setting = f"variant_methods.{variant}.{name}"
            if variant == "cmf" and name == "prepare":
                check_options(name, cfg, setting, cmf.PREPARE_OPTIONS)
            elif name in METHODS:
                extra = VARIANTS[variant].options if variant in VARIANTS else ()
                check_options(name, cfg, setting, extra)


def with_outside_methods(profile: str | Profile, methods=()) -> tuple[Profile | str, tuple[str, ...]]:
    """``profile`` with the settings of the methods ``methods`` names (built-in names, entry
    points of ``illusion.methods`` or ``module:function`` paths; :func:`illusion.outside.load`
    registers them), and their registry names. A method from outside the package gets the
    settings row it declares, under the profile's own policy (:func:`illusion.config.get_profile`);
    a profile given as an object keeps a method's settings it already has, and takes the others
    from the named profile it was built from."""
    from . import outside

    names = tuple(outside.load(spec) for spec in methods)
    decls = {n: outside.declaration(n) for n in dict.fromkeys(names)}
    decls = {n: d for n, d in decls.items() if d is not None}
    if not decls:
        return profile, names
    rows = [d.row(n) for n, d in decls.items()]
    cmf_rows = [r for n, d in decls.items() if (r := d.cmf_row(n)) is not None]
    if isinstance(profile, str):
        return get_profile(profile, rows, cmf_rows), names
    missing = [n for n in decls if n not in profile.methods]
    if not missing:
        return profile, names
    if profile.name not in PROFILES:
        raise SettingError(f"profile {profile.name!r} has no settings for method(s) {missing} and "
                           f"is none of the named profiles {sorted(PROFILES)} whose policy "
                           f"would give them; add them to its 'methods'")
    built = get_profile(profile.name, rows, cmf_rows)
    variants = {v: {**table, **{n: built.variant_methods[v][n] for n in missing
                                if n in built.variant_methods.get(v, {})}}
                for v, table in profile.variant_methods.items()}
    return dataclasses.replace(profile, methods={**profile.methods,
                                                 **{n: built.methods[n] for n in missing}},
                               variant_methods=variants), names


def origin(method: str) -> dict:
    """What a stored model's key adds for a method from outside the package: where its code
    comes from (two packages may name their methods alike) and a hash of its module's source
    (an edited method is recomputed). Nothing for a built-in method, so their keys are
    unchanged."""
    fn = METHODS.get(method)
    source = getattr(fn, "origin", None)
    return {"origin": source, "code": getattr(fn, "code", None)} if source else {}


class Experiment:
    def __init__(self, profile: str | Profile = "default", overrides: Mapping[str, Any] | None = None,
                 store: Store | None = None, force: bool = False, device: str | None = None,
                 methods=()):
        """``methods``: methods from outside the package to run too (entry-point names or
        ``module:function`` paths, :mod:`illusion.outside`); they are registered and their
        settings added to the profile before ``overrides`` apply (``methods.<name>.lr``)."""
        profile, self.method_names = with_outside_methods(profile, methods)
        self.profile = resolve(profile, overrides)  # method options checked there too
        self.device = resolve_device(device or self.profile.device)
        self.store = store or Store(force=force)
        self._data: Dataset | None = None
        self._splits: dict[ForgetSet, ForgetSplit] = {}
        self._models: dict[str, Trained] = {}
        self._features: dict[str, Features] = {}
        # Model key -> the key of the model whose backbone computed its features (the
        # Original's for a model that shares it bitwise), and the feature heads fitted on
        # those features per (that key, geometry, LP method) (:meth:`evaluate`).
        self._feature_source: dict[str, str] = {}
        self._head_fits: dict[tuple[str, str, str], dict] = {}
        self._feature_splits: dict[ForgetSet, ForgetSplit] = {}
        # Forget set -> its perturbed forget images and the Original's masked softmax on them
        # (over-unlearning), made once for every model measured on it.
        self._perturbed: dict[ForgetSet, tuple[dict, dict]] = {}

    # ---------------------------------------------------------------- data
    @property
    def data(self) -> Dataset:
        if self._data is None:
            data = load_dataset(self.profile.data, self.device)
            # The profile's forget sets fit this dataset, or nothing trains on it.
            for bucket, sets in self.profile.buckets.items():
                try:
                    for forget_set in sets:
                        forget_set.check_classes(data.num_classes, repr(data.name))
                except SettingError as error:
                    raise SettingError(f"setting 'buckets.{bucket}': {error}") from None
            self._data = data
        return self._data

    def forget_set(self, spec: ForgetSet | int | str) -> ForgetSet:
        """``spec`` read strictly and checked against the dataset's classes: this loads the
        data, never trains, so a bad forget set fails before any model is computed."""
        return ForgetSet.parse(spec).check_classes(self.data.num_classes, repr(self.data.name))

    def split(self, forget_set: ForgetSet | int | str) -> ForgetSplit:
        forget_set = self.forget_set(forget_set)
        if forget_set not in self._splits:
            self._splits[forget_set] = split_forget(self.data, forget_set)
        return self._splits[forget_set]

    def new_model(self) -> nn.Module:
        # Pretrained weights the profile promises are found (or fetched) before any training:
        # every trained model starts here.
        ensure_pretrained(self.profile.model)
        torch.manual_seed(self.profile.seed)
        return model_from_config(self.profile.model, self.data.num_classes,
                                 self.data.in_channels, self.device)

    # ---------------------------------------------------------------- models
    def _trained(self, name: str, variant: str, forget_set: ForgetSet | None, spec: dict,
                 compute: Callable[[], tuple[nn.Module, dict]],
                 build: Callable[[], nn.Module] | None = None) -> Trained:
        """Load the model of ``spec`` from the store, or ``compute`` it and store it. ``build``
        makes an empty module of the right structure (default: the profile's model)."""
        key = spec_key(spec)
        if key not in self._models:
            def run() -> dict:
                # Raised before the store writes anything: a failed run leaves no artifact.
                try:
                    model, record = compute()
                    check_finite(model, "the result")
                except (DivergedError, SettingError) as error:
                    raise type(error)(f"{model_label(name, variant, forget_set)}: {error}. "
                                      f"Nothing was stored.") from None
                return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "record": record}
            payload = self.store.load_or_compute("models", spec, run)
            model = (build or self.new_model)()
            model.load_state_dict(payload["state_dict"])
            self._models[key] = Trained(name, variant, forget_set, model.eval(), spec,
                                        payload["record"])
        return self._models[key]

    def _require_finite(self, trained: Trained) -> None:
        """Evaluations refuse a model with NaN or infinite weights: every head would score
        it (NaN logits all pick class 0), and the table would be stored and reused."""
        check_finite(trained.model, f"model {trained.label}")

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
        """Trained from scratch on D_r, the retain part of the whole training set, as in the
        authors' code; there is no validation split (``keep="best"`` then selects by training
        accuracy)."""
        forget_set = self.forget_set(forget_set)
        p = self.profile
        spec = {"kind": "retrain", "data": p.data, "model": p.model, "train": p.retrain,
                "seed": p.seed, "forget_set": forget_set}
        split = self.split(forget_set)

        def compute():
            start = time.perf_counter()
            no_validation = split.retain_train.where(split.retain_train.y < 0)
            model, history = fit(self.new_model(), split.retain_train, no_validation,
                                 p.retrain, p.seed, desc=f"retrain {forget_set}",
                                 checkpoint=self.store.path("checkpoints", spec, ".pt"))
            return model, {"history": history, "seconds": time.perf_counter() - start}
        return self._trained("retrain", "full", forget_set, spec, compute)

    def cmf_original(self) -> Trained:
        """The Original with its last layer replaced by the CMF head and the encoder fine-tuned
        with CE on CMF logits (REFERENCE §8): the base of every CMF variant."""
        original = self.original()
        cfg = self.profile.method("prepare", "cmf")
        spec = {"kind": "cmf_original", "config": cfg, "parent": original.key,
                "seed": self.profile.seed}

        def compute():
            start = time.perf_counter()
            model = cmf.prepare(original.model, self.data.train, cfg, self.context())
            return model, {"seconds": time.perf_counter() - start}
        return self._trained("original", "cmf", None, spec, compute,
                             build=lambda: cmf.empty_cmf_model(original.model))

    def context(self, **hooks) -> Context:
        recipe = self.profile.original
        return Context(seed=self.profile.seed, crop_padding=recipe.crop_padding,
                       flip=recipe.flip, **hooks)

    def unlearned(self, method: str, forget_set: ForgetSet | int | str,
                  variant: str = "full") -> Trained:
        """``method`` run from the variant's base model on ``forget_set`` (stored)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid choices: {sorted(VARIANTS)}")
        forget_set = self.forget_set(forget_set)
        cfg = self.profile.method(method, variant)
        base = VARIANTS[variant].base(self)
        spec = {"kind": "unlearn", "method": method, "variant": variant, "config": cfg,
                "forget_set": forget_set, "parent": base.key, "seed": self.profile.seed,
                **origin(method)}

        def compute():
            run = VARIANTS[variant]
            counter = StepCounter()
            model, seconds = run.run(method, base.model, self.split(forget_set), cfg,
                                     self.context(on_step=counter), **run.inputs(self, forget_set))
            return model, {"seconds": seconds, "steps": counter.steps}
        return self._trained(method, variant, forget_set, spec, compute,
                             build=lambda: copy.deepcopy(base.model))

    def models(self, methods: list[str] | tuple[str, ...], variant: str = "full",
               forget_sets=None, references: bool = True) -> dict[tuple[str, str, ForgetSet], Trained]:
        """Original and Retrain (with ``references``) and every method in ``variant``, per
        forget set: {(name, variant, forget set): Trained}."""
        models = {}
        for fs in forget_sets or self.profile.forget_sets:
            fs = self.forget_set(fs)
            if references:
                models["original", "full", fs] = self.original()
                models["retrain", "full", fs] = self.retrain(fs)
            for method in methods:
                models[method, variant, fs] = self.unlearned(method, fs, variant)
        return models

    def all_variants(self, forget_sets=None) -> dict[tuple[str, str, ForgetSet], Trained]:
        """Original, Retrain and every baseline in full, as classifier-only (but the methods
        that only edit the last layer) and as CMF (the methods the profile sets for it)."""
        baselines, edits = having("baseline"), having("edits_classifier")
        models = self.models(baselines, forget_sets=forget_sets)
        models |= self.models(self.profile.variant_method_names("cmf"), "cmf",
                              forget_sets=forget_sets, references=False)
        models |= self.models([m for m in baselines if m not in edits],
                              "classifier_only", forget_sets=forget_sets, references=False)
        return models

    def accuracy(self, models: Mapping[tuple[str, str, ForgetSet], Trained],
                 second_opinion: bool = False) -> pd.DataFrame:
        """Tidy Output/LP/NCC accuracies of ``models`` (as returned by :meth:`models`), with the
        L-BFGS probe beside the paper's with ``second_opinion`` (:meth:`evaluate`)."""
        return pd.concat([self.evaluate(m, key[-1], second_opinion=second_opinion)
                          for key, m in models.items()], ignore_index=True)

    def original_feature_split(self, forget_set: ForgetSet) -> ForgetSplit:
        """The forget split with images replaced by the Original's penultimate features."""
        if forget_set not in self._feature_splits:
            self._feature_splits[forget_set] = classifier_only.feature_split(
                self.original().model, self.split(forget_set))
        return self._feature_splits[forget_set]

    # ---------------------------------------------------------------- evaluation
    def features(self, trained: Trained, geometry: str = "raw") -> Features:
        """Penultimate features of the whole training set and of the test split, extracted
        once per model (the training images augmented once when the profile's heads say so).
        ``geometry="model"`` gives them in the space the model's own head classifies
        (:func:`illusion.heads.head_geometry`: ẑ for a CMF model), ``"raw"`` as they are.

        A model whose backbone is bitwise the Original's (classifier-only unlearning) has the
        Original's features by construction: they are reused, only its logits are recomputed.
        """
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; valid choices: {list(GEOMETRIES)}")
        self._require_finite(trained)
        if geometry == "model":
            return head_geometry(trained.model, self.features(trained))
        if trained.key not in self._features:
            original = self.original()
            if trained.key != original.key and _same_backbone(trained.model, original.model):
                f = self.features(original)
                with torch.no_grad():
                    logits = [trained.model.fc(x).float() for x in (f.train, f.test)]
                self._features[trained.key] = dataclasses.replace(
                    f, train_logits=logits[0], test_logits=logits[1])
                self._feature_source[trained.key] = original.key
            else:
                self._features[trained.key] = features(trained.model, self.data.whole_train,
                                                       self.data.test,
                                                       train_augmentation=self.train_augmentation())
        return self._features[trained.key]

    def train_augmentation(self) -> Augmentation | None:
        """The one augmented pass of the heads' training features (``heads.augment_train``;
        :func:`illusion.heads.train_augmentation`)."""
        return train_augmentation(self.profile)

    def evaluate(self, trained: Trained, forget_set: ForgetSet | int | str | None = None,
                 heads=HEADS, lp: str | None = None, geometry: str = "model",
                 second_opinion: bool = False) -> pd.DataFrame:
        """Tidy accuracies: model, variant, forget_set, head, split, accuracy, seconds.

        LP and NCC fit in the model's own geometry (the authors' protocol: ẑ for a CMF model)
        or, with ``geometry="raw"``, on the raw penultimate features. ``seconds`` is the
        model's training/unlearning wall time for the output head and the head's own fitting
        time for LP and NCC. LP and NCC are fitted once per features (their fit does not
        depend on the forget set): once per model and geometry for all its forget sets, and
        once for every model with the Original's backbone (classifier-only, SVD, prune), whose
        features are the Original's; the seconds are those of that fit.

        ``second_opinion``: also the converged L-BFGS probe on the same features, as head
        :data:`illusion.heads.SECOND_OPINION` (Tables 1-3 show it beside the paper's probe)."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        if second_opinion:
            return pd.concat([
                self.evaluate(trained, forget_set, heads, lp, geometry),
                self.evaluate(trained, forget_set, ("lp",), SECOND_OPINION_PROBE, geometry)
                .assign(head=SECOND_OPINION)], ignore_index=True)
        heads_cfg = self.profile.heads
        spec = {"kind": "evaluate", "model": trained.key, "forget_set": forget_set,
                "heads": list(heads), "config": heads_cfg, "lp": lp or heads_cfg.lp,
                "geometry": geometry}

        def compute() -> pd.DataFrame:
            feats = self.features(trained, geometry)
            source = self._feature_source.get(trained.key, trained.key)
            fitted = self._head_fits.setdefault((source, geometry, lp or heads_cfg.lp), {})
            table = evaluate_features(feats, forget_set, heads_cfg, heads, lp, fitted)
            table.loc[table["head"] == "output", "seconds"] = trained.seconds
            return labelled(table, **trained.provenance(forget_set))
        return self.store.table("evaluations", spec, compute)

    def metrics(self, trained: Trained, forget_set: ForgetSet | int | str | None = None) -> pd.DataFrame:
        """MIA efficacy and classifier/feature alignment of one model, in its head's own
        geometry (tidy: metric, value; :func:`illusion.heads.mia_and_alignment`)."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        spec = {"kind": "metrics", "model": trained.key, "forget_set": forget_set,
                "geometry": "model"}

        def compute() -> pd.DataFrame:
            values, _ = mia_and_alignment(self.features(trained, "model"),
                                          trained.model.fc.weight.detach(), forget_set.classes,
                                          self.profile.seed)
            table = pd.DataFrame({"metric": list(values), "value": list(values.values())})
            return labelled(table, **trained.provenance(forget_set))
        return self.store.table("metrics", spec, compute)

    def layerwise(self, trained: Trained, forget_set: ForgetSet | int | str | None = None) -> pd.DataFrame:
        """Linear probe on the pooled output of the stem and of each stage (tidy: stage, split,
        accuracy): where in the network the forgotten class stays separable."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        spec = {"kind": "layerwise", "model": trained.key, "forget_set": forget_set,
                "config": self.profile.heads}

        def compute() -> pd.DataFrame:
            table = layerwise_probe(trained.model, self.data.whole_train, self.data.test,
                                    forget_set, self.profile.heads)
            return labelled(table, **trained.provenance(forget_set))
        return self.store.table("layerwise", spec, compute)

    def unlearning_curve(self, method: str, forget_set: ForgetSet | int | str,
                         variant: str = "full", points: int = 8,
                         train_per_class: int = 200, epochs: int | None = None,
                         at: str = "step") -> pd.DataFrame:
        """Output / LP / NCC accuracy during unlearning (tidy: step or epoch, head, split,
        accuracy; :func:`illusion.curves.unlearning_curve`), at about ``points`` optimiser
        steps (``at="step"``; the run's steps as its stored model, :meth:`unlearned`, counted
        them, or with ``epochs`` on a run of its own) or at the end of
        every epoch of the run's loop (``at="epoch"``; UNSIR's loop runs its impair and its
        repair epochs). ``epochs`` overrides the setting's. LP and NCC are fitted, in the
        model's own geometry, on ``train_per_class`` training images per class
        (:meth:`probe_subset`) at each point."""
        check_resolution(at)
        forget_set = self.forget_set(forget_set)
        cfg = self.profile.method(method, variant)
        if epochs is not None:
            cfg = dataclasses.replace(cfg, epochs=epochs)
        base = VARIANTS[variant].base(self)
        spec = {"kind": "curve", "method": method, "variant": variant, "config": cfg,
                "forget_set": forget_set, "parent": base.key, "points": points,
                "train_per_class": train_per_class, "heads": self.profile.heads,
                "seed": self.profile.seed, "at": at, **origin(method)}

        def compute() -> pd.DataFrame:
            probe_train = self.probe_subset(train_per_class)
            # A step curve at the profile's settings is the stored run, re-run with the curve's
            # hook: that run's record gives its step count (a run stored before runs counted
            # their steps has none, and the curve counts them on a run of its own).
            steps = (self.unlearned(method, forget_set, variant).record.get("steps")
                     if at == "step" and epochs is None else None)
            table = unlearning_curve(self._run(method, forget_set, variant, cfg), base.model,
                                     lambda model: self.quick_heads(model, forget_set, probe_train),
                                     at, points, steps)
            return table.assign(model=method, variant=variant, forget_set=forget_set.name)
        return self.store.table("curves", spec, compute)

    def _run(self, method: str, forget_set: ForgetSet, variant: str,
             cfg: MethodConfig) -> Callable[..., tuple[nn.Module, float]]:
        """``run(**hooks)``: ``method`` run from the variant's base model on ``forget_set``
        with these context hooks, nothing stored (a curve's run)."""
        run = VARIANTS[variant]

        def with_hooks(**hooks) -> tuple[nn.Module, float]:
            return run.run(method, run.base(self).model, self.split(forget_set), cfg,
                           self.context(**hooks), **run.inputs(self, forget_set))
        return with_hooks

    def probe_subset(self, train_per_class: int = 200) -> Split:
        """A stratified subset of the whole training set (the profile's seed) on which the
        curves fit LP and NCC cheaply (:func:`illusion.curves.probe_subset`)."""
        return probe_subset(self.data.whole_train, train_per_class, self.profile.seed)

    def quick_heads(self, model: nn.Module, forget_set: ForgetSet, probe_train: Split) -> pd.DataFrame:
        """Output / LP / NCC of ``model`` on the test split as the curves measure them
        (:func:`illusion.curves.quick_heads`); not stored: a curve point or a comparison with
        one."""
        return quick_heads(model, probe_train, self.data.test, forget_set, self.profile.heads)

    def relearning_curves(self, models: Mapping[tuple[str, str, ForgetSet], Trained]) -> pd.DataFrame:
        """:meth:`relearning` of every model of ``models`` on its forget set, stacked (the
        Original, shared by every forget set's key, once per forget set)."""
        curves = pd.concat([self.relearning(m, key[-1]) for key, m in models.items()],
                           ignore_index=True)
        return curves.drop_duplicates(["model", "variant", "forget_set", "attack", "step"])

    def relearning(self, trained: Trained, forget_set: ForgetSet | int | str | None = None,
                   attacks: tuple[str, ...] = ("retain_finetune", "few_shot", "head_only")
                   ) -> pd.DataFrame:
        """Relearning attack curves on a copy of ``trained`` with the profile's budget (tidy:
        model, variant, forget_set, attack, step, forget_accuracy, retain_accuracy)."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        budget = self.profile.attack
        spec = {"kind": "relearning", "model": trained.key, "forget_set": forget_set,
                "attacks": list(attacks), "budget": budget, "seed": self.profile.seed}

        def compute() -> pd.DataFrame:
            curves = run_attacks(trained.model, self.split(forget_set), attacks,
                                 steps=budget.steps, lr=budget.lr, batch_size=budget.batch_size,
                                 eval_every=budget.eval_every, seed=self.profile.seed,
                                 shots=budget.shots, train=self.data.whole_train,
                                 features=self.features(trained))
            return labelled(curves, **trained.provenance(forget_set))
        return self.store.table("relearning", spec, compute)

    # ------------------------------------------------------------ probes beyond the paper
    def prototype_attack(self, trained: Trained,
                         forget_set: ForgetSet | int | str | None = None) -> pd.DataFrame:
        """The training-free prototypical relearning attack on ``trained`` with the profile's
        budgets (``probes``; tidy: model, variant, forget_set, form, alpha, shots,
        forget_accuracy, retain_accuracy; :func:`illusion.attacks.prototype_attack`)."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        probes = self.profile.probes
        budget = {"shots": list(probes.prototype_shots), "alphas": list(probes.prototype_alphas),
                  "forms": list(PROTOTYPE_FORMS), "draws": probes.prototype_draws}
        spec = {"kind": "prototype_attack", "model": trained.key, "forget_set": forget_set,
                "budget": budget, "seed": self.profile.seed}

        def compute() -> pd.DataFrame:
            table = prototype_attack(trained.model, self.split(forget_set), seed=self.profile.seed,
                                     features=self.features(trained), **budget)
            return labelled(table, **trained.provenance(forget_set))
        return self.store.table("prototype_attacks", spec, compute)

    def over_unlearning(self, trained: Trained,
                        forget_set: ForgetSet | int | str | None = None) -> pd.DataFrame:
        """OU@ε of ``trained`` on the forget training images of ``forget_set`` perturbed by
        targeted PGD and by Gaussian noise (tidy: model, variant, forget_set, perturbation,
        value; :mod:`illusion.over_unlearning`), against the Original's masked softmax."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        probes, original = self.profile.probes, self.original()
        settings = {"epsilon": probes.ou_epsilon, "step": probes.ou_step,
                    "steps": probes.ou_steps, "sigma": probes.ou_sigma}
        spec = {"kind": "over_unlearning", "model": trained.key, "forget_set": forget_set,
                "original": original.key, "settings": settings, "seed": self.profile.seed}

        def compute() -> pd.DataFrame:
            if forget_set not in self._perturbed:
                split = self.split(forget_set)
                images = perturb(original.model, split.forget_train, split.pixels,
                                 seed=self.profile.seed, **settings)
                self._perturbed[forget_set] = (images, references(original.model, images,
                                                                  forget_set.classes))
            images, reference = self._perturbed[forget_set]
            values = over_unlearning(trained.model, images, reference)
            table = pd.DataFrame({"perturbation": list(values), "value": list(values.values())})
            return labelled(table, **trained.provenance(forget_set))
        return self.store.table("over_unlearning", spec, compute)

    def similarity(self, trained: Trained,
                   forget_set: ForgetSet | int | str | None = None) -> pd.DataFrame:
        """Linear CKA between ``trained``'s penultimate features on the test split and the
        Original's and Retrain's (of ``forget_set``), on the retain and the forget images
        separately (tidy: model, variant, forget_set, reference, split, cka;
        :func:`illusion.similarity.linear_cka`)."""
        self._require_finite(trained)
        forget_set = self.forget_set(forget_set if forget_set is not None else trained.forget_set)
        refs = {"original": self.original(), "retrain": self.retrain(forget_set)}
        spec = {"kind": "similarity", "model": trained.key, "forget_set": forget_set,
                "references": {name: ref.key for name, ref in refs.items()}}

        def compute() -> pd.DataFrame:
            mine = self.features(trained)
            is_forget = torch.isin(mine.test_y, torch.tensor(forget_set.classes,
                                                             device=mine.test_y.device))
            rows = [{"reference": name, "split": split,
                     "cka": linear_cka(mine.test[part], self.features(ref).test[part])}
                    for name, ref in refs.items()
                    for split, part in (("retain", ~is_forget), ("forget", is_forget))]
            return labelled(pd.DataFrame(rows), **trained.provenance(forget_set))
        return self.store.table("similarity", spec, compute)


def _same_backbone(model: nn.Module, other: nn.Module) -> bool:
    """Whether every tensor outside the last layer is bitwise equal in both models, whose
    last layers are of one kind (same state keys): a CMF head on the Original's backbone
    classifies other features (ẑ) than the Original's linear layer."""
    return (model.state_dict().keys() == other.state_dict().keys()
            and not backbone_changes(model, other))
