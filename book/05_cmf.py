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
# # Class-mean-feature unlearning
#
# ```{glue} verdict
# ```
#
# The earlier chapters showed that standard unlearning methods reach 0% output forget accuracy
# mostly by changing the last linear layer: the forget class stays a separate cluster of
# penultimate features, which a linear probe (LP) or a nearest-class-mean classifier (NCC)
# still recognises. Gao et al. (2026) close this shortcut by replacing the learnt classifier
# with one *computed* from the current features, the **class-mean-feature (CMF)** classifier,
# and rerun the same methods under it (their Table 3).
#
# ## The CMF classifier
#
# Let $f(x)\in\mathbb{R}^d$ be the penultimate feature of image $x$ and $(x_i, y_i)_{i=1}^N$ the
# whole training split, forget classes included, with true labels. The authors' code (the
# library's default, reading `"code"`) normalises every feature first:
#
# $$z_i = \frac{f(x_i)}{\lVert f(x_i)\rVert},\qquad
#   m_c = \frac{1}{n_c}\sum_{i:\,y_i=c} z_i,\qquad \mu = \frac1N\sum_{i=1}^N z_i,\qquad
#   w_c = \frac{m_c-\mu}{\lVert m_c-\mu\rVert},$$
#
# $$\ell_c(x) = \tau\,\langle \hat z(x), w_c\rangle,\qquad
#   \hat z(x) = \frac{f(x)/\lVert f(x)\rVert-\mu}{\lVert f(x)/\lVert f(x)\rVert-\mu\rVert},
#   \qquad \tau = 1 .$$
#
# Since $\hat z$ and every $w_c$ are unit vectors, $\ell_c(x)/\tau = \cos\big(\hat z(x), m_c-\mu\big)$:
# the CMF head is a **nearest class mean by cosine**, in the centred space of normalised
# features. The paper's Algorithm 1 (reading `"paper"`) averages the raw features instead,
# $m_c = \frac{1}{n_c}\sum_{y_i=c} f(x_i)$, centres them on the mean of the class means,
# $\mu = \frac1K\sum_c m_c$, and uses $\hat z(x) = \mathrm{normalize}(f(x)-\mu)$. The two
# readings coincide when every feature has the same norm and the classes are balanced; on real
# features they differ a little (measured below).
#
# ## Why it closes the classifier shortcut
#
# $W = (w_1,\dots,w_K)$ and $\mu$ are functions of the encoder $\theta$ only: they hold no
# parameter, receive no gradient, and are recomputed from the current features at the start of
# every epoch and once more at the end (Algorithm 2), with true labels, so the forget class
# keeps a row $w_f$ pointing at its own (possibly moved) features. The output head is then
#
# $$\hat y(x) = \arg\max_c \cos\big(\hat z_\theta(x),\, m_c(\theta)-\mu(\theta)\big),$$
#
# and the only way to lower the output forget accuracy is to move the forget features until
# they are closer (by cosine) to another class's mean than to their own. The cheap solution of
# the previous chapters — turn $w_f$ away from $\mu_f$ and leave the features alone — does not
# exist. Under CMF the output forget accuracy therefore *tracks the features*: it should be
# close to NCC's, and a method whose success came from the classifier should stop forgetting.
#
# Every CMF variant starts from the same **CMF-prepared Original**: the Original with its last
# layer replaced by the CMF head and its encoder fine-tuned with cross-entropy on CMF logits for
# one epoch (the paper's preparation), so the features are adapted to a cosine head before any
# unlearning. Each method then runs unchanged; only its context differs (encoder-only training,
# $W$ recomputed each epoch); as in the authors' code, RL, SalUn and NegGrad+ clip the gradient
# norm to 1.0 under CMF and SalUn + CMF decays its LR by 0.2 at epoch 3.
#
# **How a CMF model is measured.** The CMF head classifies ẑ, not the raw feature $f$. As the
# authors do, the LP and the NCC of every CMF model (the CMF Original and every CMF variant) are
# fitted on $\hat z$, the head's own geometry; the raw-feature numbers are shown as a second,
# labelled view further down, since the two can differ: normalising and centring can make a
# class more, or less, separable.

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from torch.nn import functional as F

from illusion import claims, cmf, results
from illusion.book import start
from illusion.claims import paper_results, vit_appendix_applies
from illusion.config import paper_cmf_epochs
from illusion.embedding import tsne
from illusion.heads import HEADS, class_means, ncc_predict
from illusion.models import relative_encoder_change
from illusion.results import variant_label

chapter = start(profile, overrides, "05_cmf")
exp = chapter.exp

# %% [markdown]
# The methods of Table 3 and their settings under CMF (the profile's `variant_methods["cmf"]`;
# `prepare` is the one-epoch fine-tune of the Original).

# %%
cmf_settings = exp.profile.variant_methods["cmf"]
methods = exp.profile.variant_method_names("cmf")
forget_sets = exp.profile.forget_sets
first_single = (exp.profile.buckets.get("single") or forget_sets)[0]
settings = pd.DataFrame([{"method": m, "variant": v, "epochs": c.epochs, "lr": c.lr,
                          "batch_size": c.batch_size, "options": dict(c.options)}
                         for m in ["prepare", *methods] for v, c in
                         ([("cmf", cmf_settings[m])] if m == "prepare" else
                          [("full", exp.profile.method(m)), ("cmf", exp.profile.method(m, "cmf"))])])
chapter.save(settings, "settings")
settings

# %% [markdown]
# ## The CMF-prepared Original
#
# Unlearning under CMF starts from the CMF-prepared Original, so it must classify about as well
# as the Original itself. The table puts the two side by side under the three heads for every
# forget set. The accuracy of a single class can move more than the whole: the cosine head
# redistributes the errors among confusable classes. So the check at the end (real profiles)
# asserts closeness on the **whole test split**: under every head, the CMF Original's accuracy
# is within **3 pp** of the Original's. The second table gives both, with the mean and largest
# per-class difference over the forget sets.

# %%
original = exp.original()
cmf_original = exp.cmf_original()
print(f"CMF preparation: {cmf_original.seconds:.1f} s "
      f"(the Original's training: {original.seconds:.1f} s)")
prepared = pd.concat([exp.evaluate(m, fs) for m in (original, cmf_original) for fs in forget_sets],
                     ignore_index=True)
chapter.save(prepared, "cmf_original")
side = prepared.pivot_table(index=["forget_set", "head", "split"], columns="variant",
                            values="accuracy", sort=False)[["full", "cmf"]]
side.columns = ["Original", "CMF Original"]
side["difference"] = side["CMF Original"] - side["Original"]
side.round(2)

# %%
# Whole-test accuracy from a forget set's retain and forget accuracies (the same for every set).
test_y = exp.data.test.y.cpu()
share = {fs.name: torch.isin(test_y, torch.tensor(fs.classes)).double().mean().item()
         for fs in forget_sets}
index = side.index.to_frame(index=False)
weight = np.where(index["split"] == "forget", index["forget_set"].map(share),
                  1 - index["forget_set"].map(share))
whole = (side[["Original", "CMF Original"]].mul(weight, axis=0)
         .groupby(level=["forget_set", "head"], sort=False).sum()
         .groupby(level="head", sort=False).mean())
whole["difference"] = whole["CMF Original"] - whole["Original"]
per_class = side.xs("forget", level="split")["difference"].abs().groupby(level="head", sort=False)
whole["mean |forget difference|"] = per_class.mean()
whole["max |forget difference|"] = per_class.max()
chapter.save(whole.reset_index(), "cmf_original_closeness")
whole.round(2)

# %% [markdown]
# ## The CMF head is nearest class mean by cosine
#
# A check on the real model: recompute the class means of the head's reading (the code reading
# by default) from the prepared Original's training features, here in the chapter, and compare
# the cosine-nearest mean of every test feature with the stored head's prediction. The same
# features also give the other reading and the Euclidean NCC head: how often they agree with the
# CMF head says how much the choice matters.

# %%
feats = exp.features(cmf_original)
K, reading = feats.num_classes, cmf_original.model.fc.reading
normalize_first = reading == "code"  # the code reading normalises every feature first
train_f = F.normalize(feats.train.double(), dim=1) if normalize_first else feats.train.double()
test_f = F.normalize(feats.test.double(), dim=1) if normalize_first else feats.test.double()
means = class_means(train_f, feats.train_y, K)
mu = train_f.mean(0) if normalize_first else means.mean(0)
cosine = F.normalize(test_f - mu, dim=1) @ F.normalize(means - mu, dim=1).T
head_pred = feats.test_logits.argmax(1)
agree = (cosine.argmax(1) == head_pred).double().mean().item() * 100
logit_gap = (cmf_original.model.fc.tau.item() * cosine - feats.test_logits.double()).abs().max().item()
print(f"CMF head ({reading} reading) vs cosine to the class means computed here: {agree:.2f}% of "
      f"{len(head_pred)} test predictions agree (largest logit difference {logit_gap:.1e})")

# %% [markdown]
# How often the head of the other reading and the Euclidean NCC agree with the CMF head:

# %%
other = "paper" if normalize_first else "code"
other_head = cmf.class_mean_classifier(feats.train, feats.train_y, K, other)
with torch.no_grad():
    other_agree = (other_head(feats.test).argmax(1) == head_pred).double().mean().item() * 100
ncc_agree = (ncc_predict(class_means(feats.train, feats.train_y, K), feats.test) == head_pred
             ).double().mean().item() * 100
head_agreement = pd.DataFrame({"classifier": [f"cosine to class means ({reading} reading, here)",
                                              f"CMF head of the {other} reading", "Euclidean NCC"],
                               "agreement_with_cmf_head": [agree, other_agree, ncc_agree]})
chapter.save(head_agreement, "head_agreement")
head_agreement.round(2)

# %% [markdown]
# ## Table 3: each method, full model vs CMF
#
# Every base method as in the earlier chapters (variant `full`, from the Original) and its CMF
# variant (from the CMF-prepared Original), with the Original, the CMF Original and Retrain for
# reference; mean ± std over the forget sets of each bucket. Rows named `method + cmf` are the
# CMF variants.

# %%
retrains = {fs: exp.retrain(fs) for fs in forget_sets}
unlearned = {(m, v, fs): exp.unlearned(m, fs, v)
             for m in methods for v in ("full", "cmf") for fs in forget_sets}
rows = [exp.evaluate(m, fs, second_opinion=True) for m in (original, cmf_original)
        for fs in forget_sets]
rows += [exp.evaluate(r, fs, second_opinion=True) for fs, r in retrains.items()]
rows += [exp.evaluate(t, fs, second_opinion=True) for (m, v, fs), t in unlearned.items()]
table3 = pd.concat(rows, ignore_index=True)
chapter.save(table3, "table3")
order = ["original", "original + cmf", "retrain"] + [variant_label(m, v) for m in methods
                                                    for v in ("full", "cmf")]
shown = results.with_variant_labels(table3)
# accuracy_table keeps the order in which rows first appear: sort them as in the paper.
shown = shown.sort_values("model", key=lambda s: s.map(order.index), kind="stable")
summary = results.accuracy_table(shown, exp.profile, by=("model",))
chapter.save(results.mean_std(table3, exp.profile), "table3_mean_std")
summary

# %% [markdown]
# The standard deviation of each bucket mean over the seeds of `default` in the spread committed by
# `benchmarks/seed_spread.py` (not this run): a difference between a method and its CMF variant
# smaller than about twice these is within seed noise.

# %%
seed_std = results.seed_std_table("table3", exp.profile, variant_label)
seed_std if seed_std is not None else print(f"no seed spread measured for {exp.profile.name!r}")

# %% [markdown]
# ### LP and NCC of the CMF models on raw features
#
# The same CMF models, their LP and NCC fitted on the raw penultimate features $f$ instead of
# the head's geometry $\hat z$ (the output head is the same in both). Forget accuracy, mean over
# the forget sets; `difference` is raw minus $\hat z$.

# %%
cmf_models = [(cmf_original, fs) for fs in forget_sets] + [
    (t, fs) for (m, v, fs), t in unlearned.items() if v == "cmf"]
views = pd.concat([exp.evaluate(t, fs, geometry=g).assign(geometry=g)
                   for t, fs in cmf_models for g in ("model", "raw")], ignore_index=True)
views = views[views["head"].isin(["lp", "ncc"])]
chapter.save(views, "cmf_geometry_views")
raw_view = (views[views["split"] == "forget"]
            .pipe(results.with_variant_labels)
            .pivot_table(index="model", columns=["head", "geometry"], values="accuracy", sort=False))
for head in ("lp", "ncc"):
    raw_view[(head, "difference")] = raw_view[(head, "raw")] - raw_view[(head, "model")]
raw_view = raw_view[[(h, g) for h in ("lp", "ncc") for g in ("model", "raw", "difference")]]
raw_view.columns = [f"{h.upper()} {'ẑ' if g == 'model' else g}" for h, g in raw_view.columns]
raw_view.round(1)

# %% [markdown]
# Forget accuracy of every forget set (the table above averages these), and the run times:
# the wall time of each unlearning run (training for Original and Retrain, the one-epoch
# preparation for the CMF Original), mean over forget sets. A CMF run includes its feature
# passes over the training split to recompute $W$ at every epoch start and at the end.

# %%
per_set = (shown[shown["split"] == "forget"]
           .pivot_table(index="model", columns=["head", "forget_set"], values="accuracy", sort=False)
           .reindex(order)[list(HEADS)])
per_set.round(1)

# %%
times = shown[shown["head"] == "output"].drop_duplicates(["model", "forget_set"])
run_times = (times.groupby("model", sort=False)["seconds"].agg(mean_s="mean", std_s="std")
             .reindex(order))
chapter.save(run_times.reset_index(), "run_times")
run_times.round(2)

# %% [markdown]
# How far each run moves the encoder: the relative change $\lVert\theta-\theta_0\rVert /
# \lVert\theta_0\rVert$ of the encoder's parameters (the last layer excluded) from the model the
# run starts from ($\theta_0$: the Original, or the CMF Original), mean over forget sets. Under
# CMF only a move of the encoder can change any head, so this is the budget every CMF variant
# has for forgetting.

# %%
shift = pd.DataFrame([{"method": m, "variant": v, "forget_set": fs.name,
                       "relative_encoder_change": relative_encoder_change(
                           t.model, (original if v == "full" else cmf_original).model)}
                      for (m, v, fs), t in unlearned.items()])
chapter.save(shift, "encoder_change")
shift.pivot_table(index="method", columns="variant", values="relative_encoder_change",
                  sort=False)[["full", "cmf"]].round(4)

# %%
plot = shown[(shown["split"] == "forget") & ~shown["model"].isin(order[:3])].assign(
    variant=lambda t: np.where(t["model"].str.endswith("+ cmf"), "cmf", "full"),
    method=lambda t: t["model"].str.replace(" + cmf", "", regex=False))
grid = sns.catplot(plot, x="method", y="accuracy", hue="variant", col="head", kind="bar",
                   col_order=list(HEADS), order=methods, hue_order=["full", "cmf"],
                   errorbar=None, col_wrap=1, height=2.3, aspect=3.0, alpha=0.7)
for ax, head in zip(grid.axes.flat, HEADS):
    sns.stripplot(plot[plot["head"] == head], x="method", y="accuracy", hue="variant",
                  order=methods, hue_order=["full", "cmf"], dodge=True, palette="dark:k", size=3,
                  legend=False, ax=ax)
    ax.tick_params(axis="x", rotation=30)
grid.set_titles("{col_name} head")
grid.set_axis_labels("method", "forget accuracy (%)")
grid.figure.suptitle("Forget accuracy, full vs CMF (bars: mean; dots: each forget set)", y=1.04)
plt.show()

# %% [markdown]
# ### The paper's numbers
#
# On the `paper` profile (CIFAR-10), the paper's CIFAR-10 single-class means (its Table 3 with the
# methods' own Table 1 rows, transcribed from the PDF; "–" where unknown) are printed beside
# ours. They are the paper's, not ours.

# %%
if (exp.profile.paper_recipe and exp.profile.data.name == "cifar10"
        and not vit_appendix_applies(exp.profile)):  # the appendix gives no CMF numbers
    paper = paper_results()
    paper = paper[paper["model"].isin(["retrain", *methods])]
    paper = results.with_variant_labels(paper)
    paper_table = (paper.pivot_table(index="model", columns=["head", "split"], values="accuracy",
                                     sort=False)
                   .reindex([o for o in order if o in set(paper["model"])]))
    paper_table = paper_table[[(h, s) for h in HEADS for s in ("retain", "forget")
                               if (h, s) in paper_table.columns]]
    chapter.save(paper, "paper_table3_transcribed")
    print("paper (Gao et al. 2026, transcribed): CIFAR-10, ResNet-18, single class, mean over 10 classes")
    display(paper_table.round(2).fillna("–"))
else:
    print("the paper's CIFAR-10 ResNet-18 numbers are shown on the `paper` profile only (its "
          "ViT-S/16 appendix has no CMF table)")

# %% [markdown]
# ## Features after unlearning, with and without CMF
#
# t-SNE maps (PCA to 50 dimensions, perplexity 30) of the test features, about 100 images per
# class, for the first single-class forget set; the forget class is drawn large and dark.
# Two pairs: RL, whose success the paper calls an illusion, and the other method whose NCC
# forget accuracy on this forget set differs most between its base and its CMF variant (picked
# from the table above, in either direction). A forget class that stays its own cluster is still
# recognisable, whatever the output head says.

# %%
forget = table3[(table3["forget_set"] == first_single.name) & (table3["split"] == "forget")
                & (table3["head"] == "ncc")].set_index(["model", "variant"])["accuracy"]
change = {m: forget[(m, "cmf")] - forget[(m, "full")] for m in methods if m != "rl"}
contrast = max(change, key=lambda m: abs(change[m]))
pairs = ["rl", contrast] if "rl" in methods else [contrast]
print(f"forget set {first_single.name}: NCC forget of the CMF variant minus the base method's: "
      + ", ".join(f"{m} {d:+.1f} pp" for m, d in change.items()) + f" -> showing {pairs}")

maps = []
for m in pairs:
    for v in ("full", "cmf"):
        f = exp.features(unlearned[(m, v, first_single)])
        maps.append(tsne(f.test, f.test_y, per_class=100, seed=exp.profile.seed)
                    .assign(model=variant_label(m, v)))
maps = pd.concat(maps, ignore_index=True)
maps["class"] = [exp.data.classes[c] for c in maps["label"]]
chapter.save(maps, "tsne")

# %%
names = list(exp.data.classes)
palette = dict(zip(names, sns.color_palette("tab10", len(names))))
is_forget = maps["label"].isin(first_single.classes)
fig, axes = plt.subplots(len(pairs), 2, figsize=(8.4, 3.9 * len(pairs)), squeeze=False)
for ax, model in zip(axes.flat, [variant_label(m, v) for m in pairs for v in ("full", "cmf")]):
    here = maps["model"] == model
    sns.scatterplot(maps[here & ~is_forget], x="x", y="y", hue="class", hue_order=names,
                    palette=palette, s=10, alpha=0.35, linewidth=0, ax=ax, legend=False)
    sns.scatterplot(maps[here & is_forget], x="x", y="y", hue="class", hue_order=names,
                    palette=palette, s=28, edgecolor="k", linewidth=0.6, ax=ax, legend=False)
    ax.set_title(f"{model}: forget class {', '.join(names[c] for c in first_single.classes)}")
    ax.set_xlabel("t-SNE 1"); ax.set_ylabel("t-SNE 2")
handles = [plt.Line2D([], [], marker="o", linestyle="", color=palette[n], label=n) for n in names]
fig.legend(handles=handles, loc="center right", title="class", frameon=False)
fig.suptitle("Test features after unlearning (forget class: large dots with black edges)")
plt.tight_layout(rect=(0, 0, 0.86, 0.97))
plt.show()

# %% [markdown]
# ## Forget accuracy during unlearning
#
# The heads measured during RL on the first single-class forget set, from the Original (left)
# and under CMF from the CMF-prepared Original (right); LP and NCC are refitted at each point on
# a stratified subset of the training features. Without CMF the output forget accuracy falls
# while LP and NCC stay up; under CMF the output can fall only as fast as the features move, so
# it follows NCC. (Under CMF the output between two epoch starts uses the $W$ computed at the
# last epoch start, as in Algorithm 2; the stored model gets one more recomputation at the end.)

# %%
curve_method = "rl" if "rl" in methods else methods[0]
curves = pd.concat([exp.unlearning_curve(curve_method, first_single, v) for v in ("full", "cmf")],
                   ignore_index=True)
chapter.save(curves, "curves")
fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.4), sharey=True)
for ax, v in zip(axes, ("full", "cmf")):
    sns.lineplot(curves[curves["variant"] == v], x="step", y="accuracy", hue="head",
                 hue_order=list(HEADS), style="split", style_order=["forget", "retain"],
                 marker="o", ax=ax, legend=v == "cmf")
    ax.set_title(f"{variant_label(curve_method, v)}, forget set {first_single.name}")
    ax.set_xlabel("optimiser step"); ax.set_ylabel("test accuracy (%)")
handles, labels = axes[1].get_legend_handles_labels()
axes[1].get_legend().remove()
plt.tight_layout()
# Below the panels, so the figure keeps the column's width.
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=5, frameon=False,
           fontsize=9)
plt.show()

# %% [markdown]
# ## The book's budget and the paper's
#
# The `default` profile unlearns for one epoch; the paper runs its CMF variants for four (RL,
# SalUn) or three epochs (the others; UNSIR's loop runs as many impair as repair epochs). The
# verdicts below are taken at the book's budget. To see whether they depend on it, RL + CMF and
# SalUn + CMF (`illusion.config.BUDGET_METHODS`: the paper's budget is furthest from the book's
# for them, four epochs to one, and claim (iii) below says they barely forget, which a longer
# run could overturn; the other three cost more than the book's time allows) are run here for
# the paper's number of epochs on the first single-class forget set, and the three heads are
# measured at the end of every epoch of the run's loop (LP and NCC in the $\hat z$ geometry,
# fitted on 200 training images per class, as in the curves above; under CMF W is recomputed at
# each point). The table compares the end of that run with the book's own run (the stored model
# of Table 3), measured the same way. (A longer run is not the book's run continued for every
# method: UNSIR impairs for `epochs` epochs before it repairs.)

# %%
# Empty on a paper recipe, whose runs are at the paper's budget already.
paper_epochs = paper_cmf_epochs(exp.profile)
if paper_epochs:
    budgets = pd.concat([exp.unlearning_curve(m, first_single, "cmf", epochs=epochs, at="epoch")
                         for m, epochs in paper_epochs.items()], ignore_index=True)
    chapter.save(budgets, "budgets")
    grid = sns.relplot(budgets[budgets["split"] == "forget"], x="epoch", y="accuracy", hue="head",
                       hue_order=list(HEADS), col="model", col_order=list(paper_epochs),
                       kind="line", marker="o", col_wrap=3, height=2.4, aspect=1.0)
    grid.set_titles("{col_name} + cmf")
    grid.set_axis_labels("epoch of the run's loop", "test forget accuracy (%)")
    grid.figure.suptitle(f"CMF variants at the paper's budget, forget set {first_single.name}",
                         y=1.05)
    plt.show()
else:
    print(f"{exp.profile.name} is one of the paper's recipes: its runs are at the paper's budget")

# %% [markdown]
# The forget accuracy at the end of each run at the paper's budget beside the book's own run:

# %%
if paper_epochs:
    probe_train = exp.probe_subset()
    book_runs = pd.concat([exp.quick_heads(unlearned[(m, "cmf", first_single)].model, first_single,
                                           probe_train).assign(model=m, budget="book")
                           for m in paper_epochs], ignore_index=True)
    paper_runs = budgets[budgets["epoch"] == budgets.groupby("model")["epoch"].transform("max")]
    at_budget = pd.concat([book_runs, paper_runs.assign(budget="paper")], ignore_index=True)
    at_budget = at_budget[at_budget["split"] == "forget"]
    chapter.save(at_budget, "budgets_forget")
    display(at_budget.pivot_table(index="model", columns=["budget", "head"], values="accuracy",
                                  sort=False)[[(b, h) for b in ("book", "paper") for h in HEADS]]
            .round(1))

# %% [markdown]
# ## What the numbers say about the paper's claims
#
# Gao et al. (2026) claim that under CMF (i) the output forget accuracy tracks the features,
# (ii) the CMF variants lower LP and NCC forget accuracy below their base methods, and (iii) RL
# and SalUn barely forget once the shortcut is gone. The paper's own CIFAR-10 numbers do not
# show (ii) everywhere: RL + CMF has NCC forget 82.04 against RL's 80.25, NegGrad+ + CMF 57.83
# against NegGrad+'s 52.00, and no LP number of NegGrad+ and UNSIR without CMF is known. So
# `illusion.claims.cmf_checks` tests (ii) on exactly the (method, head) pairs where the
# paper's numbers fall (LP: RL, SalUn, SCRUB; NCC: SalUn, SCRUB, UNSIR). The same function on
# the paper's transcribed numbers gives the columns `paper` and `in the paper`: there every part
# holds.
#
# Tolerances (real profiles, means over all forget sets of the profile):
#
# 1. **output tracks the features** (`claim3_tracks`): for every CMF variant, |output forget − NCC
#    forget| is at most **5 pp** (the paper's largest gap is 3.6 pp, UNSIR + CMF);
# 2. **CMF lowers the representation heads** (`claim3_lowers`): on the pairs above, the CMF
#    variant's forget accuracy is strictly below its base method's;
# 3. **the illusion exposed** (`claim3_illusion`): RL + CMF and SalUn + CMF keep at least
#    **half** the output forget accuracy of the CMF Original they start from;
# 4. the CMF-prepared Original stays within **3 pp** of the Original on the whole test split
#    under every head, and its head agrees with the cosine nearest class mean computed here on
#    at least **99%** of the test images (bf16 on a GPU may flip a few near-ties).
#
# Where (ii) fails, read the encoder-change table above first: a CMF variant that moves the
# encoder far less than its base method cannot lower LP or NCC, whatever its loss.

# %%
# Each part against its tolerance alone (no profile's record of what the seeds leave undecided:
# the checks below show that).
columns = ["check", "subject", "text", "value", "verdict"]
parts = claims.decide(claims.cmf_checks(table3), None)[columns]
paper_parts = claims.decide(claims.cmf_checks(paper_results()), None)[["check", "subject", "value", "verdict"]]
verdicts = parts.merge(paper_parts.rename(columns={"value": "paper", "verdict": "in the paper"}),
                       on=["check", "subject"], how="left")
chapter.save(verdicts, "claims")
for check, group in verdicts.groupby("check", sort=False):
    held = group.loc[group["verdict"] == "holds", "subject"].tolist()
    missed = group.loc[group["verdict"] == "fails", "subject"].tolist()
    print(f"{check}: holds for {', '.join(held) or 'none'}; DOES NOT HOLD for {', '.join(missed) or 'none'}")
cmf_original_retain = results.mean_accuracy(table3, "original", "cmf", head="output", split="retain")
retain_change = {m: results.mean_accuracy(table3, m, "cmf", head="output", split="retain")
                    - cmf_original_retain for m in methods}
print("output retain change of each CMF variant from the CMF Original (pp): "
      + ", ".join(f"{m} {d:+.1f}" for m, d in retain_change.items()))
verdicts

# %% [markdown]
# ## Checks
#
# On the real profiles the build asserts the two properties of the CMF Original (closeness,
# head = cosine NCC) and every part of the claim above with its tolerance
# (`illusion.claims.TOLERANCES`). Two kinds of part are not asserted as holding, both measured
# over the seeds of the committed spread on `default` (`benchmarks/seed_spread.py`, last column): a part whose value
# fails on every seed, with room, is recorded in `illusion.claims.FAILS`: the claim does not
# hold there, and the build fails if it starts to hold (the record must then shrink); a part
# whose spread does not clear its threshold by three standard deviations is *not decided* at
# this scale. Neither list relaxes a tolerance.
#
# On `default` (one epoch of unlearning, where the paper runs three or four), over the five
# seeds of the committed spread, LP by the paper's SGD probe: the illusion is exposed as the
# paper says — RL and SalUn under CMF keep 73% and 75% (± 2%) of the CMF Original's output
# forget accuracy — and, with LP and NCC measured in the CMF geometry as the authors do, the
# output head tracks NCC for every CMF variant on every seed (largest mean gap 3.1 ± 1.1 pp,
# NegGrad+, and UNSIR's 1.8 ± 1.4 pp are within three standard deviations of the 5 pp
# tolerance: *not decided*). Where CMF should lower the representation heads below the base
# method, it does by more than three standard deviations for RL's LP (−4.4 ± 0.6 pp), SalUn's
# NCC (−15 ± 2 pp) and UNSIR's NCC (−24 ± 4 pp); SalUn's LP is lower on every seed (−2.8 ± 1.0
# pp) but by less than three standard deviations, and SCRUB's LP (+0.2 ± 1.5 pp) and NCC (+3.1
# ± 3.5 pp) move less than the seeds do: those three are *not decided*. The probe matters
# here: under the converged L-BFGS probe (the second opinion in the table), an earlier
# five-seed spread had RL's and SalUn's LP not decided and SCRUB + CMF keeping its LP above
# SCRUB's on every seed (+2.6 ± 1.0 pp).
# Measured with the raw features instead (the second view above), NCC forget is 5-20 pp higher
# and `tracks` failed for four of five methods: that failure, recorded by an earlier build, came
# from measuring in the wrong geometry.

# %%
checks_table = claims.decide(claims.with_second_opinion(claims.cmf_checks, table3, whole.reset_index(), agree),
                             exp.profile.name)
chapter.save(checks_table, "checks")
chapter.show_verdict(checks_table, "Claim 3")
claims.report(checks_table, exp.profile.name)

# %%
chapter.enforce(checks_table)
