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
# # Classifier-only unlearning
#
# ```{glue} verdict
# ```
#
# The previous chapter proved that, near neural collapse, changing only the last linear layer
# can erase a class from the output while the retain classes keep their accuracy. Gao et al.
# (2026, Table 2) test this with every unlearning method: **freeze the whole network, zero the
# last linear layer (weight and bias), and re-learn only that layer with the method's own
# loss**. BatchNorm's running statistics never change, so the features at test time — and with
# them the LP and NCC heads — are the Original's by construction: whatever the output head
# shows, nothing was removed from the representation. If a method reaches the same output
# numbers this way as when it trains the whole network, its output-level success says nothing
# about the features.
#
# Two protocols train the classifier (the method setting's `protocol`, printed in the
# configuration above): the authors' (`authors`: the network in train mode, BatchNorm
# normalising each batch by its own statistics, on augmented images — the paper profiles use
# it) and a cached one (`cached`: the backbone in eval mode, its features extracted once, the
# classifier trained on them in seconds — the `default` profile uses it for every method but
# UNSIR, which learns noise in input space). The chapter "Deviations from the authors' code"
# measures how far the two are apart on this profile.
#
# Two methods need no re-run: **SVD** (as in the paper's code, it projects the last layer's
# weight) and **prune** (zero the forget rows) only ever edit the last layer. Zeroing that layer
# first would leave them nothing to edit — SVD would project a zero matrix, prune would zero
# rows that are already zero — so their "classifier-only" versions would be a blank classifier,
# not the method. We show their full versions, which are already classifier-only (checked
# below: every other tensor is bitwise the Original's).

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from illusion import claims, results
from illusion.book import start
from illusion.heads import HEADS, class_means, extract, ncc_predict
from illusion.models import backbone_changes
from illusion.unlearn import CLASSIFIER_EDITS, having  # edits: shown as their full runs

chapter = start(profile, overrides, "04_classifier_only")
exp = chapter.exp

# %% [markdown]
# ## Every method, full model and classifier only
#
# For each forget set: the Original, Retrain, and every method run on the full model and on
# the classifier only. Run time (RTE) is the wall time of the unlearning run; the cached-feature
# runs of a forget set share one feature extraction, which is not in their RTE. Full-model runs
# are shared with the previous chapters through the artifact store.

# %%
# The paper's methods and the two standard ones; a defence beyond the paper (Spotter) is run in
# full only (chapters 2 and 7).
methods = [m for m in exp.profile.methods if m not in having("defence")]
original = exp.original()
rows, backbone = [], []
for fs in exp.profile.forget_sets:
    rows += [exp.evaluate(m, fs, second_opinion=True) for m in (original, exp.retrain(fs))]
    for method in methods:
        full = exp.unlearned(method, fs)
        mine = exp.evaluate(full, fs, second_opinion=True)
        rows.append(mine.assign(computed_as="full"))
        if method in CLASSIFIER_EDITS:
            learnt = full
            rows.append(mine.assign(variant="classifier_only", computed_as="full"))
        else:
            learnt = exp.unlearned(method, fs, "classifier_only")
            rows.append(exp.evaluate(learnt, fs, second_opinion=True)
                        .assign(computed_as="classifier_only"))
        backbone.append({"method": method, "forget_set": fs.name,
                         "changed": backbone_changes(learnt.model, original.model)})
table = pd.concat(rows, ignore_index=True)
table["computed_as"] = table["computed_as"].fillna(table["variant"])
chapter.save(table, "table2")

# %% [markdown]
# Every classifier-only model (and SVD and prune) must share every tensor but the last layer's
# with the Original, BatchNorm statistics included:

# %%
backbone = pd.DataFrame(backbone)
assert not backbone["changed"].map(len).any(), backbone[backbone["changed"].map(len) > 0]
print(f"{len(backbone)} classifier-only models: every tensor outside fc is bitwise the Original's")

# %% [markdown]
# ### Table 2: mean ± std over the forget sets of each bucket
#
# Output / LP / NCC accuracy (%) on test retain and test forget images, and the mean run time
# in seconds. Rows marked `classifier_only` for SVD and prune repeat their full runs (see
# above).

# %%
order = ["original", "retrain", *methods]
wide = results.accuracy_table(table, exp.profile, by=("model", "variant"))
seconds = (results.with_bucket(table[table["head"] == "output"], exp.profile)
           .drop_duplicates(["bucket", "model", "variant", "forget_set"])
           .groupby(["bucket", "model", "variant"])["seconds"].mean())
wide[("RTE", "s")] = [f"{seconds.get(index, float('nan')):.1f}" for index in wide.index]
wide

# %% [markdown]
# How to read it: in every classifier-only row the LP and NCC columns repeat the Original's,
# because the features are the Original's. Wherever a method's classifier-only output forget
# accuracy is as low as its full-model one, at a similar retain accuracy, the method's
# output-level result is reachable without changing a single feature — so it cannot, by itself,
# be evidence that the features forgot anything. The full-model rows then tell how much more
# the method did: compare their LP and NCC forget columns with the Original's and Retrain's.
# Gao et al. (2026) report this comparison for their baselines; their Table 2 numbers are not
# available to us, so none are printed here.

# %% [markdown]
# The run times side by side: full model vs classifier only, per method (mean over all forget
# sets).

# %%
rte = (table[(table["head"] == "output") & table["model"].isin(methods)]
       .drop_duplicates(["model", "variant", "forget_set"])
       .pivot_table(index="model", columns="variant", values="seconds", aggfunc="mean")
       .reindex(methods))
rte["speed-up"] = rte["full"] / rte["classifier_only"]
rte.loc[[m for m in CLASSIFIER_EDITS if m in rte.index], "speed-up"] = float("nan")  # one run
chapter.save(rte.reset_index(), "run_times")
rte.round(2)

# %%
forget = table[(table["split"] == "forget") & table["model"].isin(methods)]
grid = sns.catplot(forget, x="model", y="accuracy", hue="variant", col="head", kind="bar",
                   order=methods, col_order=list(HEADS), hue_order=["full", "classifier_only"],
                   errorbar=("pi", 100), col_wrap=1, height=2.3, aspect=3.0)
for ax, head in zip(grid.axes.flat, HEADS):
    ref = table[(table["split"] == "forget") & (table["head"] == head)]
    for model, style in (("original", "--"), ("retrain", ":")):
        ax.axhline(ref.loc[ref["model"] == model, "accuracy"].mean(), color="k", ls=style, lw=1,
                   label=model)
    ax.tick_params(axis="x", rotation=45)
grid.axes.flat[0].legend(fontsize=8, loc="upper left")
grid.set_titles("{col_name} head")
grid.set_axis_labels("method", "test forget accuracy (%)")
grid.figure.suptitle("forget accuracy, full model vs classifier only\n(mean over forget sets, "
                     "whiskers: their range; dashed: Original, dotted: Retrain)", y=1.06)
plt.show()

# %% [markdown]
# Per forget set, the output-head numbers of both variants (the LP and NCC columns of the
# classifier-only runs are the Original's, see the checks):

# %%
per_set = (table[(table["head"] == "output") & table["model"].isin(order)]
           .pivot_table(index=["model", "variant"], columns=["forget_set", "split"],
                        values="accuracy", sort=False)
           .reindex(order, level="model"))
per_set.round(1)

# %% [markdown]
# ## What did change: the classifier's geometry
#
# That LP and NCC equal the Original's is a check that the backbone did not move, not evidence
# for the claim. The evidence is in how the *classifier* now sits against features that did
# not move. Two measurements, before (Original) and after each classifier-only run, on the
# training features:
#
# - **alignment** $\cos(w_c, \mu_c-\mu_G)$ of each classifier row with its centred class mean
#   (chapter 2), averaged over the forget classes and over the retain classes: a classifier that
#   forgets a class without moving a feature must turn the forget row away from that class's
#   mean (gradient ascent drives it towards $-\mu_f$, chapter 3; a row re-learnt from zero with
#   no example of its class ends up near orthogonal to it) and keep the retain rows aligned;
# - **NC4**, the share of test images on which the classifier and the NCC head disagree, on
#   the forget and on the retain classes: an unchanged feature cluster that the classifier no
#   longer recognises shows up as a rise of classifier-NCC disagreement on the forget classes
#   alone. It cannot reach 100%: where NCC itself misplaces a forget image, the two may agree
#   on the same wrong class.

# %%
geometry = []
for fs in exp.profile.forget_sets:
    candidates = [("original", original)] + [(m, exp.unlearned(m, fs, "classifier_only"))
                                             for m in methods if m not in CLASSIFIER_EDITS]
    for name, trained in candidates:
        metrics = exp.metrics(trained, fs).set_index("metric")["value"]
        feats = exp.features(trained)
        ncc = ncc_predict(class_means(feats.train, feats.train_y, feats.num_classes), feats.test)
        differ = (feats.test_logits.argmax(1) != ncc).double()
        in_forget = torch.isin(feats.test_y, torch.tensor(fs.classes, device=feats.test_y.device))
        geometry.append({"model": name, "forget_set": fs.name,
                         "alignment_forget": metrics["alignment_forget"],
                         "alignment_retain": metrics["alignment_retain"],
                         "nc4_forget": 100 * differ[in_forget].mean().item(),
                         "nc4_retain": 100 * differ[~in_forget].mean().item()})
geometry = pd.DataFrame(geometry)
chapter.save(geometry, "classifier_geometry")
geometry.groupby("model", sort=False)[["alignment_forget", "alignment_retain", "nc4_forget",
                                       "nc4_retain"]].mean().round(3)

# %% [markdown]
# ## Checks
#
# Unlike chapters 2 and 5, no column of the paper's own numbers stands beside ours here: the
# paper's Table 2 values are not known to us (only its method list and the authors' learning
# rates are, REFERENCE §7), so these verdicts are this run's alone.
#
# Checked above at every profile: every classifier-only model (and SVD and prune) has every
# tensor outside the last layer, BatchNorm statistics included, bitwise equal to the
# Original's. The verdicts below are computed at every profile and asserted on the real ones:
#
# - classifier-only **RL** and **NegGrad+** reach an output forget accuracy of **at most 5%**
#   (mean over the forget sets) with an output retain accuracy **at most 2 pp below** the
#   Original's (mean over the same forget sets) — the paper's finding that the classifier alone
#   suffices for output-level forgetting. Both start from a zeroed classifier and re-learn it
#   for five epochs on cached features. The retain half is asserted only for a method whose own
#   full-model run keeps its retain accuracy within 2 pp: when the full run loses retain accuracy
#   too (NegGrad+ with the `default` profile's learning rate of 0.01 does, see chapter 2), the
#   method's settings are at fault rather than the classifier-only question, and the verdict
#   is shown, not asserted;
# - the **LP and NCC** accuracies of every classifier-only model **equal** the Original's
#   exactly (no tolerance), per forget set and split, and the penultimate features of one
#   classifier-only model (RL, first forget set) are bitwise identical to the Original's: a
#   check that the backbone did not change, true by construction;
# - the evidence: for classifier-only **RL** and **NegGrad+** (means over the forget sets), the
#   forget row's alignment with its class mean falls by **at least 0.5** from the Original's
#   (the row turned away from unchanged features) while the retain rows' falls by **at most
#   0.1**, and the classifier-NCC disagreement rises by **at least 30 pp** on the forget test
#   images and by **at most 3 pp** on the retain ones. Asserted under the same condition as the
#   retain check. These margins were set on this profile's first run (alignment fell by about
#   0.85, disagreement rose by about 60 pp); the last column of the table gives their spread
#   over the seeds of the committed spread (`benchmarks/seed_spread.py`). A check that does not apply is shown as
#   *not applicable*; one whose spread does not clear its threshold by three standard
#   deviations as *not decided*, not asserted.

# %%
one = exp.unlearned("rl", exp.profile.forget_sets[0], "classifier_only")
# Extracted afresh through each network (the book's feature cache would reuse the Original's).
identical = torch.equal(extract(one.model, exp.data.test)[0], extract(original.model, exp.data.test)[0])
checks_table = claims.decide(claims.with_second_opinion(claims.classifier_only_checks, table, geometry,
                                                       features_identical=identical),
                             exp.profile.name)
chapter.save(checks_table, "checks")
chapter.show_verdict(checks_table, "Claim 2")
claims.report(checks_table, exp.profile.name)

# %%
chapter.enforce(checks_table)
