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
# # The setting: data, the Original model and Retrain
#
# ```{glue} verdict
# ```
#
# Every later chapter starts from the models trained here. The **Original** model is trained on
# the whole training split; for every forget set, **Retrain** — the gold standard of unlearning —
# is trained from scratch on the retain set $D_r$ only, with the same recipe. Each model is then
# read through three *heads* on the test split (the paper's §5):
#
# - **Output**: the model's own classifier;
# - **LP**: a linear probe, a fresh linear layer trained on the frozen penultimate features of
#   the whole training split (forget classes included, true labels);
# - **NCC**: nearest class mean of those features.
#
# Accuracies are in percent on test images of the retain classes (*retain*) and of the forget
# classes (*forget*). All models and tables come from the artifact store: a re-run reuses what
# exists and recomputes only what a changed setting affects.

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from illusion import claims, results
from illusion.book import start
from illusion.heads import HEADS
from illusion.train import accuracy
from illusion.unlearn import having

chapter = start(profile, overrides, "01_setup")
exp = chapter.exp

# %% [markdown]
# ## The data
#
# A fixed, stratified, seeded subset of the dataset; a stratified share of the training part is
# held out for model selection (validation) and never trained on.

# %%
data = exp.data
counts = pd.DataFrame({
    part: pd.Series(getattr(data, part).y.cpu().numpy()).value_counts().sort_index()
    for part in ("train", "val", "test")
}).rename(index=dict(enumerate(data.classes)))
counts.loc["total"] = counts.sum()
counts

# %%
per_class = 8
shown = range(min(data.num_classes, 10))  # CIFAR-100 and Tiny-ImageNet: their first ten classes
fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.9, len(shown) * 0.95),
                         squeeze=False)
for c, row in zip(shown, axes):
    images = data.test.x[data.test.y == c][:per_class].float().cpu()
    for ax, image in zip(row, images):
        ax.imshow(image.permute(1, 2, 0).squeeze(-1), cmap="gray")
        ax.set_xticks([]); ax.set_yticks([])
    row[0].set_ylabel(f"{c}: {data.classes[c]}", rotation=0, ha="right", va="center", fontsize=8)
fig.suptitle(f"{data.name}: test images of "
             + ("each class" if len(shown) == data.num_classes else f"{len(shown)} of its {data.num_classes} classes"))
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The Original model
#
# The paper's recipe (SGD with Nesterov momentum, weight decay, warm-up then cosine decay; the
# checkpoint with the best validation accuracy is kept), at the profile's scale.

# %%
original = exp.original()
history = pd.DataFrame({k: v for k, v in original.record["history"].items() if k != "best_epoch"})
original_test_accuracy = accuracy(original.model, data.test)
print(f"Original: {original.seconds:.0f} s of training, best epoch "
      f"{original.record['history']['best_epoch']}, test accuracy {original_test_accuracy:.2f}%")
chapter.save(pd.DataFrame({"model": ["original"], "test_accuracy": [original_test_accuracy],
                           "best_epoch": [original.record["history"]["best_epoch"]]}), "original")

# %% [markdown]
# ## Retrain, one per forget set
#
# The profile's forget sets, by bucket. Single-class forget sets span classes that are easy to
# confuse with others and classes that are not; the multi-class bucket forgets a group.
#
# As in the authors' code, the validation split is held out only to train the Original (and to
# prepare the CMF Original, chapter 5): Retrain trains on D_r, the retain classes of the whole
# training set, validation images included, and keeps its last epoch. The same whole training
# set gives D_f and D_r to every unlearning method and the training features of the LP and NCC.

# %%
pd.DataFrame([{"bucket": exp.profile.bucket_of(fs), "forget_set": fs.name,
               "classes": data.describe_classes(fs.classes)} for fs in exp.profile.forget_sets])

# %%
retrains = {fs: exp.retrain(fs) for fs in exp.profile.forget_sets}
curves = [history.assign(model="original")]
curves += [pd.DataFrame({k: v for k, v in r.record["history"].items() if k != "best_epoch"})
           .assign(model=f"retrain {fs.name}") for fs, r in retrains.items()]
curves = pd.concat(curves, ignore_index=True)
chapter.save(curves, "training_curves")
fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
sns.lineplot(curves, x="epoch", y="train_loss", hue="model", ax=axes[0])
sns.lineplot(curves, x="epoch", y="val_accuracy", hue="model", ax=axes[1], legend=False)
axes[0].set(title="training loss", ylabel="cross-entropy")
axes[1].set(title="validation accuracy, Original only", ylabel="accuracy (%)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The three heads
#
# Features are extracted once per model and shared by every head. For the Original model the
# "forget" columns are the forget classes' test accuracy *before* unlearning; for Retrain, after
# training without them. The gap between Retrain's output (0 by construction, as the forget
# classes have no training data) and its LP/NCC accuracy measures how much a model that never
# saw a class still separates it through features learnt from the others.

# %%
rows = [exp.evaluate(original, fs) for fs in exp.profile.forget_sets]
rows += [exp.evaluate(r, fs) for fs, r in retrains.items()]
heads = pd.concat(rows, ignore_index=True)
chapter.save(heads, "heads")
results.accuracy_table(heads, exp.profile)

# %%
plot = heads.assign(model=heads["model"] + " / " + heads["split"])
grid = sns.catplot(plot, x="forget_set", y="accuracy", hue="head", col="model", kind="bar",
                   hue_order=list(HEADS), col_order=["original / retain", "original / forget",
                                                     "retrain / retain", "retrain / forget"],
                   col_wrap=2, height=2.4, aspect=1.45)
grid.set_titles("{col_name}")
grid.set_axis_labels("forget set", "test accuracy (%)")
plt.show()

# %% [markdown]
# ## Two linear probes
#
# The paper trains its probe with SGD (learning rate 0.01, momentum 0.9, batch 128, the best
# epoch on a 90/10 split of the training features; 20 epochs on CIFAR-10, 150 on its other
# datasets — the profile's setting is printed above). That probe decides every LP number a
# check of this book reads. Beside it, Tables 1–3 show a second opinion: full-batch L-BFGS on
# the same cached features with a small L2 penalty, deterministic and converged, independent
# of a step size and of when a validation split happens to peak. Both are fitted here on every
# kind of model the claims use: the Original and every Retrain (the references), and, on the
# first single-class forget set, every baseline in full, in its classifier-only variant and
# under CMF (LP in the CMF head's geometry ẑ, as the authors measure it).
#
# On the references the check below asserts that the two agree, on average over these models,
# within **1 percentage point** on the test images of the retain classes and within **3 pp**
# on those of the forget classes. The forget split is small (200 test images per class on
# `default`, so one image is 0.5 pp) and the probes differ most on the confusable forget
# classes; a probe gap on the whole test split would hide it under the retain images.

# %%
first_single = (exp.profile.buckets.get("single") or exp.profile.forget_sets)[0]
baselines, edits = having("baseline"), having("edits_classifier")
kinds = {"reference": [(original, first_single)] + [(r, fs) for fs, r in retrains.items()],
         "unlearned": [(exp.unlearned(m, first_single), first_single) for m in baselines],
         "classifier-only": [(exp.unlearned(m, first_single, "classifier_only"), first_single)
                             for m in baselines if m not in edits],
         "CMF (ẑ)": [(exp.cmf_original(), first_single)]
                    + [(exp.unlearned(m, first_single, "cmf"), first_single)
                       for m in exp.profile.variant_method_names("cmf")]}
probes = pd.concat([exp.evaluate(m, fs, heads=("lp",), lp=lp).assign(probe=lp, kind=kind)
                    for kind, models in kinds.items() for m, fs in models
                    for lp in ("lbfgs", "sgd")], ignore_index=True)
chapter.save(probes, "linear_probes")
probe_table = probes.pivot_table(index=["kind", "model", "variant", "forget_set", "split"],
                                 columns="probe", values="accuracy", sort=False)
probe_table["difference"] = probe_table["lbfgs"] - probe_table["sgd"]
print("mean fitting time per probe (s):", probes.groupby("probe")["seconds"].mean().round(2).to_dict())
probe_table.round(2)

# %% [markdown]
# Where the two probes part, by kind of model: the mean and the largest |L-BFGS − SGD| on each
# split. On the references they agree (the check below); on the models the claims are about
# they may not, and a verdict that rests on a linear-probe number is then only as firm as that
# gap: every chapter's checks show the L-BFGS probe's value beside the paper's, and say
# *depends on the probe* where the two would decide a check differently.

# %%
gaps = probe_table["difference"].abs().groupby(level=["kind", "split"], sort=False)
chapter.save(gaps.agg(["mean", "max"]).reset_index(), "probe_gaps")
gaps.agg(["mean", "max"]).unstack("split").round(2)

# %% [markdown]
# ## Checks
#
# On the real profiles: the Original model reaches the profile's accuracy target on the test
# split (88% on `default`, Fashion-MNIST with a narrow ResNet-10: a weak Original makes every
# later number meaningless; with 15 epochs it fell below 88% on two of three seeds, so `default`
# trains it for 22), and the L-BFGS probe matches the paper's SGD protocol on the references
# within 1 pp on the retain split and 3 pp on the forget split. Every
# tolerance of the book, with its reason, lives in `illusion.claims.TOLERANCES`; the last column
# gives the spread of the same number over the seeds of the committed spread on `default` (measured by
# `benchmarks/seed_spread.py`, see the reproducibility page). A check whose spread does not
# clear its threshold by three standard deviations is shown as *not decided* and never asserted.
# On `default` all three are met on every seed of the committed spread, but by less than that:
# the Original's accuracy is 89.3 ± 0.6% (lowest 88.25%), the probe gaps 0.4 ± 0.2 pp (retain)
# and 2.0 ± 0.9 pp (forget, highest 3.3 pp): *not decided*, shown with their spread.

# %%
checks_table = claims.decide(claims.setup_checks(original_test_accuracy, probes), exp.profile.name)
chapter.save(checks_table, "checks")
chapter.show_verdict(checks_table, "The setting's checks")
claims.report(checks_table, exp.profile.name)

# %%
chapter.enforce(checks_table)
