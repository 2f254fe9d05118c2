"""Learning rates of a profile's unlearning methods, chosen on the validation split.

    .venv/bin/python benchmarks/tune_lrs.py [--profile default] [--forget-set 6]
                                            [--variants full cmf] [--methods rl scrub ...]

The paper tunes one LR per method and dataset; its LRs do not carry over to one epoch of a
narrow ResNet-18 on Fashion-MNIST. Every method, and every CMF variant, gets its LR from one
grid by one rule:

1. run it from the variant's base model (the Original, or the CMF Original) on one forget set;
2. keep the LRs whose validation accuracy on the retain classes is at most ``--max-retain-drop``
   (3) pp below the base model's;
3. among them take the lowest validation accuracy on the forget classes; LRs within
   ``--tie`` (1) pp of it tie, and the smallest of those wins.

Validation is the 10% of the training set held out from the Original's training. The book
unlearns on the whole training set (the authors' protocol), validation included, so here the
methods unlearn on the other 90% only (D_f and D_r without the validation images), which keeps
validation unseen; the test split, on which the book reports, is never looked at. Runs are not
stored (they would crowd the artifact store with models no chapter reads). Prints every run and
the chosen LR of each method.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd
import torch

from illusion.config import ForgetSet
from illusion.data import split_forget
from illusion.experiment import VARIANTS, Experiment
from illusion.heads import extract, split_accuracy

GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def validation_accuracy(model: torch.nn.Module, exp: Experiment, forget_set: ForgetSet) -> dict:
    _, logits = extract(model, exp.data.val, with_logits=True)
    return split_accuracy(logits.argmax(1), exp.data.val.y, forget_set)


def choose(runs: pd.DataFrame, base_retain: float, max_retain_drop: float, tie: float) -> float:
    """The rule of the module docstring; NaN when no LR keeps the retain accuracy."""
    allowed = runs[runs["val_retain"] >= base_retain - max_retain_drop]
    if allowed.empty:
        return float("nan")
    best = allowed["val_forget"].min()
    return float(allowed.loc[allowed["val_forget"] <= best + tie, "lr"].min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--forget-set", default="6")
    parser.add_argument("--variants", nargs="+", default=["full", "classifier_only", "cmf"])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every method of the variant that trains")
    parser.add_argument("--grid", type=float, nargs="+", default=list(GRID))
    parser.add_argument("--max-retain-drop", type=float, default=3.0)
    parser.add_argument("--tie", type=float, default=1.0)
    args = parser.parse_args()

    exp = Experiment(args.profile)
    forget_set = ForgetSet.parse(args.forget_set)
    split = split_forget(exp.data, forget_set, train=exp.data.train)  # validation kept unseen
    rows, chosen = [], []
    for variant in args.variants:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; valid choices: {sorted(VARIANTS)}")
        run = VARIANTS[variant]
        base = run.base(exp)
        base_acc = validation_accuracy(base.model, exp, forget_set)
        names = args.methods or [m for m in exp.profile.variant_method_names(variant)
                                 if exp.profile.method(m, variant).epochs > 0]
        for name in names:
            cfg = exp.profile.method(name, variant)
            runs = []
            for lr in args.grid:
                start = time.perf_counter()
                # No shared inputs: those of the book are computed on the whole training set.
                model, _ = run.run(name, base.model, split, dataclasses.replace(cfg, lr=lr),
                                   exp.context())
                acc = validation_accuracy(model, exp, forget_set)
                runs.append({"method": name, "variant": variant, "lr": lr,
                             "val_retain": acc["retain"], "val_forget": acc["forget"],
                             "base_retain": base_acc["retain"], "base_forget": base_acc["forget"],
                             "profile_lr": cfg.lr, "seconds": time.perf_counter() - start})
                print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in runs[-1].items()), flush=True)
            runs = pd.DataFrame(runs)
            rows.append(runs)
            chosen.append({"method": name, "variant": variant, "profile_lr": cfg.lr,
                           "chosen_lr": choose(runs, base_acc["retain"], args.max_retain_drop, args.tie)})
    print("\nall runs")
    with pd.option_context("display.float_format", "{:.4g}".format):
        print(pd.concat(rows, ignore_index=True).to_string(index=False))
    print(f"\nchosen (forget set {forget_set.name}, retain drop <= {args.max_retain_drop} pp, "
          f"tie {args.tie} pp)")
    print(pd.DataFrame(chosen).to_string(index=False))


if __name__ == "__main__":
    main()
