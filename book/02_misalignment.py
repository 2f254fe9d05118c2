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
# # Feature–classifier misalignment
#
# ```{glue} verdict
# ```
#
# The paper's central evidence (Gao et al., 2026, Table 1): standard unlearning methods drive
# the *output* forget accuracy to about zero, while the penultimate features still separate the
# forgotten class — a linear probe (LP) or a nearest-class-mean classifier (NCC) on the frozen
# features recovers it, well above what a model retrained without the class (Retrain) achieves.
# The classifier has been bent away from the class; the representation has not forgotten it.
#
# Every method starts from the same Original model (chapter 1) and is run on every forget set of
# the profile; models, evaluations and metrics come from the shared artifact store.

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

from illusion import claims, geometry, results
from illusion.book import start
from illusion.claims import paper_results
from illusion.embedding import tsne
from illusion.heads import HEADS, class_means
from illusion.unlearn import BASELINES, having

chapter = start(profile, overrides, "02_misalignment")
exp = chapter.exp

# %% [markdown]
# ## The methods
#
# The seven baselines of the paper — retain-only fine-tuning, Random Label (RL), SalUn,
# NegGrad+, SCRUB, UNSIR and the training-free SVD projection of Kodge et al. — and two standard
# methods beyond its tables, plain gradient ascent (GA) and ℓ1-sparse fine-tuning. Their
# hyper-parameters are the profile's (printed above); on `paper` they are the paper's. Last,
# beyond the paper, **Spotter** (Ha, Park & Yoon, 2026), a defence built against the
# prototypical relearning attack of {doc}`07_beyond`: does a method that resists prototypes also
# escape the linear probe and the nearest class mean?

# %%
METHODS = [*BASELINES, *having("defence")]
MODEL_ORDER = ["original", "retrain", *METHODS]
original = exp.original()
models = exp.models(METHODS)  # {(name, variant, forget set): Trained}, Original and Retrain too
accuracy = exp.accuracy(models, second_opinion=True)  # LP: SGD, and L-BFGS beside it
metrics = pd.concat([exp.metrics(m, fs) for (_, _, fs), m in models.items()], ignore_index=True)
chapter.save(accuracy, "table1")
chapter.save(metrics, "metrics")
print(f"{len(models)} model x forget-set pairs evaluated")

# %% [markdown]
# ## Table 1: three heads
#
# Mean ± standard deviation over the forget sets of each bucket, in percent on the test split.
# **MIA** is the membership-inference efficacy (share of $D_f$ that an SVC on true-label
# confidence calls non-member; higher means the forget set looks unseen), **RTE** the unlearning
# wall time in seconds (for Original and Retrain: training time).

# %%
table1 = results.accuracy_table(accuracy, exp.profile, by=("model",))
side = results.with_bucket(metrics[metrics["metric"] == "mia"], exp.profile)
side = side.groupby(["bucket", "model"], sort=False)["value"].mean().rename(("MIA", ""))
rte = results.with_bucket(accuracy[accuracy["head"] == "output"], exp.profile)
rte = rte.groupby(["bucket", "model"], sort=False)["seconds"].mean().rename(("RTE (s)", ""))
table1 = table1.join(side.round(1)).join(rte.round(1))
table1

# %% [markdown]
# How much each of these means moves with the seed: the standard deviation of the bucket mean
# over the seeds of `default` in the spread committed by `benchmarks/seed_spread.py` (not this run). A
# difference between two rows smaller than about twice these is within seed noise.

# %%
seed_std = results.seed_std_table("table1", exp.profile)
seed_std if seed_std is not None else print(f"no seed spread measured for {exp.profile.name!r}")

# %% [markdown]
# ## Forget accuracy under the three heads
#
# Each bar is a method's forget accuracy averaged over the single-class forget sets (the error
# bar spans the forget sets); the dashed line is Retrain's level under the same head. An honest
# unlearning method would sit near the dashed line under *every* head.

# %%
forget = accuracy[accuracy["split"] == "forget"]
single = results.with_bucket(forget, exp.profile)
bars = single[single["model"].isin(METHODS)]
grid = sns.catplot(bars, x="model", y="accuracy", col="head", col_order=list(HEADS), kind="bar",
                   order=METHODS, errorbar=("pi", 100), height=3.4, aspect=0.8, color="tab:blue")
retrain_level = single[single["model"] == "retrain"].groupby("head")["accuracy"].mean()
for head, ax in zip(HEADS, grid.axes.flat):
    ax.axhline(retrain_level[head], ls="--", color="black", label="Retrain")
    ax.tick_params(axis="x", rotation=60)
grid.axes.flat[0].legend()
grid.set_titles("head: {col_name}")
grid.set_axis_labels("", "forget accuracy (%)")
grid.figure.suptitle("Forget accuracy of each method (all forget sets), Retrain dashed", y=1.04)
plt.show()

# %% [markdown]
# ## Per forget set: where the contrast is large and where it is not
#
# The gap between an unlearned model's LP/NCC forget accuracy and Retrain's depends on the class.
# A class that looks like others (Shirt next to T-shirt, Pullover and Coat on Fashion-MNIST)
# is separated only by features learnt *from that class*: Retrain, never having seen it, mixes it
# with its neighbours, while the unlearned model keeps those features. A distinct class is
# separated by generic features any model learns, so even Retrain's probes recover it. As a
# measure of confusability we report the cosine between the forget class mean and the nearest
# other class mean in the Original's centred feature space.

# %%
orig_features = exp.features(original)
means = class_means(orig_features.train.double(), orig_features.train_y, exp.data.num_classes)
wide = forget.pivot_table(index=["forget_set", "model"], columns="head", values="accuracy")
contrast = []
for fs in exp.profile.forget_sets:
    row = {"forget_set": fs.name, "classes": ", ".join(exp.data.classes[c] for c in fs.classes),
           "confusability": round(geometry.confusability(means, fs.classes), 3)}
    for method in ("rl", "salun"):
        for head in ("lp", "ncc"):
            row[f"{method} − retrain ({head})"] = round(wide.loc[(fs.name, method), head]
                                                          - wide.loc[(fs.name, "retrain"), head], 1)
    row["retrain (lp)"], row["retrain (ncc)"] = wide.loc[(fs.name, "retrain"), "lp"], wide.loc[(fs.name, "retrain"), "ncc"]
    contrast.append(row)
contrast = pd.DataFrame(contrast)
chapter.save(contrast, "contrast_per_forget_set")
contrast

# %% [markdown]
# ## t-SNE of the penultimate features
#
# Test features of the Original, of RL and of Retrain for the first single-class forget set
# (PCA to 50 dimensions, then t-SNE with perplexity 30, as in the authors' code), the forgotten
# class in red. After RL the forgotten class is still a cluster of its own; after Retrain it
# is spread over its neighbours.

# %%
fs0 = exp.profile.buckets["single"][0]
maps = []
for name in ("original", "rl", "retrain"):
    f = exp.features(models[name, "full", fs0])
    maps.append(tsne(f.test, f.test_y, per_class=100, seed=exp.profile.seed).assign(model=name))
maps = pd.concat(maps, ignore_index=True)
maps["forgotten"] = maps["label"].isin(fs0.classes)
chapter.save(maps, "tsne")
fig, axes = plt.subplots(1, 3, figsize=(8.6, 3.2))
for ax, (name, part) in zip(axes, maps.groupby("model", sort=False)):
    rest, gone = part[~part["forgotten"]], part[part["forgotten"]]
    ax.scatter(rest["x"], rest["y"], c=rest["label"], cmap="tab10", vmin=0, vmax=9, s=6, alpha=0.35)
    ax.scatter(gone["x"], gone["y"], c="red", s=10, label=f"forgotten: {exp.data.classes[fs0.classes[0]]}")
    ax.set_title(name); ax.set_xticks([]); ax.set_yticks([])
# One legend for the colours of every panel: the retained classes, and the forgotten one in red.
kept = [c for c in range(exp.data.num_classes) if c not in fs0.classes]
handles = [plt.Line2D([], [], ls="", marker="o", color=plt.get_cmap("tab10")(c / 9),
                      label=exp.data.classes[c]) for c in kept]
handles.append(plt.Line2D([], [], ls="", marker="o", color="red",
                          label=f"{exp.data.classes[fs0.classes[0]]} (forgotten)"))
fig.suptitle(f"t-SNE of test features, forget set {fs0.name}")
plt.tight_layout()
fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=4, fontsize=9,
           frameon=False)
plt.show()

# %% [markdown]
# ## Forget accuracy during unlearning
#
# RL on the first single-class forget set, measured at regular steps: the output forget
# accuracy collapses within the first steps, while LP and NCC — fitted afresh on the current
# features at each point (on a stratified subset of 200 training images per class, to keep it
# cheap) — barely move.

# %%
curve = exp.unlearning_curve("rl", fs0, points=8)
chapter.save(curve, "rl_curve")
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.lineplot(curve, x="step", y="accuracy", hue="head", style="split", hue_order=list(HEADS),
             style_order=["forget", "retain"], markers=True, ax=ax)
ax.set_title(f"RL unlearning of forget set {fs0.name}: accuracy vs step")
ax.set_ylabel("test accuracy (%)")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left")
plt.show()

# %% [markdown]
# ## Alignment of classifier rows and class means
#
# Cosine between each classifier row $w_c$ and its centred class mean $\mu_c - \mu_G$ (training
# features), averaged over forget classes and over retain classes. In a trained network the two
# are aligned (neural collapse, NC3). Unlearning that only bends the classifier lowers the
# forget-class cosine while the retain classes stay aligned: the misalignment the chapter is
# named after.

# %%
align = metrics[metrics["metric"].str.startswith("alignment")].copy()
align["classes"] = align["metric"].str.replace("alignment_", "")
chapter.save(align, "alignment")
fig, ax = plt.subplots(figsize=(9, 3.6))
sns.barplot(align, x="model", y="value", hue="classes", order=MODEL_ORDER, errorbar=("pi", 100), ax=ax)
ax.set_ylabel("cos(w_c, μ_c − μ_G)"); ax.set_xlabel("")
ax.set_title("Classifier–class-mean alignment (all forget sets)")
ax.tick_params(axis="x", rotation=45)
plt.show()
align.pivot_table(index="model", columns="classes", values="value").reindex(MODEL_ORDER).round(3)

# %% [markdown]
# ## Layer by layer
#
# A linear probe on the pooled output of the stem and of each residual stage (on a ViT: of each
# transformer block), for the first single-class forget set. Where the unlearned model's curve
# stays above Retrain's, that stage still carries class-specific information about the
# forgotten class.

# %%
layers = pd.concat([exp.layerwise(models[name, "full", fs0], fs0) for name in ("original", "rl", "salun", "retrain")],
                   ignore_index=True)
chapter.save(layers, "layerwise_lp")
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.lineplot(layers, x="stage", y="accuracy", hue="model", style="split", style_order=["forget", "retain"],
             markers=True, ax=ax)
ax.set_title(f"Layer-wise linear probe, forget set {fs0.name}")
ax.set_ylabel("LP test accuracy (%)"); ax.set_xlabel("")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left")
plt.show()

# %% [markdown]
# ## Our verdict beside the paper's numbers
#
# The paper's own numbers for this profile's kind of model, labelled as the paper's, beside
# this run's. For a ResNet: the same checks computed on the paper's CIFAR-10 / ResNet-18
# single-class means (REFERENCE §9, transcribed; its probe is its SGD protocol), judged by the
# same thresholds. That table gives no Original row and no LP numbers for NegGrad+ and UNSIR,
# so the checks against the Original cannot be computed there (blank).
#
# For a vision transformer (the `paper-vit` profiles): the paper's appendix table for ViT-S/16
# (ImageNet-pretrained; the Original fine-tuned on the whole training set, Retrain the same
# pretrained backbone fine-tuned on D_r; RL, SalUn and NegGrad+ only), the bucket means of the
# profile's dataset (CIFAR-10's where the appendix has none), then the same checks per bucket.
# The appendix's finding: with pretrained features **even Retrain keeps LP forget accuracy at
# 77.6–97.7 %** (NCC 74.8–94.5 %), because the features come from ImageNet pre-training, not
# from the forget class. A high LP forget accuracy after unlearning is then no illusion by
# itself: a feature-level verdict must be read against Retrain, not against zero, as claim 1's
# check "LP/NCC forget − Retrain's" does.

# %%
if claims.vit_appendix_applies(exp.profile):
    dataset = (exp.profile.data.name if exp.profile.data.name in claims.PAPER_VIT_DATASETS
               else "cifar10")
    theirs_label = "paper, ViT-S/16 appendix" + (f", {dataset}" if dataset != exp.profile.data.name else "")
    paper_vit = claims.paper_vit_results(dataset)
    cell, sources = ["bucket", "model", "head", "split"], [exp.profile.name, theirs_label]
    beside = (results.mean_std(accuracy, exp.profile, by=("model",)).rename(columns={"mean": sources[0]})
              .merge(paper_vit.rename(columns={"accuracy": sources[1]}), on=cell)[[*cell, *sources]])
    chapter.save(beside, "paper_vit_beside")
    rows = [(b, m, s) for b, m in beside[["bucket", "model"]].drop_duplicates().values for s in sources]
    print("Bucket means on the test split (%): this run and the paper's")
    display(beside.melt(cell, sources, var_name="source")
            .pivot_table(index=["bucket", "model", "source"], columns=["head", "split"], values="value")
            .reindex(index=pd.MultiIndex.from_tuples(rows, names=["bucket", "model", "source"]),
                     columns=pd.MultiIndex.from_product([list(HEADS), results.SPLIT_ORDER]))
            .round(2))

    def per_bucket(table):  # claim 1's checks on each bucket's means
        return pd.concat([claims.decide(claims.misalignment_checks(part), None).assign(bucket=b)
                          for b, part in table.groupby("bucket", sort=False)], ignore_index=True)
    ours, theirs = per_bucket(results.with_bucket(accuracy, exp.profile)), per_bucket(paper_vit)
    suffixes = (f" ({exp.profile.name})", f" ({theirs_label})")
else:
    ours = claims.decide(claims.misalignment_checks(accuracy), None)
    paper = paper_results()  # its full models only: the checks read every row of a model
    theirs = claims.decide(claims.misalignment_checks(paper[paper["variant"] == "full"]), None)
    suffixes = (f" ({exp.profile.name})", " (paper, ResNet-18, CIFAR-10)")
theirs.loc[theirs["value"].isna(), "verdict"] = ""
keys = [c for c in ("bucket", "check", "subject") if c in ours]
side_by_side = ours[[*keys, "value", "verdict"]].merge(theirs[[*keys, "value", "verdict"]], on=keys,
                                                       suffixes=suffixes)
chapter.save(side_by_side, "paper_beside")
side_by_side.round(2)

# %% [markdown]
# ## Checks
#
# The claim, as computed on this run, averaged over all forget sets of the profile, for RL and
# SalUn (the two methods the paper singles out):
#
# 1. output forget accuracy ≤ 5%;
# 2. LP and NCC forget accuracy above Retrain's by at least **5 pp**;
# 3. LP and NCC forget accuracy near the Original's: at most **10 pp** below it;
# 4. output retain accuracy within **3 pp** of the Original's.
#
# The per-forget-set table above shows where the contrast is large and where it is not. The
# thresholds live in `illusion.claims.TOLERANCES`; the last column is each number's spread over
# the seeds of the committed spread on `default` (see the reproducibility page): a check whose
# spread does not clear its threshold by three standard deviations is *not decided* at this
# scale and is not asserted.

# %%
checks_table = claims.decide(claims.with_second_opinion(claims.misalignment_checks, accuracy),
                             exp.profile.name)
chapter.save(checks_table, "checks")
chapter.show_verdict(checks_table, "Claim 1")
claims.report(checks_table, exp.profile.name)

# %%
chapter.enforce(checks_table)
