"""``illusion evaluate``: does *this* unlearning method create the illusion of unlearning?

    report = evaluate_method("mypkg.mymod:my_unlearn", "default", forget_sets=["6"])
    print(report.summary()); report.save("out/")

One method (built-in, an entry point of ``illusion.methods`` or a ``module:function`` path,
:mod:`illusion.outside`) run as the book runs its baselines, with the profile's settings (an
outside method's declared row, overridable like a built-in's), on the forget sets given (else
the profile's), and judged by the book's own checks, with this method as the unit of every
claim:

- ``table1``: Output / LP / NCC accuracy on test retain / forget of the method in full, with
  the Original and Retrain (the paper's Table 1 rows of this method); LP is the paper's SGD
  probe, and every table has the L-BFGS probe beside it (head ``lp_lbfgs``), whose value each
  check shows too (``second_opinion``; ``probe`` says where it would decide otherwise);
- ``table2``: the same with its classifier-only variant (Table 2; a method registered
  ``edits_classifier`` shows its full model there, ``computed_as == "full"``, as chapter 4);
- ``table3``: the method in full and under CMF, with the CMF Original (Table 3);
- ``relearning`` / ``recovery_auc``: relearning curves of the Original, Retrain and each
  variant of the method on the attacked forget sets (the evaluated single-class forget sets, at
  most ``attack.forget_sets`` of them) and their AUC, as chapter 6 computes them, with the
  attacks from a fresh head (``few_shot_fresh``, ``head_only_fresh``) and the recovery of every
  configuration of the prototypical relearning attack (chapter 7; ``keeps_retain`` says whether
  it keeps the retain classes);
- ``prototype_attack``, ``over_unlearning``, ``similarity``: the probes of chapter 7 on the
  same models (the prototype attack's curves, OU@ε, CKA to the Original and to Retrain);
- ``strongest``: per model and forget set, the attack that recovers the most (among those that
  keep the retain classes) and its recovery: claim 4 is judged on it, so an edit of the
  classifier alone (zero forget rows, biases of -1e4) cannot pass it;
- ``checks``: the checks of chapters 2, 4, 5 and 6 on this method, the book's check functions
  (:func:`illusion.claims.misalignment_checks`, :func:`illusion.claims.classifier_only_checks`,
  :func:`illusion.claims.cmf_checks`, :func:`illusion.claims.relearning_checks`) with their
  verdicts on the profile (:func:`illusion.claims.decide`); they name this method where the
  book names RL and SalUn (claim 1, claim 3's "illusion" part) or RL and NegGrad+ (claim 2).
  Not computed here: chapter 4's evidence (the classifier's geometry) and the CMF Original's
  own checks. Claim 4 is judged under the strongest attack
  (:func:`illusion.claims.strongest_attack_checks`), not only chapter 6's two;
- ``claims``: one verdict per claim from those checks (:func:`illusion.claims.verdicts`, as the
  book's ledger words it); ``not run`` for claim 4 when no single-class forget set was attacked.

Every input is checked before anything trains, and the report is written only once all of it
is computed (each file atomically): a bad input or a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from . import claims
from .attacks import (FRESH_ATTACKS, PROTOTYPE_COLUMNS, prototype_recovery, recovery_table,
                      strongest)
from .config import ForgetSet, SettingError, _flatten, _overrides_mapping, to_jsonable
from .experiment import Experiment
from .outside import MethodError, OutsideMethodError
from .train import DivergedError
from .results import accuracy_table, with_variant_labels
from .store import Store, atomic_write_text
from .unlearn import InputChangedError, get_method, traits

SHORT = {"1": "output forgets, features keep the class: the illusion",
         "2": "classifier-only suffices", "3": "under CMF it barely forgets",
         "4": "the strongest attack brings it back more than from Retrain"}


class EvaluateError(ValueError):
    """A problem with the inputs of an evaluation; ``illusion evaluate`` exits with status 2."""


@dataclass
class MethodReport:
    """The tables of one method's evaluation (tidy, as the book saves them) and its meta."""

    meta: dict
    table1: pd.DataFrame
    table2: pd.DataFrame
    table3: pd.DataFrame
    relearning: pd.DataFrame
    recovery_auc: pd.DataFrame
    prototype_attack: pd.DataFrame
    over_unlearning: pd.DataFrame
    similarity: pd.DataFrame
    strongest: pd.DataFrame
    checks: pd.DataFrame
    claims: pd.DataFrame

    TABLES = ("table1", "table2", "table3", "relearning", "recovery_auc", "prototype_attack",
              "over_unlearning", "similarity", "strongest", "checks", "claims")

    def to_dict(self) -> dict:
        def records(df: pd.DataFrame) -> list[dict]:
            return df.astype(object).where(df.notna(), None).to_dict("records")
        return {"meta": self.meta, **{name: records(getattr(self, name)) for name in self.TABLES}}

    def texts(self) -> dict[str, str]:
        """Every file of the report, by name, as text (computed before anything is written)."""
        files = {"report.json": json.dumps(self.to_dict(), indent=1, allow_nan=False, default=str)}
        files |= {f"{name}.csv": getattr(self, name).to_csv(index=False) for name in self.TABLES}
        files["summary.txt"] = self.summary() + "\n"
        return files

    def save(self, out: str | Path) -> list[Path]:
        """Write the report under ``out`` (created when missing), each file atomically."""
        out = Path(out)
        texts = self.texts()
        written = []
        for name, text in texts.items():
            atomic_write_text(text, out / name)
            written.append(out / name)
        return written

    def summary(self) -> str:
        m = self.meta
        name = m["method"]
        lines = [f"Does {name!r} ({m['origin']}) create the illusion of unlearning? Profile "
                 f"{m['profile']}, forget sets {m['forget_sets']}, relearning on "
                 f"{m['attacked_forget_sets'] or 'none'}; variants {m['variants']}"]
        for variant, why in m.get("not_applicable", {}).items():
            lines.append(f"Not run: {variant}, because {why}.")
        for variant, error in m.get("failed", {}).items():
            lines.append(f"FAILED: {variant}: {error}")
        short = {claims.claim_title(c): text for c, text in SHORT.items()}
        lines.append("Verdicts: " + "; ".join(f"{row.claim} ({short[row.claim]}): {row.verdict}"
                                              for row in self.claims.itertuples()))
        profile = _Buckets(m["buckets"])

        def block(title: str, table: pd.DataFrame) -> None:
            wide = accuracy_table(with_variant_labels(table), profile, by=("model",))
            lines.extend(["", title, wide.to_string()])

        block("Table 1: accuracy (%) of the full model, test retain / forget", self.table1)
        block("Table 2: full model vs classifier only", self.table2)
        block("Table 3: full model vs CMF", self.table3)
        if not self.recovery_auc.empty:
            shown = with_variant_labels(self.recovery_auc)
            kept = shown["keeps_retain"].fillna(True).astype(bool)
            shown = shown.assign(auc=[f"{a:.1f}" + ("" if k else " ✗")
                                      for a, k in zip(shown["auc"], kept)])
            auc = shown.pivot_table(index="model", columns="attack", values="auc",
                                    aggfunc="first", sort=False).T
            lines.extend(["", f"Relearning: recovery (%): fine-tuning attacks, mean forget "
                              f"accuracy over {m['attack_steps']} steps; prototypes, over their "
                              f"budgets of K (✗: loses the retain classes, not counted)",
                          auc.to_string()])
            best = with_variant_labels(self.strongest)
            lines.append("Strongest attack: " + "; ".join(
                f"{row.model} (forget set {row.forget_set}): {row.attack} {row.auc:.1f}"
                for row in best.itertuples()))
        if not self.over_unlearning.empty:
            ou = (with_variant_labels(self.over_unlearning)
                  .pivot_table(index="model", columns="perturbation", values="value", sort=False))
            cka = (with_variant_labels(self.similarity)
                   .pivot_table(index="model", columns=["reference", "split"], values="cka",
                                sort=False))
            lines.extend(["", "Over-unlearning OU@ε (mean JS divergence near the forget class; "
                              "Retrain is the reference)", ou.round(3).to_string(),
                          "", "Linear CKA of the test features with the Original's and Retrain's",
                          cka.round(3).to_string()])
        shown = self.checks[["claim", "check", "subject", "value", "op", "threshold", "verdict",
                             *(c for c in ("second_opinion", "probe") if c in self.checks)]]
        lines.extend(["", "Checks (illusion.claims, the book's thresholds)",
                      shown.to_string(index=False, float_format=lambda v: f"{v:.2f}")])
        lines.extend(["", "Claims ledger (this method as the unit of every claim)"])
        for row in self.claims.itertuples():
            lines.append(f"  {row.claim} [{row.verdict}]: {row.statement}")
            lines.append(f"      checks: {row.checks}")
        return "\n".join(lines)


class _Buckets:
    """The part of a profile :func:`illusion.results.accuracy_table` reads: its buckets."""

    def __init__(self, buckets: Mapping[str, list[str]]):
        self.buckets = {b: [ForgetSet.parse(s) for s in sets] for b, sets in buckets.items()}


def _forget_sets(specs: Sequence[Any] | None) -> list[ForgetSet] | None:
    if specs is None:
        return None
    if isinstance(specs, (str, int)):
        specs = [specs]
    try:
        sets = [ForgetSet.parse(s) for s in specs]
    except SettingError as error:
        raise EvaluateError(f"--forget-sets: {error}") from None
    if not sets:
        raise EvaluateError("--forget-sets: give at least one forget set, like 6 or 2-4-6")
    return list(dict.fromkeys(sets))


def prepare(method: str, profile: str = "default", forget_sets: Sequence[Any] | None = None,
            overrides: Mapping[str, Any] | str | None = None, store: Store | None = None,
            device: str | None = None) -> tuple[Experiment, str, list[ForgetSet]]:
    """The experiment of an evaluation, its method's registry name and the forget sets, every
    input checked (method, profile, settings, forget sets against the dataset); nothing
    trains."""
    sets = _forget_sets(forget_sets)
    try:
        settings = dict(_flatten(_overrides_mapping(overrides)))
        if sets is not None:
            settings["buckets"] = {"single": [fs.classes for fs in sets if len(fs.classes) == 1],
                                   "multi": [fs.classes for fs in sets if len(fs.classes) > 1]}
        exp = Experiment(profile, settings, store=store, device=device, methods=[method])
    except MethodError as error:
        raise EvaluateError(str(error)) from None
    except SettingError as error:
        raise EvaluateError(str(error)) from None
    name = exp.method_names[0]
    try:
        exp.data  # loads the data and checks every forget set against it
    except SettingError as error:
        raise EvaluateError(str(error).replace("setting 'buckets.single': ", "--forget-sets: ")
                            .replace("setting 'buckets.multi': ", "--forget-sets: ")) from None
    for variant in ("full", "classifier_only", "cmf"):
        exp.profile.method(name, variant)  # present for every variant (falls back to full)
    return exp, name, list(exp.profile.forget_sets if sets is None else sets)


# Why a variant does not apply to a method registered ``edits_classifier`` (SVD, pruning, a
# training-free edit of the last layer): the book runs neither for its own such methods.
NOT_APPLICABLE = {
    "classifier_only": "it edits only the last layer already: a classifier-only run is the "
                       "full run (Table 2 shows the full model, as chapter 4 does)",
    "cmf": "it edits only the last layer, which a CMF model recomputes from the class means: "
           "its edit would be discarded (the book runs no CMF variant of its classifier edits)",
}
# What a variant's run may fail with and leave the rest of the report standing.
RUN_ERRORS = (OutsideMethodError, InputChangedError, DivergedError)


def variants_of(name: str) -> tuple[str, ...]:
    """The variants a method runs as: full, classifier-only and CMF; a method that only edits
    the last layer runs in full only (:data:`NOT_APPLICABLE`)."""
    return ("full",) if traits(name).edits_classifier else ("full", "classifier_only", "cmf")


def evaluate_method(method: str, profile: str = "default", forget_sets: Sequence[Any] | None = None,
                    overrides: Mapping[str, Any] | str | None = None, store: Store | None = None,
                    device: str | None = None) -> MethodReport:
    """The report of ``method`` (see the module docstring). ``forget_sets``: class ids or
    strings like ``'2-4-6'`` (default: the profile's); ``overrides``: dotted settings, e.g.
    ``{"methods.my_unlearn.lr": 1e-3, "attack.steps": 50}``.

    A failed full run ends the evaluation (its error propagates, nothing is written); a
    failed classifier-only or CMF run leaves that variant out of the report, which names its
    error in ``meta["failed"]`` (``illusion evaluate`` then exits with status 1)."""
    exp, name, sets = prepare(method, profile, forget_sets, overrides, store, device)
    p = exp.profile
    variants = variants_of(name)
    failed: dict[str, str] = {}

    def attempt(variant: str, run):
        """``run()``, or None once ``variant`` has failed (recorded in ``failed``)."""
        if variant in failed:
            return None
        try:
            return run()
        except RUN_ERRORS as error:
            failed[variant] = f"{type(error).__name__}: {error}"
            return None

    # Every table with the L-BFGS probe beside the paper's, as the book's Tables 1-3.
    evaluate = partial(exp.evaluate, second_opinion=True)
    original = exp.original()
    rows1, rows2, rows3 = [], [], []
    models = {}
    for fs in sets:
        retrain = exp.retrain(fs)
        refs = [evaluate(original, fs), evaluate(retrain, fs)]
        full = exp.unlearned(name, fs)
        mine = evaluate(full, fs)
        rows1 += [*refs, mine]
        models |= {("original", "full", fs): original, ("retrain", "full", fs): retrain,
                   (name, "full", fs): full}
        rows2 += [*refs, mine.assign(computed_as="full")]
        if "classifier_only" not in variants:
            rows2.append(mine.assign(variant="classifier_only", computed_as="full"))
        elif (learnt := attempt("classifier_only",
                                lambda: exp.unlearned(name, fs, "classifier_only"))) is not None:
            models[name, "classifier_only", fs] = learnt
            rows2.append(evaluate(learnt, fs).assign(computed_as="classifier_only"))
        rows3 += [refs[0], refs[1], mine]
        if "cmf" in variants and (
                under_cmf := attempt("cmf", lambda: exp.unlearned(name, fs, "cmf"))) is not None:
            models[name, "cmf", fs] = under_cmf
            rows3 += [evaluate(exp.cmf_original(), fs), evaluate(under_cmf, fs)]
    table1, table3 = (pd.concat(r, ignore_index=True) for r in (rows1, rows3))
    table2 = pd.concat(rows2, ignore_index=True)
    table2["computed_as"] = table2["computed_as"].fillna(table2["variant"])
    # A variant that failed on one forget set is left out on all of them: a mean over some
    # forget sets only would not be the claim's.
    table2 = table2[~table2["computed_as"].isin(failed)].reset_index(drop=True)
    table3 = table3[~table3["variant"].isin(failed)].reset_index(drop=True)
    models = {k: m for k, m in models.items() if k[1] not in failed}

    singles = [fs for fs in sets if len(fs.classes) == 1]
    attacked = singles[:p.attack.forget_sets]
    attacked_models = {k: m for k, m in models.items() if k[-1] in attacked}
    by = ["model", "variant", "forget_set"]
    if attacked_models:
        def each(measure) -> pd.DataFrame:
            return pd.concat([measure(m, k[-1]) for k, m in attacked_models.items()],
                             ignore_index=True).drop_duplicates()
        curves = pd.concat([exp.relearning_curves(attacked_models),
                            each(lambda m, fs: exp.relearning(m, fs, attacks=FRESH_ATTACKS))],
                           ignore_index=True)
        prototypes = each(exp.prototype_attack)
        auc = pd.concat([recovery_table(curves, by=(*by, "attack")).assign(keeps_retain=True),
                         prototype_recovery(prototypes, by=by)], ignore_index=True)
        over_unlearning, similarity = each(exp.over_unlearning), each(exp.similarity)
    else:
        curves = pd.DataFrame(columns=[*by, "attack", "step", "forget_accuracy",
                                       "retain_accuracy"])
        auc = pd.DataFrame(columns=[*by, "attack", "auc", "keeps_retain"])
        prototypes = pd.DataFrame(columns=[*by, *PROTOTYPE_COLUMNS])
        over_unlearning = pd.DataFrame(columns=[*by, "perturbation", "value"])
        similarity = pd.DataFrame(columns=[*by, "reference", "split", "cka"])
    best = strongest(auc, by=by)

    second = claims.with_second_opinion
    checks = [second(claims.misalignment_checks, table1, methods=(name,)),
              second(claims.classifier_only_checks, table2, methods=(name,)),
              second(claims.cmf_checks, table3, illusion_methods=(name,))]
    if not auc.empty:
        checks.append(second(partial(claims.strongest_attack_checks, auc), table1))
    decided = claims.decide(pd.concat(checks, ignore_index=True), p.name)
    ledger = claims.verdicts(decided, claims=list(SHORT)).drop(columns="chapters")
    meta = {
        "method": name, "origin": getattr(get_method(name), "origin", "built-in"),
        "traits": {"edits_classifier": traits(name).edits_classifier,
                   "image_only": traits(name).image_only, "defence": traits(name).defence,
                   "options": list(traits(name).options)},
        "settings": {v: to_jsonable(p.method(name, v)) for v in variants},
        "variants": [v for v in variants if v not in failed], "profile": p.name, "seed": p.seed,
        "not_applicable": {v: why for v, why in NOT_APPLICABLE.items() if v not in variants},
        "failed": failed,
        "forget_sets": [fs.name for fs in sets],
        "buckets": {"single": [fs.name for fs in sets if len(fs.classes) == 1],
                    "multi": [fs.name for fs in sets if len(fs.classes) > 1]},
        "attacked_forget_sets": [fs.name for fs in attacked], "attack_steps": p.attack.steps,
        "device": str(exp.device), "torch": torch.__version__,
    }
    return MethodReport(meta, table1, table2, table3, curves, auc, prototypes, over_unlearning,
                        similarity, best, decided, ledger)

