# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Beyond the paper: probes a classifier edit cannot fool
#
# ```{glue} verdict
# ```
#
# *This chapter is ours, not the paper's.* Chapter 6 attacks a model by fine-tuning from its own
# classifier. A defender can defeat that with one line: zero the forget rows of the last layer
# and set their biases to −10⁴. No feature changes (the linear probe and the NCC still find the
# class), yet a few SGD steps never move such a bias, and every attack of chapter 6 "recovers
# nothing". This chapter adds the probes the field has since proposed, which no edit of the
# classifier alone can stop:
#
# - **the Prototypical Relearning Attack** (Ha, Park & Yoon, *Unlearning's Blind Spots*, ICML
#   2026): no training at all. The mean penultimate feature of $K$ forget images, normalised, is
#   written into the forget row of the classifier (`cosine`: $w_c \leftarrow \alpha p_c +
#   (1-\alpha) w_c$, $b_c \leftarrow (1-\alpha) b_c$; `l2`: $w_c \leftarrow 2\alpha p_c +
#   (1-\alpha) w_c$, $b_c \leftarrow -\alpha\lVert p_c\rVert^2 + (1-\alpha) b_c$). Whatever
#   the features kept comes back;
# - **attacks from a fresh head**: chapter 6's head-only attack started from a classifier whose
#   forget rows and biases are first reset to the mean of the retain rows;
# - **over-unlearning, OU@ε** (same paper): the mean Jensen–Shannon divergence, on forget
#   training images perturbed towards their nearest wrong class (targeted PGD, ε = 0.03 on the
#   [0, 1] scale) or by Gaussian noise (σ = 0.01), between the model's softmax and the
#   Original's with the forget classes masked out: the damage a method does *near* the forget
#   class, where it should still answer as the Original would. Retrain is the reference;
# - **representation similarity**: linear CKA between each model's penultimate features and the
#   Original's and Retrain's on the test images (Kim, Cha & Kim, *Are We Truly Forgetting?*);
# - **Spotter**, the defence the first paper builds against its own attack: masked distillation
#   on the forget images and their PGD copies, plus a loss that disperses the forget class's
#   features. Table 1 of chapter 2 shows it under the three heads.
#
# The models are every baseline in full, Spotter, the Original and Retrain, on the attacked
# forget sets (chapter 6's). Where this chapter's protocol departs from the authors' code, the
# deviations chapter says how.

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from illusion import claims, results
from illusion.attacks import (FRESH_ATTACKS, PROTOTYPE_RETAIN_KEPT, prototype_recovery,
                              recovery_table, strongest)
from illusion.book import start
from illusion.unlearn import BASELINES, having

chapter = start(profile, overrides, "07_beyond")
exp = chapter.exp

# %% [markdown]
# ## The models and the budgets

# %%
METHODS = list(BASELINES)
DEFENCES = list(having("defence"))
ORDER = ["original", "retrain", *METHODS, *DEFENCES]
SETS = exp.profile.attacked_forget_sets
probes = exp.profile.probes
print(f"attacked forget sets: {[fs.name for fs in SETS]}; prototypes of K = "
      f"{list(probes.prototype_shots)} shots (mean of {probes.prototype_draws} seeded draws), "
      f"α = {list(probes.prototype_alphas)}; OU@ε: PGD ε {probes.ou_epsilon}, step "
      f"{probes.ou_step}, {probes.ou_steps} steps, Gaussian σ {probes.ou_sigma}")
models = exp.models([*METHODS, *DEFENCES], forget_sets=SETS)


def stacked(measure) -> pd.DataFrame:
    """``measure(model, forget set)`` of every model, stacked (the Original once per set)."""
    return pd.concat([measure(m, key[-1]) for key, m in models.items()], ignore_index=True)


prototypes = stacked(exp.prototype_attack)
over_unlearning = stacked(exp.over_unlearning)
similarity = stacked(exp.similarity)
chapter.save(prototypes, "prototype_attack")
chapter.save(over_unlearning, "over_unlearning")
chapter.save(similarity, "similarity")
print(f"{len(models)} models probed")

# %% [markdown]
# ## The prototypical relearning attack
#
# Forget accuracy (solid) and retain accuracy (dashed) on the test split after the prototype of
# $K$ forget training images is written into the classifier, for each form and blend α, mean
# over the attacked forget sets. Retrain (black) is a model that never saw the class: what the
# attack gives back from it is what a prototype gets from features learnt on *other* classes.
# A prototype that wins every argmax "recovers" the forget class by predicting it everywhere:
# look at the dashed retain line before reading the solid forget line.

# %%
curves = prototypes.melt(id_vars=["model", "variant", "forget_set", "form", "alpha", "shots"],
                         value_vars=["forget_accuracy", "retain_accuracy"], var_name="split",
                         value_name="accuracy")
curves["configuration"] = curves["form"] + ", α=" + curves["alpha"].map("{:g}".format)
palette = {"original": "grey", "retrain": "black",
           **dict(zip([*METHODS, *DEFENCES], sns.color_palette("tab10", len(METHODS) + len(DEFENCES))))}
curves["split"] = curves["split"].str.removesuffix("_accuracy")
grid = sns.relplot(curves, x="shots", y="accuracy", hue="model", style="split",
                   col="configuration", col_wrap=2, kind="line", marker="o", errorbar=None,
                   height=2.6, aspect=1.2, hue_order=ORDER, palette=palette,
                   style_order=["forget", "retain"], dashes={"forget": "", "retain": (3, 2)})
grid.set(xscale="log")
grid.set_axis_labels("K (shots)", "accuracy (%)")
grid.set_titles("{col_name}")
grid.figure.suptitle("Prototypical relearning attack: no training, K forget images", y=1.03)
plt.show()

# %% [markdown]
# One recovery per model and configuration: the mean forget accuracy over the budgets of K (as
# chapter 6's AUC is the mean over its budget of steps). A configuration whose mean retain
# accuracy falls more than the tolerance printed below under the model's own does not count as
# recovering the class (✗).

# %%
recovery = prototype_recovery(prototypes, by=("model", "variant", "forget_set"))
chapter.save(recovery, "prototype_recovery")
shown = recovery.assign(auc=[f"{a:.1f}" + ("" if keeps else " ✗")
                             for a, keeps in zip(recovery["auc"], recovery["keeps_retain"])])
print(f"✗: mean retain accuracy more than {PROTOTYPE_RETAIN_KEPT:g} pp below the model's own")
(shown.pivot_table(index="model", columns="attack", values="auc", aggfunc="first", sort=False)
 .reindex(ORDER))

# %% [markdown]
# ## The strongest attack per model
#
# Chapter 6's fine-tuning attacks from the model's own classifier (their AUCs), the same two
# from a fresh head, and the prototypes that keep the retain classes, side by side; the
# strongest is the one that gives back the most (retain-only fine-tuning, which never shows the
# model a forget image, is shown but not counted). This is the number `illusion evaluate` and
# `illusion audit` judge claim 4 on, and so does the last check of this chapter.

# %%
finetuned = pd.concat([stacked(exp.relearning),
                       stacked(lambda m, fs: exp.relearning(m, fs, attacks=FRESH_ATTACKS))],
                      ignore_index=True)
attacks = pd.concat([recovery_table(finetuned, by=("model", "variant", "forget_set", "attack"))
                     .assign(keeps_retain=True), recovery], ignore_index=True)
chapter.save(attacks, "attack_recovery")
best = strongest(attacks, by=("model", "variant", "forget_set"))
chapter.save(best, "strongest_attack")
wide = attacks[attacks["keeps_retain"]].pivot_table(index="model", columns="attack",
                                                    values="auc", sort=False).round(1)
wide.join(best.groupby("model")["attack"].first().rename("strongest")).reindex(ORDER)

# %% [markdown]
# ## Over-unlearning, OU@ε
#
# Mean Jensen–Shannon divergence (natural log; at most ln 2 ≈ 0.69) between the model's softmax
# and the Original's with the forget classes masked out, on the forget training images
# perturbed by targeted PGD and by Gaussian noise; the last columns divide by Retrain's. The
# Original's own value is not zero: the masked reference takes the forget class's mass away,
# which the Original puts there.

# %%
ou = over_unlearning.pivot_table(index="model", columns="perturbation", values="value",
                                 sort=False)
ou = ou.join((ou / ou.loc["retrain"]).add_suffix(" / Retrain's")).reindex(ORDER)
ou.round(3)

# %% [markdown]
# ## Representation similarity
#
# Linear CKA of each model's penultimate features with the Original's and with Retrain's, on
# the retain and the forget test images (1 = the same up to rotation and scale). A method that
# forgets in its features moves away from the Original on the forget images, towards Retrain,
# and stays with the Original on the retain images.

# %%
(similarity.pivot_table(index="model", columns=["reference", "split"], values="cka", sort=False)
 .reindex(ORDER).round(3))

# %% [markdown]
# ## Spotter under the three heads
#
# Spotter's rows of Table 1 (chapter 2) beside the Original and Retrain, on every forget set of
# the profile: output, linear probe and NCC forget and retain accuracy. The LP is the paper's
# SGD probe; the L-BFGS probe is beside it.

# %%
table1 = exp.accuracy(exp.models([*METHODS, *DEFENCES]), second_opinion=True)
results.accuracy_table(table1[table1["model"].isin(["original", "retrain", *DEFENCES])],
                       exp.profile, by=("model",))

# %% [markdown]
# ## Checks
#
# What this chapter claims, computed on this run; it is ours, not the paper's, and it is the
# last row of the ledger:
#
# - every baseline whose LP forget accuracy is at least 10 pp above Retrain's (claim 4's
#   high-LP methods, from Table 1) gives back more under its strongest prototype than Retrain
#   does (recovery gain > 0 pp, the prototypes that keep the retain classes);
# - Spotter gives back no more than Retrain under the prototype attack (gain ≤ 0 pp), and its
#   OU@ε (PGD) is below Retrain's (ratio < 1), as its authors report;
# - the open question, asserted as the illusion would have it: Spotter's LP and NCC forget
#   accuracy stay at least 5 pp above Retrain's (claim 1's threshold), over every forget set;
# - claim 4 under the strongest attack: every high-LP baseline gives back more under the attack
#   that recovers the most from it than Retrain does under its own strongest (this check counts
#   towards claim 4 in the ledger).
#
# Each is decided against its spread over seeds like every check of the book: one that the
# spread does not decide is shown as *not decided*, one that fails on every seed as failing.
#
# Over the five seeds of the committed spread on `default` (the last column below): the open
# question has an answer. Spotter's features keep the class from the linear probe (LP forget
# 11.5 ± 0.8 pp above Retrain's) and from the NCC (18 ± 1 pp): a defence built against
# prototypes is still an illusion to the paper's probes. Against the attack it was built for,
# Spotter gives back *more* than Retrain on every seed (9.1 ± 3.0 pp, the α = 1 prototype; at
# the authors' α = 0.5 it gives back almost nothing), by three standard deviations: that check
# *fails*, recorded in `illusion.claims.FAILS`; its OU@ε is 0.03 ± 0.01 of Retrain's, as its
# authors report. The prototype gives back more than from Retrain, by more than three standard
# deviations, for retain-only fine-tuning, ℓ1-sparse, SVD and SCRUB (31-47 pp: holds); for GA,
# RL and UNSIR it does on every seed but varies by 8-25 pp between seeds, and for NegGrad+ and
# SalUn it falls to 0 or below on one seed (not decided).

# %%
checks_table = claims.decide(claims.with_second_opinion(
    lambda r: pd.concat([claims.beyond_checks(recovery, over_unlearning, r),
                         claims.strongest_attack_checks(attacks, r)], ignore_index=True),
    table1), exp.profile.name)
chapter.save(checks_table, "checks")
chapter.show_verdict(checks_table, "Beyond the paper")
claims.report(checks_table, exp.profile.name)

# %%
chapter.enforce(checks_table)
