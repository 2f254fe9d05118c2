"""The claims ledger: each claim of the paper checked against our own result tables.

Every claim is a function of tidy tables returning a :class:`Verdict`: what was tested (with
its thresholds), the paper's number where it is known (REFERENCE §9, transcribed, marked
(T)), ours, and whether it ``holds``: ``"yes"``, ``"partial"``, ``"no"`` or ``"not run"``.

A claim is tested on *units* (one unlearning method, or one method x attack); each unit passes
or fails every condition of the claim, and

- ``yes``: every unit passes; ``partial``: some but not all pass; ``no``: none passes;
- ``not run``: the table, or the rows the claim needs (Retrain, Original, a variant), is absent.

Tables (the columns of :meth:`illusion.experiment.Experiment.evaluate`):

- ``results``: model, variant, forget_set, head, split, accuracy [, seconds]; accuracy in percent
  on test retain / test forget; Retrain is ``model == "retrain"``, Original ``"original"``.
- ``relearning``: model, variant, forget_set, attack, auc (:func:`illusion.attacks.recovery_auc`).

Accuracies are averaged over the forget sets a unit shares with its reference (Retrain,
Original or the base method), so a missing forget set never biases a comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import pandas as pd

HOLDS = ("yes", "partial", "no", "not run")
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


@dataclass(frozen=True)
class Verdict:
    """One row of the ledger. ``units`` says which method (or method x attack) passed."""

    claim: int
    statement: str
    paper: str
    ours: str
    holds: str
    units: Mapping[str, bool] = field(default_factory=dict)

    def __post_init__(self):
        if self.holds not in HOLDS:
            raise ValueError(f"holds must be one of {list(HOLDS)}, got {self.holds!r}")


def holds(units: Mapping[str, bool]) -> str:
    """``yes`` when every unit passes, ``partial`` when some do, ``no`` when none does."""
    if not units:
        return "not run"
    passed = sum(bool(v) for v in units.values())
    return "yes" if passed == len(units) else "partial" if passed else "no"


# --------------------------------------------------------------------------------------------
# Helpers on tidy tables


def _check_columns(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks columns {missing}; it has {list(table.columns)}")


def _rows(table: pd.DataFrame, model: str, variant: str = "full") -> pd.DataFrame:
    return table[(table["model"] == model) & (table["variant"] == variant)]


def _forget_sets(*tables: pd.DataFrame) -> list[str]:
    """Forget sets present in every table (the fair basis for a mean)."""
    common = None
    for t in tables:
        sets = set(t["forget_set"].astype(str))
        common = sets if common is None else common & sets
    return sorted(common or ())


def _mean(rows: pd.DataFrame, head: str, split: str, forget_sets, value: str = "accuracy") -> float:
    """Mean of ``value`` over ``forget_sets`` for one head x split (NaN when absent)."""
    sel = rows[(rows["head"] == head) & (rows["split"] == split)
               & rows["forget_set"].astype(str).isin(forget_sets)]
    return float(sel[value].mean()) if len(sel) else float("nan")


def _per_set(rows: pd.DataFrame, head: str, split: str, forget_sets) -> pd.Series:
    sel = rows[(rows["head"] == head) & (rows["split"] == split)
               & rows["forget_set"].astype(str).isin(forget_sets)]
    return sel.assign(fs=sel["forget_set"].astype(str)).groupby("fs")["accuracy"].mean()


def _heads(rows: pd.DataFrame, *others: pd.DataFrame, among=("lp", "ncc")) -> list[str]:
    """Representation heads present for every table given."""
    return [h for h in among if all((t["head"] == h).any() for t in (rows, *others))]


def _methods(table: pd.DataFrame, variant: str, methods=None) -> list[str]:
    present = table.loc[table["variant"] == variant, "model"].unique().tolist()
    present = [m for m in present if m not in REFERENCE_MODELS]
    return [m for m in methods if m in present] if methods is not None else sorted(present)


def _f(value: float) -> str:
    return "nan" if pd.isna(value) else f"{value:.1f}"


def _not_run(claim: int, statement: str, paper: str, why: str) -> Verdict:
    return Verdict(claim, statement, paper, why, "not run")


# --------------------------------------------------------------------------------------------
# Claims


def claim_1(results: pd.DataFrame, methods=("rl", "salun"), max_output_forget: float = 5.0,
            margin: float = 10.0) -> Verdict:
    """Feature-classifier misalignment (REFERENCE §1, claim 1).

    Unit: each method of ``methods`` with ``variant == "full"`` rows. It passes when, averaged
    over the forget sets it shares with Retrain, its output forget accuracy is at most
    ``max_output_forget`` and its forget accuracy under every representation head present (LP,
    NCC) exceeds Retrain's by at least ``margin`` percentage points."""
    statement = (f"{'/'.join(methods)} reach output forget <= {max_output_forget:g}% while LP "
                 f"and NCC forget exceed Retrain's by >= {margin:g} pp")
    p = PAPER_CIFAR10
    paper = ("(T) CIFAR-10 single, output / LP / NCC forget: "
             + "; ".join(f"{m} {p[(m, 'full')][1]:.2f} / {p[(m, 'full')][3]:.2f} / "
                         f"{p[(m, 'full')][5]:.2f}" for m in ("rl", "salun"))
             + f"; Retrain LP {p[('retrain', 'full')][3]:.2f}, NCC {p[('retrain', 'full')][5]:.2f}")
    _check_columns(results, ("model", "variant", "forget_set", "head", "split", "accuracy"),
                   "results")
    retrain = _rows(results, "retrain")
    if retrain.empty:
        return _not_run(1, statement, paper, "no Retrain rows")
    units, notes = {}, []
    for m in _methods(results, "full", methods):
        rows = _rows(results, m)
        sets = _forget_sets(rows, retrain)
        heads = _heads(rows, retrain)
        if not sets or not heads:
            continue
        out = _mean(rows, "output", "forget", sets)
        gaps = {h: _mean(rows, h, "forget", sets) - _mean(retrain, h, "forget", sets) for h in heads}
        units[m] = out <= max_output_forget and all(g >= margin for g in gaps.values())
        notes.append(f"{m}: output {_f(out)}, " + ", ".join(
            f"{h.upper()} {_f(_mean(rows, h, 'forget', sets))} (Retrain "
            f"{_f(_mean(retrain, h, 'forget', sets))})" for h in heads))
    if not units:
        return _not_run(1, statement, paper, f"no rows of {list(methods)} sharing a forget set "
                                             f"and a head with Retrain")
    return Verdict(1, statement, paper, "; ".join(notes), holds(units), units)


def claim_2(results: pd.DataFrame, max_output_forget: float = 5.0, retain_tolerance: float = 2.0,
            head_tolerance: float = 0.5) -> Verdict:
    """Classifier-only unlearning suffices (REFERENCE §1, claim 2; §7).

    Unit: each method with ``variant == "classifier_only"`` rows. It passes when, over the
    forget sets it shares with the Original, its mean output forget accuracy is at most
    ``max_output_forget``, its mean output retain accuracy is within ``retain_tolerance`` pp of
    the Original's, and its LP and NCC accuracies (retain and forget, every forget set) are
    within ``head_tolerance`` pp of the Original's. The last part is true by construction (the
    backbone is frozen): it checks that the backbone did not change, and is no evidence for the
    claim; chapter 4 shows the evidence (the classifier's alignment and NC4)."""
    statement = (f"classifier-only unlearning reaches output forget <= {max_output_forget:g}% "
                 f"with output retain within {retain_tolerance:g} pp of the Original (and LP/NCC "
                 f"within {head_tolerance:g} pp of the Original's: the backbone did not change)")
    paper = ("not known here (the paper's Table 2); theory under NC: 0 forget, unchanged "
             "retain, LP/NCC equal to the Original's")
    _check_columns(results, ("model", "variant", "forget_set", "head", "split", "accuracy"),
                   "results")
    original = _rows(results, "original")
    methods = _methods(results, "classifier_only")
    if original.empty or not methods:
        return _not_run(2, statement, paper, "no Original rows" if original.empty
                        else "no classifier_only rows")
    units, notes = {}, []
    for m in methods:
        rows = _rows(results, m, "classifier_only")
        sets = _forget_sets(rows, original)
        if not sets:
            continue
        out_forget = _mean(rows, "output", "forget", sets)
        retain_drop = _mean(original, "output", "retain", sets) - _mean(rows, "output", "retain", sets)
        head_gap = max((float((_per_set(rows, h, s, sets) - _per_set(original, h, s, sets))
                              .abs().max())
                        for h in _heads(rows, original) for s in ("retain", "forget")),
                       default=float("nan"))
        units[m] = (out_forget <= max_output_forget and abs(retain_drop) <= retain_tolerance
                    and not pd.isna(head_gap) and head_gap <= head_tolerance)
        notes.append(f"{m}: output forget {_f(out_forget)}, retain change {_f(-retain_drop)} pp, "
                     f"largest LP/NCC difference {head_gap:.2f} pp")
    if not units:
        return _not_run(2, statement, paper, "no classifier_only forget set shared with the Original")
    return Verdict(2, statement, paper, "; ".join(notes), holds(units), units)


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


def claim_3_parts(results: pd.DataFrame, max_gap: float = 5.0, illusion_methods=("rl", "salun"),
                  min_kept: float = 0.5,
                  lowered_heads: Mapping[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The three parts of claim 3 for each method with ``variant == "cmf"`` rows and
    ``"full"`` rows (its base), over their shared forget sets (mean forget accuracies):

    - ``tracks``: output forget within ``max_gap`` pp of NCC forget (under CMF the output head
      is a class-mean classifier, so it can only forget what the features forget);
    - ``lowers``: LP / NCC forget below the base method's on the heads where the paper's own
      numbers show it (``lowered_heads``, default :func:`paper_lowered_heads`; every head for a
      method the paper does not report);
    - ``illusion``: for ``illusion_methods`` (RL, SalUn), output forget at least ``min_kept``
      times the output forget of the model they start from, the CMF Original (``original`` /
      ``cmf`` rows; else the Original; else 100%, as for the paper's table, which does not
      give it): without the classifier shortcut they barely forget.

    Columns: method, part, heads, ours, holds."""
    _check_columns(results, ("model", "variant", "forget_set", "head", "split", "accuracy"),
                   "results")
    lowered_heads = paper_lowered_heads() if lowered_heads is None else lowered_heads
    rows = []
    for m in _methods(results, "cmf"):
        cmf, full = _rows(results, m, "cmf"), _rows(results, m)
        sets, heads = _forget_sets(cmf, full), _heads(cmf, full)
        if not sets or "ncc" not in heads:
            continue
        out, ncc = _mean(cmf, "output", "forget", sets), _mean(cmf, "ncc", "forget", sets)
        rows.append({"method": m, "part": "tracks", "heads": "output vs ncc",
                     "ours": f"output {_f(out)}, NCC {_f(ncc)} (gap {_f(abs(out - ncc))} pp)",
                     "holds": abs(out - ncc) <= max_gap})
        for h in [h for h in lowered_heads.get(m, tuple(heads)) if h in heads]:
            mine, base = _mean(cmf, h, "forget", sets), _mean(full, h, "forget", sets)
            rows.append({"method": m, "part": "lowers", "heads": h,
                         "ours": f"{h.upper()} {_f(mine)} under CMF vs {_f(base)}",
                         "holds": mine < base})
        if m in illusion_methods:
            start = next((r for r in (_rows(results, "original", "cmf"), _rows(results, "original"))
                          if not r.empty and _forget_sets(r, cmf) == sets), None)
            before = 100.0 if start is None else _mean(start, "output", "forget", sets)
            rows.append({"method": m, "part": "illusion", "heads": "output",
                         "ours": f"output forget {_f(out)} of {_f(before)} before unlearning",
                         "holds": out >= min_kept * before})
    return pd.DataFrame(rows, columns=["method", "part", "heads", "ours", "holds"])


def claim_3(results: pd.DataFrame, max_gap: float = 5.0, illusion_methods=("rl", "salun"),
            min_kept: float = 0.5,
            lowered_heads: Mapping[str, tuple[str, ...]] | None = None) -> Verdict:
    """CMF removes the classifier shortcut (REFERENCE §1, claim 3; §8).

    Unit: each method with ``variant == "cmf"`` rows and ``"full"`` rows (its base). It passes
    when every part of :func:`claim_3_parts` holds for it: output tracks NCC, LP/NCC forget
    below the base method's where the paper reports so, RL/SalUn keep a high output forget."""
    statement = (f"under CMF output forget stays within {max_gap:g} pp of NCC forget, LP/NCC "
                 f"forget fall below the base method's (on the heads where the paper's numbers "
                 f"fall), and {'/'.join(illusion_methods)} keep >= {min_kept:.0%} of the output "
                 f"forget they start from")
    p = PAPER_CIFAR10
    paper = ("(T) CIFAR-10 single, output / LP / NCC forget under CMF (full): "
             + "; ".join(f"{m} {p[(m, 'cmf')][1]:.2f} / {p[(m, 'cmf')][3]:.2f} / "
                         f"{p[(m, 'cmf')][5]:.2f} ({_f(p[(m, 'full')][1])} / "
                         f"{'–' if p[(m, 'full')][3] is None else _f(p[(m, 'full')][3])} / "
                         f"{_f(p[(m, 'full')][5])})"
                         for m in ("rl", "salun", "neggrad_plus", "scrub", "unsir")))
    parts = claim_3_parts(results, max_gap, illusion_methods, min_kept, lowered_heads)
    if parts.empty:
        return _not_run(3, statement, paper, "no cmf method shares a forget set and the NCC head "
                                             "with its full variant")
    units = parts.groupby("method", sort=False)["holds"].all().to_dict()
    notes = [f"{m}+CMF: " + ", ".join(f"{o}{'' if ok else ' (fails)'}"
                                      for o, ok in zip(g["ours"], g["holds"]))
             for m, g in parts.groupby("method", sort=False)]
    return Verdict(3, statement, paper, "; ".join(notes), holds(units), units)


def claim_4(relearning: pd.DataFrame, results: pd.DataFrame | None = None,
            lp_margin: float = 10.0, auc_margin: float = 0.0) -> Verdict:
    """Output-level success hides what relearning brings back (REFERENCE §1, claim 4).

    Unit: each (method, attack) pair of ``relearning`` other than Retrain and Original, for the
    methods with *high LP forget*: mean LP forget at least ``lp_margin`` pp above Retrain's in
    ``results`` (without ``results`` every method qualifies). It passes when its mean recovery
    AUC, over the forget sets it shares with Retrain under that attack, exceeds Retrain's by
    more than ``auc_margin`` pp. A method in another variant is named ``method/variant``."""
    statement = (f"methods whose LP forget exceeds Retrain's by >= {lp_margin:g} pp recover "
                 f"forget accuracy faster than Retrain under relearning (AUC > Retrain's"
                 + (f" + {auc_margin:g}" if auc_margin else "") + ")")
    paper = "no number (the paper's motivation, not a reported experiment)"
    _check_columns(relearning, ("model", "variant", "forget_set", "attack", "auc"), "relearning")
    retrain = _rows(relearning, "retrain")
    if retrain.empty:
        return _not_run(4, statement, paper, "no Retrain rows in the relearning table")
    pairs = (relearning[~relearning["model"].isin(REFERENCE_MODELS)][["model", "variant"]]
             .drop_duplicates().itertuples(index=False))
    candidates, skipped = [], []
    for m, v in pairs:
        name = m if v == "full" else f"{m}/{v}"
        if results is not None:
            rows, base = _rows(results, m, v), _rows(results, "retrain")
            sets = _forget_sets(rows, base)
            gap = (_mean(rows, "lp", "forget", sets) - _mean(base, "lp", "forget", sets)
                   if sets else float("nan"))
            if not gap >= lp_margin:  # NaN (no LP rows) does not qualify either
                skipped.append(f"{name} (LP gap {_f(gap)})")
                continue
        candidates.append((name, m, v))
    if not candidates:
        return _not_run(4, statement, paper, "no method has high LP forget: "
                        + ", ".join(skipped) if skipped else "no unlearned method in the table")
    units, notes = {}, []
    for name, m, v in candidates:
        rows = _rows(relearning, m, v)
        for attack in sorted(rows["attack"].unique()):
            mine = rows[rows["attack"] == attack]
            ref = retrain[retrain["attack"] == attack]
            sets = _forget_sets(mine, ref)
            if not sets:
                continue
            auc = float(mine[mine["forget_set"].astype(str).isin(sets)]["auc"].mean())
            base = float(ref[ref["forget_set"].astype(str).isin(sets)]["auc"].mean())
            units[f"{name}:{attack}"] = auc > base + auc_margin
            notes.append(f"{name} {attack}: AUC {_f(auc)} (Retrain {_f(base)})")
    if not units:
        return _not_run(4, statement, paper, "no attack and forget set shared with Retrain")
    if skipped:
        notes.append("not high-LP: " + ", ".join(skipped))
    return Verdict(4, statement, paper, "; ".join(notes), holds(units), units)


# --------------------------------------------------------------------------------------------
# The ledger

# claim id -> (function, the table it needs, optional tables passed by keyword)
CLAIMS: dict[int, tuple[Callable[..., Verdict], str, tuple[str, ...]]] = {
    1: (claim_1, "results", ()),
    2: (claim_2, "results", ()),
    3: (claim_3, "results", ()),
    4: (claim_4, "relearning", ("results",)),
}
STATEMENTS = {
    1: "Standard MU methods reach ~0 output forget accuracy while the penultimate features "
       "stay discriminative (feature-classifier misalignment)",
    2: "Under neural collapse, changing only the classifier suffices: classifier-only "
       "unlearning gives 0 forget and unchanged retain accuracy",
    3: "A class-mean-feature (CMF) classifier removes the classifier shortcut",
    4: "Output-level success hides information that simple fine-tuning brings back",
}


def ledger(tables: Mapping[str, pd.DataFrame],
           options: Mapping[int, Mapping] | None = None) -> pd.DataFrame:
    """Every claim checked on the tables present (``results``, ``relearning``); a claim whose
    table is missing gets ``holds == "not run"``. ``options`` passes thresholds per claim,
    e.g. ``{1: {"margin": 20}}``. Columns: claim, claim_text, statement (the test), paper,
    ours, holds."""
    unknown = set(tables) - {"results", "relearning"}
    if unknown:
        raise ValueError(f"unknown table(s) {sorted(unknown)}; valid choices: "
                         f"['relearning', 'results']")
    options = options or {}
    bad = set(options) - set(CLAIMS)
    if bad:
        raise ValueError(f"unknown claim(s) {sorted(bad)} in options; valid choices: {sorted(CLAIMS)}")
    verdicts = []
    for claim, (check, needs, extra) in CLAIMS.items():
        if tables.get(needs) is None:
            verdicts.append(Verdict(claim, STATEMENTS[claim], "", f"no {needs!r} table",
                                    "not run"))
            continue
        kwargs = {name: tables[name] for name in extra if tables.get(name) is not None}
        verdicts.append(check(tables[needs], **kwargs, **options.get(claim, {})))
    return pd.DataFrame([{"claim": v.claim, "claim_text": STATEMENTS[v.claim],
                          "statement": v.statement, "paper": v.paper, "ours": v.ours,
                          "holds": v.holds} for v in verdicts])
