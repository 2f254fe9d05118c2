"""The paper's claims checked against our own result tables: every tolerance, check and verdict
of the book, in one home.

Each chapter computes its checks with one function of this module (:func:`setup_checks`,
:func:`misalignment_checks`, :func:`collapse_checks`, :func:`classifier_only_checks`,
:func:`cmf_checks`, :func:`relearning_checks`): one row per check and subject (a method, a
method and a head ``rl/lp``, a method and an attack ``rl:few_shot``) with the measured value,
its threshold from :data:`TOLERANCES` and whether the check applies. :func:`decide` gives each
row its verdict on a profile, :func:`verdict_of` and :func:`verdicts` one verdict per claim;
the chapters' banners, the ledger (:func:`run_ledger`) and ``illusion evaluate`` all read them
here.

Tables (the columns of :meth:`illusion.experiment.Experiment.evaluate`):

- ``results``: model, variant, forget_set, head, split, accuracy [, seconds]; accuracy in percent
  on test retain / test forget; Retrain is ``model == "retrain"``, Original ``"original"``.
- ``relearning``: model, variant, forget_set, attack, auc (:func:`illusion.attacks.recovery_auc`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from .heads import SECOND_OPINION, representation_heads

REFERENCE_MODELS = ("original", "retrain")

# The paper's CIFAR-10 / ResNet-18 single-class means (REFERENCE §9, transcribed (T)):
# (output retain, output forget, LP retain, LP forget, NCC retain, NCC forget); None: unknown.
PAPER_CIFAR10 = {
    ("retrain", "full"): (94.74, 0.00, None, 77.35, 93.31, 47.06),
    ("rl", "full"): (92.93, 0.00, 92.65, 92.49, 92.25, 80.25),
    ("salun", "full"): (93.19, 0.00, 93.05, 92.57, 91.31, 93.70),
    ("scrub", "full"): (91.37, 0.00, 91.71, 74.79, 89.96, 55.30),
    ("neggrad_plus", "full"): (92.85, 0.00, None, None, 91.33, 52.00),
    ("unsir", "full"): (91.84, 0.48, None, None, 89.73, 62.72),
    ("rl", "cmf"): (94.27, 80.70, 94.19, 85.71, 94.25, 82.04),
    ("salun", "cmf"): (94.33, 78.07, 94.26, 84.68, 94.32, 79.50),
    ("neggrad_plus", "cmf"): (91.87, 54.50, 92.35, 68.02, 91.99, 57.83),
    ("scrub", "cmf"): (92.51, 33.78, 92.48, 60.68, 92.48, 35.53),
    ("unsir", "cmf"): (91.79, 12.91, 91.63, 31.16, 91.87, 9.29),
}


def paper_results() -> pd.DataFrame:
    """The paper's CIFAR-10 single-class means (T) as a ``results`` table (forget_set
    ``"mean"``), rows with unknown values left out."""
    cells = [(h, s) for h in ("output", "lp", "ncc") for s in ("retain", "forget")]
    rows = [{"model": model, "variant": variant, "forget_set": "mean", "head": h, "split": s,
             "accuracy": value}
            for (model, variant), values in PAPER_CIFAR10.items()
            for (h, s), value in zip(cells, values) if value is not None]
    return pd.DataFrame(rows)


# The paper's ViT-S/16 appendix table (REFERENCE §9b, transcribed (T); the same numbers as the
# authors' ``table_mean_only.tex``): timm's ImageNet-pretrained ``vit_small_patch16_224``, the
# Original fine-tuned on the whole training set, Retrain the same pretrained backbone fine-tuned
# on D_r; mean over the forget sets of each bucket. Heads: the model's own classifier ("Full"),
# the LP and the nearest class centre ("NC"). The paper runs only RL, SalUn and NegGrad+ on ViT.
PAPER_VIT_DATASETS = ("cifar10", "cifar100", "tinyimagenet")  # as the profiles' data.name
PAPER_VIT_COLUMNS = tuple((dataset, bucket, split) for dataset in PAPER_VIT_DATASETS
                          for bucket in ("single", "multi") for split in ("retain", "forget"))
# (model, head): one value per column of PAPER_VIT_COLUMNS, i.e. C10-1 R, C10-1 F, C10-3 R,
# C10-3 F, C100-1 R, C100-1 F, C100-10 R, C100-10 F, Tiny-1 R, Tiny-1 F, Tiny-20 R, Tiny-20 F.
PAPER_VIT = {
    ("original", "output"): (98.20, 98.20, 98.16, 98.29, 90.09, 92.00, 90.09, 90.32, 84.90, 79.20, 84.81, 85.44),
    ("original", "lp"): (98.17, 98.17, 98.15, 98.22, 89.93, 92.20, 89.94, 90.08, 84.97, 81.20, 84.87, 85.68),
    ("original", "ncc"): (98.06, 98.06, 98.02, 98.15, 89.62, 93.00, 89.67, 89.58, 83.62, 80.40, 83.49, 84.70),
    ("retrain", "output"): (98.46, 0.00, 98.61, 0.00, 89.95, 0.00, 90.10, 0.00, 83.85, 0.00, 84.14, 0.00),
    ("retrain", "lp"): (98.28, 97.71, 98.17, 97.35, 90.32, 90.80, 90.13, 87.82, 84.47, 77.60, 84.45, 81.44),
    ("retrain", "ncc"): (98.12, 94.24, 97.98, 94.51, 89.24, 87.80, 89.31, 81.88, 82.93, 74.80, 82.74, 78.64),
    ("rl", "output"): (98.50, 0.00, 98.69, 0.00, 90.59, 0.00, 90.79, 0.10, 85.87, 7.20, 86.23, 16.24),
    ("rl", "lp"): (98.35, 98.64, 98.15, 98.26, 90.47, 94.00, 90.26, 88.32, 85.69, 82.80, 85.57, 85.10),
    ("rl", "ncc"): (97.50, 99.57, 96.46, 97.84, 90.01, 96.00, 89.56, 82.70, 84.22, 82.40, 84.42, 83.92),
    ("salun", "output"): (98.46, 0.00, 98.68, 0.00, 90.58, 0.20, 90.64, 0.18, 85.64, 7.60, 85.99, 15.72),
    ("salun", "lp"): (98.33, 98.59, 98.13, 98.26, 90.36, 93.60, 90.22, 88.24, 85.50, 81.60, 85.33, 84.74),
    ("salun", "ncc"): (97.51, 99.51, 96.61, 97.85, 89.96, 95.60, 89.33, 81.68, 84.16, 82.00, 84.11, 83.46),
    ("neggrad_plus", "output"): (98.00, 0.00, 98.21, 6.63, 89.88, 0.00, 89.85, 6.14, 85.12, 0.00, 85.48, 0.52),
    ("neggrad_plus", "lp"): (98.03, 96.15, 97.57, 95.76, 90.24, 87.20, 89.96, 82.98, 84.95, 75.20, 84.74, 67.50),
    ("neggrad_plus", "ncc"): (94.88, 87.05, 93.86, 73.38, 89.00, 86.80, 89.20, 43.40, 83.29, 84.40, 82.94, 57.16),
}


def paper_vit_results(dataset: str) -> pd.DataFrame:
    """The paper's ViT-S/16 appendix means (T) of ``dataset`` (a profile's ``data.name``:
    ``cifar10``, ``cifar100`` or ``tinyimagenet``) as a ``results`` table, one row per model,
    bucket, head and split, with a ``bucket`` column (``single``, ``multi``) and forget_set
    ``"single mean"`` or ``"multi mean"`` (a bucket's mean)."""
    if dataset not in PAPER_VIT_DATASETS:
        raise ValueError(f"the paper's ViT-S/16 appendix has no dataset {dataset!r}; valid "
                         f"choices: {list(PAPER_VIT_DATASETS)}")
    rows = [{"model": model, "variant": "full", "forget_set": f"{bucket} mean", "head": head,
             "split": split, "accuracy": value, "bucket": bucket}
            for (model, head), values in PAPER_VIT.items()
            for (d, bucket, split), value in zip(PAPER_VIT_COLUMNS, values) if d == dataset]
    return pd.DataFrame(rows)


def vit_appendix_applies(profile) -> bool:
    """Whether the paper's numbers for ``profile`` are its ViT-S/16 appendix's
    (:func:`paper_vit_results`) rather than its ResNet-18 table's (:func:`paper_results`): the
    profile's model is a vision transformer (``timm:vit_*``, ``torchvision:vit_*``)."""
    return profile.model.arch.partition(":")[2].startswith("vit")


def paper_lowered_heads() -> dict[str, tuple[str, ...]]:
    """For each method with a CMF variant in the paper's table, the representation heads whose
    forget accuracy the paper itself reports lower under CMF than without (both numbers known):
    RL LP; SalUn and SCRUB LP and NCC; UNSIR NCC; NegGrad+ none (its NCC rises, 52.00 to
    57.83, and its LP is unknown)."""
    lowered = {}
    for (method, variant), cmf_row in PAPER_CIFAR10.items():
        full_row = PAPER_CIFAR10.get((method, "full"))
        if variant != "cmf" or full_row is None:
            continue
        lowered[method] = tuple(head for head, col in (("lp", 3), ("ncc", 5))
                                if None not in (cmf_row[col], full_row[col])
                                and cmf_row[col] < full_row[col])
    return lowered


# --------------------------------------------------------------------------------------------
# Tolerances: the book's thresholds, each with its reason (one home; the chapters, the ledger
# and benchmarks/seed_spread.py read them from here)


@dataclass(frozen=True)
class Tolerance:
    """``value <op> threshold`` is what the check asserts. ``exact``: true by construction
    (bitwise equality, a monotonicity the theory derives), so it holds on every seed and no
    spread applies."""

    claim: str
    text: str
    op: str
    threshold: float
    unit: str
    reason: str
    exact: bool = False

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {list(_OPS)}, got {self.op!r}")

    def holds(self, value: float) -> bool:
        return bool(not pd.isna(value) and _OPS[self.op](value, self.threshold))


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}

TOLERANCES: dict[str, Tolerance] = {
    # Chapter 1: the setting.
    "original_accuracy": Tolerance(
        "setup", "Original test accuracy", ">=", 88.0, "%",
        "a weak Original makes every later number meaningless; 88% is what the default model "
        "reaches on Fashion-MNIST at this budget with room for its seed spread"),
    "probe_gap_retain": Tolerance(
        "setup", "|L-BFGS - SGD probe| on retain, mean over the Original and the Retrains", "<=",
        1.0, "pp", "the second opinion (L-BFGS) agrees with the paper's SGD probe on models "
                   "whose features no unlearning touched"),
    "probe_gap_forget": Tolerance(
        "setup", "|L-BFGS - SGD probe| on forget, mean over the Original and the Retrains", "<=",
        3.0, "pp", "200 test images per class (one image is 0.5 pp); the probes differ most on "
                   "the confusable forget classes"),
    # Chapter 2: claim 1, for RL and SalUn, means over the forget sets.
    "claim1_output_forget": Tolerance(
        "1", "output forget accuracy", "<=", 5.0, "%",
        "the paper's methods reach ~0 (REFERENCE §9); 5% is output-level success"),
    "claim1_output_retain_change": Tolerance(
        "1", "|output retain - Original's|", "<=", 3.0, "pp",
        "unlearning that costs the retain classes is not the paper's setting"),
    "claim1_above_retrain": Tolerance(
        "1", "LP/NCC forget - Retrain's", ">=", 5.0, "pp",
        "the features still separate the forgotten class better than a model that never saw it"),
    "claim1_below_original": Tolerance(
        "1", "Original's - LP/NCC forget", "<=", 10.0, "pp",
        "most of what the Original's features knew about the class is still there"),
    # Chapter 3: the theory of claim 2 on the Original's features, per single-class forget set.
    "ga_forget_reached": Tolerance(
        "2", "lowest test forget accuracy of GA on the forget row with retain within 2 pp", "<=",
        5.0, "%", "a classifier-only change suffices on this model"),
    "ga_forget_monotone": Tolerance(
        "2", "largest rise of forget accuracy along GA (non-negative features)", "<=", 0.0, "pp",
        "derived in chapter 3 for non-negative features", exact=True),
    "ga_retain_monotone": Tolerance(
        "2", "largest fall of retain accuracy along GA (non-negative features)", "<=", 0.0, "pp",
        "derived in chapter 3 for non-negative features", exact=True),
    # Chapter 4: claim 2, classifier-only RL and NegGrad+, means over the forget sets.
    "claim2_output_forget": Tolerance(
        "2", "classifier-only output forget accuracy", "<=", 5.0, "%",
        "the classifier alone reaches output-level forgetting"),
    "claim2_output_retain_change": Tolerance(
        "2", "classifier-only output retain - Original's", ">=", -2.0, "pp",
        "retain accuracy unchanged, as neural collapse predicts"),
    "claim2_heads_unchanged": Tolerance(
        "2", "largest |LP/NCC - Original's| of a classifier-only model", "<=", 0.0, "pp",
        "the backbone is frozen", exact=True),
    "claim2_features_identical": Tolerance(
        "2", "penultimate features bitwise the Original's (1 = yes)", ">=", 1.0, "",
        "the backbone is frozen", exact=True),
    "claim2_forget_alignment_change": Tolerance(
        "2", "forget row's cos(w, class mean) - Original's", "<=", -0.5, "",
        "the forget row turns away from its unchanged class mean"),
    "claim2_retain_alignment_change": Tolerance(
        "2", "retain rows' cos(w, class mean) - Original's", ">=", -0.1, "",
        "the retain rows stay where they were"),
    "claim2_nc4_forget_change": Tolerance(
        "2", "classifier-NCC disagreement on forget - Original's", ">=", 30.0, "pp",
        "the classifier no longer reads the features on the forget class"),
    "claim2_nc4_retain_change": Tolerance(
        "2", "classifier-NCC disagreement on retain - Original's", "<=", 3.0, "pp",
        "it still reads them on the retain classes"),
    # Chapter 5: claim 3, CMF variants against their base methods, means over the forget sets.
    "claim3_tracks": Tolerance(
        "3", "|output forget - NCC forget| under CMF", "<=", 5.0, "pp",
        "a class-mean head can only forget what the features forget; the paper's largest gap "
        "is 3.6 pp (UNSIR + CMF)"),
    "claim3_lowers": Tolerance(
        "3", "LP/NCC forget under CMF - the base method's", "<", 0.0, "pp",
        "without the shortcut, forgetting must move the features (on the heads where the "
        "paper's own numbers fall)"),
    "claim3_illusion": Tolerance(
        "3", "output forget under CMF / the CMF Original's", ">=", 0.5, "x",
        "RL and SalUn barely forget once the classifier shortcut is gone"),
    "cmf_original_closeness": Tolerance(
        "3", "|CMF Original - Original| on the whole test split", "<=", 3.0, "pp",
        "the CMF Original must be the same model, only its head replaced"),
    "cmf_head_agreement": Tolerance(
        "3", "CMF head agrees with the cosine nearest class mean", ">=", 99.0, "%",
        "the CMF head is a nearest-class-mean classifier (bf16 on a GPU may flip near-ties)"),
    # Chapter 6: claim 4, high-LP methods (claim 1's LP gap >= 10 pp) under relearning.
    "claim4_auc_gain": Tolerance(
        "4", "recovery AUC - Retrain's (few-shot, head-only)", ">", 0.0, "pp",
        "what the features kept comes back faster than in a model that never saw it"),
    # Evaluations of a method (illusion evaluate): claim 4 under the strongest attack.
    "claim4_strongest_gain": Tolerance(
        "4", "strongest attack's recovery - Retrain's strongest", ">", 0.0, "pp",
        "the attack that recovers the most (fine-tuning from the unlearned or a fresh head, or a "
        "prototype that keeps the retain classes) gives back more than it can from Retrain"),
    # Chapter 7 (ours, beyond the paper): probes a classifier edit cannot fool.
    "prototype_gain": Tolerance(
        "beyond", "prototype-attack recovery - Retrain's", ">", 0.0, "pp",
        "what the features kept comes back with no training at all, more than from a model that "
        "never saw the class (the strongest prototype that keeps the retain classes)"),
    "defence_prototype_gain": Tolerance(
        "beyond", "the defence's prototype-attack recovery - Retrain's", "<=", 0.0, "pp",
        "a defence built against the prototype attack (Spotter) gives back no more than Retrain"),
    "defence_ou_ratio": Tolerance(
        "beyond", "the defence's OU@ε (PGD) / Retrain's", "<", 1.0, "x",
        "its masked distillation keeps what the model says near the forget class (Ha et al.: "
        "below 0.05x the baseline on CIFAR-10)"),
    "defence_above_retrain": Tolerance(
        "beyond", "the defence's LP/NCC forget - Retrain's", ">=", 5.0, "pp",
        "the open question: a defence against prototypes may still leave the class to a linear "
        "probe or a nearest class mean, as claim 1 finds for the paper's methods"),
}
HIGH_LP_MARGIN = 10.0  # pp of LP forget above Retrain's that make a method "high-LP" (claim 4)
# pp of retain accuracy a run may lose and still count as keeping it: where chapter 3 reads GA's
# forget accuracy, and whether chapter 4's retain and evidence checks apply to a method (one
# whose own full run loses more has settings at fault, not the classifier-only question).
RETAIN_KEPT = 2.0


# --------------------------------------------------------------------------------------------
# Helpers on tidy tables


def _rows(table: pd.DataFrame, model: str, variant: str = "full") -> pd.DataFrame:
    return table[(table["model"] == model) & (table["variant"] == variant)]


def _forget_sets(*tables: pd.DataFrame) -> list[str]:
    """Forget sets present in every table (the fair basis for a mean)."""
    common = None
    for t in tables:
        sets = set(t["forget_set"].astype(str))
        common = sets if common is None else common & sets
    return sorted(common or ())


def _mean(rows: pd.DataFrame, head: str, split: str, forget_sets) -> float:
    """Mean accuracy over ``forget_sets`` for one head x split (NaN when absent)."""
    sel = rows[(rows["head"] == head) & (rows["split"] == split)
               & rows["forget_set"].astype(str).isin(forget_sets)]
    return float(sel["accuracy"].mean()) if len(sel) else float("nan")


def _heads(rows: pd.DataFrame, *others: pd.DataFrame) -> list[str]:
    """Representation heads present for every table given."""
    return [h for h in representation_heads()
            if all((t["head"] == h).any() for t in (rows, *others))]


def _methods(table: pd.DataFrame, variant: str) -> list[str]:
    """The unlearning methods (not Original, not Retrain) with rows of ``variant``."""
    return sorted(set(table.loc[table["variant"] == variant, "model"]) - set(REFERENCE_MODELS))


# --------------------------------------------------------------------------------------------
# The book's checks: every number a chapter asserts, with its tolerance and the reason for it
#
# A chapter computes its checks with one function below (the same function
# :func:`run_checks` applies to a finished run's saved tables), shows them with
# :func:`decide` and asserts them with :func:`enforce`. A threshold must sit outside the range
# its quantity took over seeds, with room: ``benchmarks/seed_spread.py`` measures that range
# (``benchmarks/results/seed_spread.csv``), and a quantity whose spread does not clear its
# threshold by :data:`DECIDED_STDS` standard deviations is declared in :data:`NOT_DECIDED`
# instead of asserted. tests/test_spread.py fails when a declaration and the measured spread
# disagree, so a threshold moved inside the spread is caught in CI.


VERDICTS = ("holds", "fails", "not decided", "not applicable")

# Profile -> (check, subject) pairs whose quantity's spread over seeds does not clear the
# threshold (benchmarks/results/seed_spread.csv; :func:`measured_status`): one run cannot decide
# them, so they are shown with their spread, never asserted.
NOT_DECIDED: dict[str, frozenset[tuple[str, str]]] = {
    # Five seeds (1234-1238) on this book's AVX-512 CPU at 0fbdbf5, the paper's SGD probe
    # deciding LP (benchmarks/results/seed_spread.csv), as benchmarks/seed_spread.py prints
    # them: mean ± std [min, max] over the seeds. Most hold on every seed, but with the mean
    # less than DECIDED_STDS std from the threshold: the relearning gains of claim 4 and the
    # prototype attack's vary by 5-25 pp from seed to seed.
    "default": frozenset({
        # 9.68 ± 1.67 [7.28, 11.94] against >= 5
        ("claim1_above_retrain", "salun/lp"),
        # -0.67 ± 0.54 [-1.25, -0.05] against >= -2
        ("claim2_output_retain_change", "rl"),
        # -2.77 ± 0.98 [-3.61, -1.11] against < 0
        ("claim3_lowers", "salun/lp"),
        # 0.22 ± 1.46 [-1.72, 2.33] against < 0
        ("claim3_lowers", "scrub/lp"),
        # 3.06 ± 3.51 [-2.67, 5.67] against < 0
        ("claim3_lowers", "scrub/ncc"),
        # 3.07 ± 1.07 [2.28, 4.72] against <= 5
        ("claim3_tracks", "neggrad_plus"),
        # 1.81 ± 1.41 [0.67, 4.17] against <= 5
        ("claim3_tracks", "unsir"),
        # 25.35 ± 9.73 [11.50, 36.50] against > 0
        ("claim4_auc_gain", "neggrad_plus:few_shot"),
        # 5.28 ± 3.21 [1.44, 9.12] against > 0
        ("claim4_auc_gain", "neggrad_plus:head_only"),
        # 31.32 ± 10.70 [21.69, 47.62] against > 0
        ("claim4_auc_gain", "retain_ft:few_shot"),
        # 21.00 ± 10.80 [7.44, 35.75] against > 0
        ("claim4_auc_gain", "rl:few_shot"),
        # 8.80 ± 3.28 [6.38, 14.31] against > 0
        ("claim4_auc_gain", "rl:head_only"),
        # 22.93 ± 11.19 [7.19, 37.25] against > 0
        ("claim4_auc_gain", "salun:few_shot"),
        # 27.26 ± 9.13 [14.00, 35.50] against > 0
        ("claim4_auc_gain", "unsir:few_shot"),
        # 12.72 ± 8.18 [5.62, 22.81] against > 0
        ("claim4_auc_gain", "unsir:head_only"),
        # 34.78 ± 23.92 [15.85, 63.35] against > 0
        ("claim4_strongest_gain", "ga"),
        # 12.12 ± 5.21 [6.70, 18.15] against > 0
        ("claim4_strongest_gain", "neggrad_plus"),
        # 18.69 ± 21.00 [0.50, 54.80] against > 0
        ("claim4_strongest_gain", "rl"),
        # 11.30 ± 5.14 [3.45, 17.60] against > 0
        ("claim4_strongest_gain", "salun"),
        # 20.72 ± 7.70 [11.75, 31.75] against > 0
        ("claim4_strongest_gain", "unsir"),
        # 1.65 ± 0.66 [0.80, 2.50] against <= 3
        ("cmf_original_closeness", "output"),
        # 89.33 ± 0.62 [88.25, 89.75] against >= 88
        ("original_accuracy", "original"),
        # 2.00 ± 0.86 [0.96, 3.29] against <= 3
        ("probe_gap_forget", "lp"),
        # 0.42 ± 0.24 [0.10, 0.70] against <= 1
        ("probe_gap_retain", "lp"),
        # 33.61 ± 25.03 [12.60, 63.35] against > 0
        ("prototype_gain", "ga"),
        # 5.00 ± 5.47 [-2.62, 11.23] against > 0
        ("prototype_gain", "neggrad_plus"),
        # 16.70 ± 21.77 [0.50, 54.80] against > 0
        ("prototype_gain", "rl"),
        # 6.64 ± 5.13 [-0.18, 12.58] against > 0
        ("prototype_gain", "salun"),
        # 20.25 ± 8.03 [11.75, 31.75] against > 0
        ("prototype_gain", "unsir"),
    }),
    # The 88% floor is Fashion-MNIST's at the default budget (and well below CIFAR-10's ~95%).
    # A ResNet-18 on CIFAR-100 and a ResNet-50 on Tiny-ImageNet end far lower at the paper's
    # recipes, and no run of ours has measured them yet (no GPU): shown, not asserted, until a
    # GPU run measures their floor and spread (benchmarks/seed_spread.py).
    "paper-cifar100": frozenset({("original_accuracy", "original")}),
    "paper-tinyimagenet": frozenset({("original_accuracy", "original")}),
    # The ViT-S/16 appendix: no run of ours has measured it (no GPU). The paper's own means
    # (PAPER_VIT, chapter 2) fail these checks: pretrained features keep Retrain's LP forget at
    # 77.6-97.7%, so RL's and SalUn's LP/NCC stay within 5 pp of it (CIFAR-10 single: RL LP
    # +0.93, SalUn LP +0.88; CIFAR-100 multi: SalUn NCC -0.20), and on Tiny-ImageNet RL and
    # SalUn leave 7.2-16.2% output forget accuracy and the Original ends at 84.9%, under
    # Fashion-MNIST's 88% floor. Shown, not asserted, until a GPU run measures their spread.
    **{name: frozenset({("claim1_above_retrain", f"{m}/{h}") for m in ("rl", "salun")
                        for h in ("lp", "ncc")}
                       | ({("claim1_output_forget", "rl"), ("claim1_output_forget", "salun"),
                           ("original_accuracy", "original")}
                          if name.endswith("tinyimagenet") else set()))
       for name in ("paper-vit", "paper-vit-cifar100", "paper-vit-tinyimagenet")},
}
# Profile -> (check, subject) pairs measured to fail on every seed, with room: a claim that
# does not hold on that profile after a faithful implementation. Shown; the build fails if
# one of them holds (the list must then shrink).
FAILS: dict[str, frozenset[tuple[str, str]]] = {
    "default": frozenset({
        # Spotter gives back more than Retrain under the prototype attack on every seed:
        # 9.06 ± 2.99 [5.30, 12.62] against <= 0 (chapter 7).
        ("defence_prototype_gain", "spotter"),
    }),
}

CHECK_COLUMNS = ["claim", "check", "subject", "text", "value", "op", "threshold", "unit",
                 "applies"]


def _checks(rows) -> pd.DataFrame:
    """(check, subject, value[, applies]) tuples as a checks table."""
    records = []
    for row in rows:
        check, subject, value, applies = (*row, True) if len(row) == 3 else row
        tol = TOLERANCES[check]
        records.append({"claim": tol.claim, "check": check, "subject": str(subject),
                        "text": tol.text, "value": float(value), "op": tol.op,
                        "threshold": tol.threshold, "unit": tol.unit, "applies": bool(applies)})
    return pd.DataFrame(records, columns=CHECK_COLUMNS)


def setup_checks(original_accuracy: float, probes: pd.DataFrame) -> pd.DataFrame:
    """Chapter 1: the Original's test accuracy and the L-BFGS vs SGD probe gap per split on
    the references, the Original and the Retrains (``probes``: the LP rows of each model with
    a ``probe`` column, ``lbfgs`` or ``sgd``; rows of other models are shown, not checked)."""
    references = probes["model"].isin(REFERENCE_MODELS)
    if "variant" in probes:
        references &= probes["variant"] == "full"
    table = probes[references].pivot_table(index=["model", "forget_set", "split"],
                                           columns="probe", values="accuracy")
    gap = (table["lbfgs"] - table["sgd"]).abs().groupby(level="split").mean()
    return _checks([("original_accuracy", "original", original_accuracy),
                    ("probe_gap_retain", "lp", gap["retain"]),
                    ("probe_gap_forget", "lp", gap["forget"])])


def misalignment_checks(results: pd.DataFrame, methods=("rl", "salun")) -> pd.DataFrame:
    """Chapter 2: claim 1 for ``methods`` (full; RL and SalUn, the two methods the paper
    singles out), every accuracy a mean over the forget sets."""
    grouped = results.groupby(["model", "head", "split"])["accuracy"].mean()
    mean = lambda *cell: grouped.get(cell, float("nan"))  # noqa: E731  NaN: not reported
    rows = []
    for m in methods:
        rows += [("claim1_output_forget", m, mean(m, "output", "forget")),
                 ("claim1_output_retain_change", m,
                  abs(mean(m, "output", "retain") - mean("original", "output", "retain")))]
        for h in representation_heads():
            rows += [("claim1_above_retrain", f"{m}/{h}",
                      mean(m, h, "forget") - mean("retrain", h, "forget")),
                     ("claim1_below_original", f"{m}/{h}",
                      mean("original", h, "forget") - mean(m, h, "forget"))]
    return _checks(rows)


def collapse_checks(dynamics: pd.DataFrame, forget_sets, nonnegative: bool) -> pd.DataFrame:
    """Chapter 3: GA on the forget row of the Original's classifier, per forget set of
    ``forget_sets`` (``dynamics``: run, forget_set, step, forget_accuracy, retain_accuracy);
    the monotonicity applies to non-negative features."""
    ga = dynamics[dynamics["run"] == "GA on the forget rows"].assign(
        forget_set=lambda t: t["forget_set"].astype(str)).drop_duplicates(["forget_set", "step"])
    rows = []
    for fs in map(str, forget_sets):
        part = ga[ga["forget_set"] == fs].sort_values("step")
        if part.empty:
            continue
        start = part.iloc[0]
        near = part[part["retain_accuracy"] >= start["retain_accuracy"] - RETAIN_KEPT]
        rows += [("ga_forget_reached", fs, near["forget_accuracy"].min()),
                 ("ga_forget_monotone", fs, part["forget_accuracy"].diff().max(), nonnegative),
                 ("ga_retain_monotone", fs, -part["retain_accuracy"].diff().min(), nonnegative)]
    return _checks(rows)


def classifier_only_checks(results: pd.DataFrame, geometry: pd.DataFrame | None = None,
                           methods=("rl", "neggrad_plus"),
                           features_identical: bool | None = None) -> pd.DataFrame:
    """Chapter 4: claim 2 for classifier-only ``methods``, means over the forget sets, and,
    with ``geometry`` (model, alignment_forget/retain, nc4_forget/retain), its evidence as
    changes from the Original. The retain and evidence checks apply only to a method whose own
    full run keeps its retain accuracy (:data:`RETAIN_KEPT`). Every classifier-only model's LP
    and NCC equal the Original's (``computed_as == "classifier_only"`` rows: actually
    evaluated)."""
    output = results[results["head"] == "output"]
    reference = output[output["model"] == "original"].groupby("split")["accuracy"].mean()
    rows = []
    for m in methods:
        mine = output[(output["model"] == m) & (output["variant"] == "classifier_only")]
        mine = mine.groupby("split")["accuracy"].mean()
        full = output[(output["model"] == m) & (output["variant"] == "full")]
        applies = (full.groupby("split")["accuracy"].mean()["retain"] - reference["retain"]
                   >= -RETAIN_KEPT)
        rows += [("claim2_output_forget", m, mine["forget"]),
                 ("claim2_output_retain_change", m, mine["retain"] - reference["retain"], applies)]
        if geometry is not None:
            shape = geometry.groupby("model")[["alignment_forget", "alignment_retain",
                                               "nc4_forget", "nc4_retain"]].mean()
            change = shape.loc[m] - shape.loc["original"]
            rows += [("claim2_forget_alignment_change", m, change["alignment_forget"], applies),
                     ("claim2_retain_alignment_change", m, change["alignment_retain"], applies),
                     ("claim2_nc4_forget_change", m, change["nc4_forget"], applies),
                     ("claim2_nc4_retain_change", m, change["nc4_retain"], applies)]
    heads = results[results["head"].isin(representation_heads())].assign(
        forget_set=lambda t: t["forget_set"].astype(str))
    keys = ["forget_set", "head", "split"]
    base = heads[heads["model"] == "original"].set_index(keys)["accuracy"]
    learnt = heads[(heads["variant"] == "classifier_only")
                   & (heads["computed_as"] == "classifier_only")]
    for m, part in learnt.groupby("model", sort=False):
        rows.append(("claim2_heads_unchanged", m,
                     (part.set_index(keys)["accuracy"] - base).dropna().abs().max()))
    if features_identical is not None:
        rows.append(("claim2_features_identical", "rl", float(features_identical)))
    return _checks(rows)


def cmf_checks(results: pd.DataFrame, closeness: pd.DataFrame | None = None,
               agreement: float | None = None, illusion_methods=("rl", "salun"),
               lowered_heads: Mapping[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Chapter 5: the three parts of claim 3 for each method with ``variant == "cmf"`` rows and
    ``"full"`` rows (its base), mean forget accuracies over their shared forget sets:

    - ``claim3_tracks`` (subject: the method): output forget against NCC forget under CMF (a
      class-mean head can only forget what the features forget);
    - ``claim3_lowers`` (``method/head``): LP / NCC forget under CMF minus the base method's, on
      the heads where the paper's own numbers fall (``lowered_heads``, default
      :func:`paper_lowered_heads`; every head for a method the paper does not report);
    - ``claim3_illusion`` (the method, for ``illusion_methods``: RL and SalUn): output forget
      under CMF over that of the model it starts from, the CMF Original (``original`` /
      ``cmf`` rows; else the Original; else 100%, as for the paper's table, which does not give
      it): without the classifier shortcut they barely forget.

    With ``closeness`` (head, difference of the CMF Original from the Original on the whole
    test split) and ``agreement`` (% of the test on which its head is the cosine nearest class
    mean), the CMF Original's checks too."""
    lowered_heads = paper_lowered_heads() if lowered_heads is None else lowered_heads
    rows = []
    for m in _methods(results, "cmf"):
        cmf, full = _rows(results, m, "cmf"), _rows(results, m)
        sets, heads = _forget_sets(cmf, full), _heads(cmf, full)
        if not sets or "ncc" not in heads:
            continue
        out = _mean(cmf, "output", "forget", sets)
        rows.append(("claim3_tracks", m, abs(out - _mean(cmf, "ncc", "forget", sets))))
        rows += [("claim3_lowers", f"{m}/{h}",
                  _mean(cmf, h, "forget", sets) - _mean(full, h, "forget", sets))
                 for h in lowered_heads.get(m, tuple(heads)) if h in heads]
        if m in illusion_methods:
            start = next((r for r in (_rows(results, "original", "cmf"), _rows(results, "original"))
                          if not r.empty and _forget_sets(r, cmf) == sets), None)
            before = 100.0 if start is None else _mean(start, "output", "forget", sets)
            rows.append(("claim3_illusion", m, out / before if before > 0 else float("inf")))
    if closeness is not None:
        rows += [("cmf_original_closeness", h, abs(d))
                 for h, d in zip(closeness["head"], closeness["difference"])]
    if agreement is not None:
        rows.append(("cmf_head_agreement", "cmf_original", agreement))
    return _checks(rows)


def relearning_checks(relearning: pd.DataFrame, results: pd.DataFrame,
                      attacks=("few_shot", "head_only"), variants=("full",)) -> pd.DataFrame:
    """Chapter 6: claim 4. For every method in each of ``variants`` (the claim is about the
    methods in full), under each attack of ``attacks``: its mean recovery AUC minus Retrain's
    over their shared forget sets (subject ``method:attack``, ``method/variant:attack`` outside
    the full variant); it applies to the high-LP ones (mean LP forget of that variant >=
    :data:`HIGH_LP_MARGIN` pp above Retrain's in ``results``)."""
    attacked = relearning[relearning["attack"].isin(attacks)]
    retrain, base = _rows(attacked, "retrain"), _rows(results, "retrain")
    rows = []
    for variant in variants:
        for m in _methods(attacked, variant):
            mine = _rows(results, m, variant)
            sets = _forget_sets(mine, base)
            lp_gap = _mean(mine, "lp", "forget", sets) - _mean(base, "lp", "forget", sets)
            unit = m if variant == "full" else f"{m}/{variant}"
            for attack in attacks:
                a = _rows(attacked, m, variant)
                a, r = a[a["attack"] == attack], retrain[retrain["attack"] == attack]
                shared = _forget_sets(a, r)
                if not shared:
                    continue
                gain = (a[a["forget_set"].astype(str).isin(shared)]["auc"].mean()
                        - r[r["forget_set"].astype(str).isin(shared)]["auc"].mean())
                rows.append(("claim4_auc_gain", f"{unit}:{attack}", gain,
                             lp_gap >= HIGH_LP_MARGIN))
    return _checks(rows)


def _high_lp(results: pd.DataFrame, method: str, variant: str = "full") -> bool:
    """Whether ``method``'s mean LP forget accuracy is :data:`HIGH_LP_MARGIN` pp above
    Retrain's over their shared forget sets (claim 4's units)."""
    mine, base = _rows(results, method, variant), _rows(results, "retrain")
    sets = _forget_sets(mine, base)
    return _mean(mine, "lp", "forget", sets) - _mean(base, "lp", "forget", sets) >= HIGH_LP_MARGIN


def _strongest_gain(recovery: pd.DataFrame, method: str, variant: str = "full") -> float:
    """Mean over the forget sets ``method`` shares with Retrain of (its strongest attack's
    recovery - Retrain's strongest), ``recovery``: attacks stacked, with ``keeps_retain``
    where it applies (:func:`illusion.attacks.strongest`)."""
    from .attacks import strongest

    best = strongest(recovery, by=("model", "variant", "forget_set"))
    mine, base = _rows(best, method, variant), _rows(best, "retrain")
    sets = _forget_sets(mine, base)
    pick = lambda t: t[t["forget_set"].astype(str).isin(sets)]["auc"].mean()  # noqa: E731
    return float(pick(mine) - pick(base)) if sets else float("nan")


def strongest_attack_checks(recovery: pd.DataFrame, results: pd.DataFrame,
                            variants=("full",)) -> pd.DataFrame:
    """``illusion evaluate``'s claim 4: for every method of ``variants``, the recovery of the
    attack that recovers the most from it minus the most any attack recovers from Retrain
    (``recovery``: fine-tuning AUCs and prototype recoveries stacked, per model, variant,
    forget set and attack), on the high-LP methods of ``results``."""
    rows = []
    for variant in variants:
        for m in _methods(recovery, variant):
            unit = m if variant == "full" else f"{m}/{variant}"
            rows.append(("claim4_strongest_gain", unit, _strongest_gain(recovery, m, variant),
                         _high_lp(results, m, variant)))
    return _checks(rows)


def beyond_checks(prototype: pd.DataFrame, over_unlearning: pd.DataFrame,
                  results: pd.DataFrame, defences=("spotter",)) -> pd.DataFrame:
    """Chapter 7 (ours): for every method in full but the ``defences``, its strongest
    prototype recovery minus Retrain's (``prototype``: :func:`illusion.attacks.
    prototype_recovery` per model, variant and forget set), on the high-LP methods of
    ``results`` (Table 1) as claim 4; for each defence, the same gain, its OU@ε (PGD) over
    Retrain's (``over_unlearning``: model, variant, forget_set, perturbation, value) and its LP and NCC
    forget accuracy above Retrain's, means over the forget sets they share."""
    rows = []
    for m in _methods(prototype, "full"):
        gain = _strongest_gain(prototype, m)
        if m in defences:
            rows.append(("defence_prototype_gain", m, gain))
        else:
            rows.append(("prototype_gain", m, gain, _high_lp(results, m)))
    pgd = over_unlearning[over_unlearning["perturbation"] == "pgd"]
    base_rows = _rows(results, "retrain")
    for d in defences:
        mine, base = _rows(pgd, d), _rows(pgd, "retrain")
        sets = _forget_sets(mine, base)
        if sets:
            pick = lambda t: t[t["forget_set"].astype(str).isin(sets)]["value"].mean()  # noqa: E731
            rows.append(("defence_ou_ratio", d, pick(mine) / pick(base)))
        own = _rows(results, d)
        sets = _forget_sets(own, base_rows)
        for head in _heads(own, base_rows):
            rows.append(("defence_above_retrain", f"{d}/{head}",
                         _mean(own, head, "forget", sets) - _mean(base_rows, head, "forget", sets)))
    return _checks(rows)


def with_second_opinion(check: Callable[..., pd.DataFrame], results: pd.DataFrame,
                        *args, **kwargs) -> pd.DataFrame:
    """``check(results, *args, **kwargs)`` (a chapter's check function on its results table,
    whose ``lp`` head is the paper's SGD probe) with a column ``second_opinion``: the same
    check's value when the rows of the L-BFGS probe (head :data:`illusion.heads.SECOND_OPINION`)
    are read as ``lp`` instead. NaN where ``results`` has no such rows; equal to ``value`` for
    a check that does not read the linear probe. :func:`decide` marks a check whose verdict
    the two probes decide differently."""
    checks = check(results, *args, **kwargs)
    second = results["head"] == SECOND_OPINION
    if not second.any():
        return checks.assign(second_opinion=float("nan"))
    swapped = pd.concat([results[(results["head"] != "lp") & ~second],
                         results[second].assign(head="lp")], ignore_index=True)
    other = check(swapped, *args, **kwargs)[["check", "subject", "value"]]
    return checks.merge(other.rename(columns={"value": "second_opinion"}),
                        on=["check", "subject"], how="left")


DEPENDS_ON_THE_PROBE = "depends on the probe"


def decide(checks: pd.DataFrame, profile: str | None) -> pd.DataFrame:
    """``checks`` with its ``verdict`` on ``profile`` (one of :data:`VERDICTS`) and the
    ``expected`` one: ``not decided`` for the pairs of :data:`NOT_DECIDED`, ``fails`` for
    those of :data:`FAILS`, else ``holds``. ``profile=None`` judges every check by its value
    alone (numbers of no profile of ours, such as the paper's)."""
    undecided, failing = NOT_DECIDED.get(profile, frozenset()), FAILS.get(profile, frozenset())
    verdicts, expected = [], []
    for row in checks.itertuples():
        key = (row.check, row.subject)
        if not row.applies:
            verdicts.append("not applicable"); expected.append("not applicable")
        elif key in undecided:
            verdicts.append("not decided"); expected.append("not decided")
        else:
            verdicts.append("holds" if TOLERANCES[row.check].holds(row.value) else "fails")
            expected.append("fails" if key in failing else "holds")
    decided = checks.assign(verdict=verdicts, expected=expected)
    if "second_opinion" in checks:
        # The verdict the L-BFGS probe's value would give, where it differs from the paper's
        # probe's (a check that does not apply, or is not decided, is neither's).
        decided["probe"] = [
            DEPENDS_ON_THE_PROBE if verdict in ("holds", "fails") and not pd.isna(second)
            and TOLERANCES[check].holds(second) != (verdict == "holds") else ""
            for check, verdict, second in zip(decided["check"], decided["verdict"],
                                              decided["second_opinion"])]
    return decided


def enforce(decided: pd.DataFrame) -> None:
    """Fail unless every verdict of :func:`decide`'s table is the expected one, naming the
    checks that differ."""
    wrong = decided[decided["verdict"] != decided["expected"]]
    if not wrong.empty:
        raise AssertionError("checks whose verdict is not the measured one:\n"
                             + wrong[["check", "subject", "value", "op", "threshold", "verdict",
                                      "expected"]].to_string(index=False))


# --------------------------------------------------------------------------------------------
# The seed spread of the checks


def run_checks(profile: str, run: str) -> pd.DataFrame:
    """The measured (not ``exact``) checks of a finished book run (``run``: its results
    folder, :func:`illusion.results.run_name`), computed from the tables its chapters saved by
    the chapters' own check functions. Used by ``benchmarks/seed_spread.py``."""
    from .config import resolve
    from .paths import results_dir

    folder = results_dir() / run

    def load(chapter: str, name: str) -> pd.DataFrame:
        path = folder / chapter / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run the book on {run!r} first")
        return pd.read_csv(path, keep_default_na=False, na_values=[""])

    config = resolve(profile)
    table1 = load("02_misalignment", "table1")
    closeness = load("05_cmf", "cmf_original_closeness")
    agreement = load("05_cmf", "head_agreement")["agreement_with_cmf_head"].iloc[0]
    probes = load("01_setup", "linear_probes")
    checks = pd.concat([
        setup_checks(load("01_setup", "original")["test_accuracy"].iloc[0], probes),
        misalignment_checks(table1),
        collapse_checks(load("03_neural_collapse", "dynamics_original"),
                        [fs.name for fs in config.buckets.get("single", ())], nonnegative=True),
        classifier_only_checks(load("04_classifier_only", "table2"),
                               load("04_classifier_only", "classifier_geometry")),
        cmf_checks(load("05_cmf", "table3"), closeness, agreement),
        relearning_checks(load("06_relearning", "recovery_auc"), table1),
        beyond_checks(load("07_beyond", "prototype_recovery"), load("07_beyond", "over_unlearning"),
                      table1),
        strongest_attack_checks(load("07_beyond", "attack_recovery"), table1),
    ], ignore_index=True)
    return checks[[not TOLERANCES[c].exact for c in checks["check"]]].reset_index(drop=True)


SPREAD_COLUMNS = ["claim", "check", "subject", "n", "mean", "std", "min", "max", "applies_on",
                  "holds_on", "op", "threshold", "status"]


# How many standard deviations of the seed spread a decided check's mean must lie from its
# threshold. A reader's run is one more draw (another CPU takes other floating-point paths,
# which 22 epochs of training amplify like another seed): with five seeds, a new draw lands
# more than 2 std past the mean about 7% of the time one-sided (Student's t, 4 degrees of
# freedom), more than 3 std about 2.5%. At 2 std, the spread of each of this book's two CPUs
# asserted a check that failed on a seed of the other: the prototype attack's gain on NegGrad+
# (6.5 +- 2.5 over five AVX2 seeds, within 3 std) came out -2.6 on an AVX-512 seed, and the
# strongest attack's gain on SalUn, held on five AVX-512 seeds, -3.3 on an AVX2 seed.
DECIDED_STDS = 3


def measured_status(check: str, mean: float, std: float, lowest: float, highest: float,
                    n: int) -> str:
    """What the spread over ``n`` seeds of one check's quantity decides, with the threshold of
    :data:`TOLERANCES` now: ``holds`` (or ``fails``) when every seed is on that side of the
    threshold (``lowest`` and ``highest`` both are) and the mean is at least
    :data:`DECIDED_STDS` standard deviations from it; else ``not decided``. The quantity is
    measured on every seed, also where its check does not apply (chapter 4's retain condition,
    chapter 6's high-LP methods): whether it applies is decided by another check's quantity,
    and where it does, this is the spread it is judged against."""
    tol = TOLERANCES[check]
    sides = {tol.holds(lowest), tol.holds(highest)}
    if len(sides) > 1 or n < 2 or abs(mean - tol.threshold) < DECIDED_STDS * std:
        return "not decided"
    return "holds" if sides == {True} else "fails"


def spread(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per check and subject of ``per_seed`` (checks tables with a ``seed`` column): the
    number of seeds, mean, standard deviation, min and max of the value, on how many seeds the
    check applied and held, its threshold now, and what the spread decides
    (:func:`measured_status`)."""
    rows = []
    for (check, subject), g in per_seed.groupby(["check", "subject"], sort=False):
        tol = TOLERANCES[check]
        rows.append({"claim": tol.claim, "check": check, "subject": subject, "n": len(g),
                     "mean": g["value"].mean(), "std": g["value"].std(ddof=1),
                     "min": g["value"].min(), "max": g["value"].max(),
                     "applies_on": int(g["applies"].sum()),
                     "holds_on": int(sum(tol.holds(v) for v in g["value"])),
                     "op": tol.op, "threshold": tol.threshold})
        rows[-1]["status"] = measured_status(check, rows[-1]["mean"], rows[-1]["std"],
                                             rows[-1]["min"], rows[-1]["max"], len(g))
    return pd.DataFrame(rows, columns=SPREAD_COLUMNS)


def spread_path() -> Path:
    """The committed seed spread of the default profile's checks."""
    from .paths import project_root

    return project_root() / "benchmarks" / "results" / "seed_spread.csv"


def with_spread(decided: pd.DataFrame, profile: str) -> pd.DataFrame:
    """``decided`` with the committed spread of each check on ``profile`` (mean, std, min,
    max over the seeds of ``benchmarks/seed_spread.py``), where it was measured."""
    path = spread_path()
    if not path.is_file():
        return decided
    measured = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"subject": str})
    measured = measured[measured["profile"] == profile]
    cols = ["check", "subject", "n", "mean", "std", "min", "max"]
    return decided.merge(measured[cols].rename(columns={c: f"seed {c}" for c in cols[2:]}),
                         on=["check", "subject"], how="left")


def report(decided: pd.DataFrame, profile: str) -> pd.DataFrame:
    """A chapter's checks as a reader reads them: the check, its subject, this run's value,
    the threshold, the verdict and, where measured, the value's spread over seeds."""
    t = with_spread(decided, profile)
    shown = pd.DataFrame({
        "check": t["text"], "subject": t["subject"], "this run": t["value"].map("{:.2f}".format),
        "threshold": [f"{op} {th:g} {unit}".strip()
                      for op, th, unit in zip(t["op"], t["threshold"], t["unit"])],
        "verdict": t["verdict"]})
    if "second_opinion" in t and t["second_opinion"].notna().any():
        shown["with the L-BFGS probe"] = [
            "" if pd.isna(v) or v == value else f"{v:.2f}" + (
                f" ({probe})" if isinstance(probe, str) and probe else "")
            for v, value, probe in zip(t["second_opinion"], t["value"], t["probe"])]
    if "seed mean" in t:
        shown["over seeds: mean ± std [min, max]"] = [
            "" if pd.isna(m) else f"{m:.2f} ± {s:.2f} [{lo:.2f}, {hi:.2f}] (n={n:.0f})"
            for m, s, lo, hi, n in zip(t["seed mean"], t["seed std"], t["seed min"],
                                       t["seed max"], t["seed n"])]
    return shown


# --------------------------------------------------------------------------------------------
# One verdict per claim: every chapter's banner, the ledger and the landing page read it here

# The claims in reading order ("setup": the setting's checks of chapter 1).
CLAIM_ORDER = ("setup", "1", "2", "3", "4", "beyond")
STATEMENTS = {
    "setup": "A strong Original, and the paper's SGD probe and a converged L-BFGS probe "
             "agree on it and on Retrain",
    "1": "Standard MU methods reach ~0 output forget accuracy while the penultimate features "
       "stay discriminative (feature-classifier misalignment)",
    "2": "Under neural collapse, changing only the classifier suffices: classifier-only "
       "unlearning gives 0 forget and unchanged retain accuracy",
    "3": "A class-mean-feature (CMF) classifier removes the classifier shortcut",
    "4": "Output-level success hides information that simple fine-tuning brings back",
    "beyond": "Ours, not the paper's: a prototype written into the classifier, with no "
              "training, brings back what the features kept; Spotter, the defence built "
              "against it, should resist it and keeps its outputs near the forget class, yet "
              "its features still give the class to the linear probe and the NCC",
}


def claim_title(claim: str) -> str:
    return {"setup": "The setting", "beyond": "Beyond the paper (ours)"}.get(claim, f"Claim {claim}")


def verdict_of(decided: pd.DataFrame) -> tuple[str, str]:
    """The verdict of a set of decided checks (:func:`decide`) and the counts behind it:
    ``holds`` when every check that applies holds, ``fails`` when every one fails, ``holds in
    part`` when some hold and some fail, ``holds where decided`` when none fails but some are
    not decided, ``not decided`` when none is decided, ``not applicable`` when none applies."""
    applies = decided[decided["verdict"] != "not applicable"]
    counts = applies["verdict"].value_counts()
    n, held = len(applies), int(counts.get("holds", 0))
    failed, undecided = int(counts.get("fails", 0)), int(counts.get("not decided", 0))
    if n == 0:
        return "not applicable", "no check applies"
    verdict = ("holds" if held == n else "fails" if failed == n else
               "not decided" if undecided == n else "holds in part" if failed else
               "holds where decided")
    recorded = int(((applies["expected"] == "fails") & (applies["verdict"] == "fails")).sum())
    parts = [f"{held} of {n} checks hold"]
    if failed:
        parts.append(f"{failed} fail" + (f" ({recorded} measured failing on every seed, "
                                          f"illusion.claims.FAILS)" if recorded else ""))
    if undecided:
        parts.append(f"{undecided} not decided at this scale")
    unexpected = int((applies["verdict"] != applies["expected"]).sum())
    if unexpected:
        parts.append(f"{unexpected} unexpected")
    if "probe" in applies:
        depends = int((applies["probe"] == DEPENDS_ON_THE_PROBE).sum())  # NaN: read back empty
        if depends:
            parts.append(f"{depends} {DEPENDS_ON_THE_PROBE} (the L-BFGS probe would decide "
                         f"{'it' if depends == 1 else 'them'} the other way)")
    return verdict, ", ".join(parts)


def verdicts(decided: pd.DataFrame, claims=None) -> pd.DataFrame:
    """One row per claim of ``claims`` (default: those of ``decided``, checks of one or several
    chapters, with a ``chapter`` column where it has one), in reading order: claim, statement,
    verdict, the counts behind it (:func:`verdict_of`; ``not run`` for a claim without a
    check) and the chapters that computed it."""
    present = set(decided["claim"].astype(str))
    listed = present if claims is None else set(claims)
    unknown = listed - set(CLAIM_ORDER)
    if unknown:
        raise ValueError(f"unknown claim(s) {sorted(unknown)}; valid choices: {list(CLAIM_ORDER)}")
    rows = []
    for claim in [c for c in CLAIM_ORDER if c in listed]:
        mine = decided[decided["claim"].astype(str) == claim]
        verdict, counts = verdict_of(mine) if claim in present else ("not run", "no check ran")
        chapters = sorted(mine["chapter"].unique()) if "chapter" in mine else []
        rows.append({"claim": claim_title(claim), "statement": STATEMENTS[claim],
                     "verdict": verdict, "checks": counts, "chapters": ", ".join(chapters)})
    return pd.DataFrame(rows, columns=["claim", "statement", "verdict", "checks", "chapters"])


def run_ledger(run: str) -> pd.DataFrame:
    """The claims ledger of a finished book run (``run``: its results folder,
    :func:`illusion.results.run_name`): :func:`verdicts` of the checks every chapter saved as
    ``checks.csv``, so a chapter's banner and the ledger cannot disagree."""
    from .paths import results_dir

    saved = sorted((results_dir() / run).glob("*/checks.csv"))
    if not saved:
        raise FileNotFoundError(f"no chapter of run {run!r} saved its checks under "
                                f"{results_dir() / run}: execute the book first")
    checks = pd.concat([pd.read_csv(path, keep_default_na=False, na_values=[""],
                                    dtype={"claim": str, "subject": str})
                        .assign(chapter=path.parent.name) for path in saved], ignore_index=True)
    return verdicts(checks)


def glance_markdown(ledger: pd.DataFrame, run: str) -> str:
    """The landing page's "results at a glance": a Markdown table of :func:`run_ledger`, each
    claim linked to the chapters that decide it."""
    def link(chapter: str) -> str:
        return f"{{doc}}`{chapter[:2]} <{chapter}>`"

    lines = [f"Verdicts of the run `{run}`, computed by the chapters' own checks "
             f"(`illusion.claims`):", "",
             "| claim | verdict | checks | chapters |", "|---|---|---|---|"]
    for row in ledger.itertuples():
        chapters = ", ".join(link(c.strip()) for c in row.chapters.split(",") if c.strip())
        lines.append(f"| **{row.claim}**: {row.statement} | **{row.verdict}** | {row.checks} "
                     f"| {chapters} |")
    return "\n".join(lines) + "\n"


class Banner:
    """A chapter's verdict, shown first-class: a coloured admonition in the rendered book (the
    theme's ``tip``, ``warning`` or ``danger``), a line of text elsewhere."""

    def __init__(self, title: str, text: str, kind: str):
        self.title, self.text, self.kind = title, text, kind

    def _repr_html_(self) -> str:
        import html

        return (f'<div class="admonition {self.kind}"><p class="admonition-title">'
                f"{html.escape(self.title)}</p><p>{html.escape(self.text)}</p></div>")

    def __repr__(self) -> str:
        return f"{self.title}: {self.text}"


def banner(decided: pd.DataFrame, profile: str, what: str) -> Banner:
    """The verdict of a chapter's checks (:func:`verdict_of`, as the ledger words it) on
    ``profile``: ``tip`` when every check holds as expected, ``warning`` when some are not
    decided or fail as measured on every seed, ``danger`` when a verdict is unexpected."""
    verdict, counts = verdict_of(decided)
    unexpected = int((decided["verdict"] != decided["expected"]).sum())
    kind = "danger" if unexpected else "tip" if verdict == "holds" else "warning"
    return Banner(f"{what} on {profile!r}: {verdict}", counts, kind)
