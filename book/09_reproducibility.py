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
# # Reproducibility: the claims ledger, configurations, run times
#
# This page gathers, for the profile the book was built on, each claim of the paper (and last,
# labelled as ours, chapter 7's) with our verdict, the exact configuration every number came
# from, what each stage cost, and the software and hardware that ran it. The ledger is computed
# from the same stored models and tables as the chapters (nothing is recomputed when the
# chapters ran before it), with the tolerances the chapters state.

# %% tags=["parameters"]
profile = "default"
overrides = {}

# %%
import os
import platform
import sys
from importlib.metadata import version

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from illusion import claims
from illusion.book import chapters, start, timings_path
from illusion.config import get_profile
from illusion.results import run_name
from illusion.claims import run_ledger, spread_path
from illusion.paths import project_root

chapter = start(profile, overrides, "09_reproducibility")
exp = chapter.exp

# %% [markdown]
# ## The claims ledger
#
# Each claim (see the introduction) with one verdict, read from the checks the chapters saved
# (`checks.csv` of every chapter of this run; `illusion.claims.run_ledger`): the same checks,
# tolerances and wording as each chapter's own verdict, so a chapter and this page cannot
# disagree. A claim *holds* when every check that applies holds; *holds in part* when some
# fail; *holds where decided* when none fails but some are *not decided* (their spread over
# seeds straddles the threshold, see below); a check measured failing on every seed is recorded
# in `illusion.claims.FAILS` and shown as failing. Each chapter states its checks' tolerances
# (`illusion.claims.TOLERANCES`, each with its reason) and shows the paper's numbers, labelled
# as the paper's, next to ours.

# %%
claims_ledger = run_ledger(run_name(exp.profile))
chapter.save(claims_ledger, "claims_ledger")
claims_ledger.style.hide(axis="index")

# %% [markdown]
# ## How much the numbers move with the seed
#
# The same code, data and machine give identical tables on a second run (a test checks it), but
# another seed, CPU or GPU takes other floating-point paths, and a 22-epoch training amplifies
# that into about a point. `benchmarks/seed_spread.py` ran the asserting chapters on several seeds
# of `default` and recorded every number a chapter asserts: its mean, standard deviation, min
# and max, and what the spread decides. A check is asserted only when every seed fell on one
# side of its threshold and the mean lies at least three standard deviations from it
# (`illusion.claims.DECIDED_STDS`: a reader's run is one more draw, and at two, a check
# decided on one of this book's two CPUs failed on a seed of the other); otherwise it is *not
# decided* at this scale (`illusion.claims.NOT_DECIDED`) and shown with its spread.
# `tests/test_spread.py` fails when a threshold in the code moves inside the measured spread.
# The table and the plot below are the committed measurement, not this build's run (which is
# one of its seeds when built on seed 1234).

# %%
spread_file = spread_path()
if spread_file.is_file():
    spread = pd.read_csv(spread_file, keep_default_na=False, na_values=[""], dtype={"subject": str})
    print(f"{spread_file.relative_to(project_root())}: seeds {spread['seeds'].iloc[0]}, commit "
          f"{spread['commit'].iloc[0]}, {spread['machine'].iloc[0]}")
    print(spread["status"].value_counts().to_string())
    display(spread[["claim", "check", "subject", "n", "mean", "std", "min", "max", "op", "threshold",
                    "status"]].round(3).style.hide(axis="index"))
else:
    spread = None
    print("no seed spread measured: run benchmarks/seed_spread.py")

# %%
if spread is not None:
    per_seed = pd.read_csv(spread_file.with_name("seed_spread_per_seed.csv"), keep_default_na=False,
                           na_values=[""], dtype={"subject": str})
    per_seed["label"] = per_seed["check"] + " " + per_seed["subject"]
    measured = spread.assign(label=spread["check"] + " " + spread["subject"]).set_index("label")
    # Each number's margin to its threshold on each seed, in units of its own spread over
    # seeds, signed so that positive is the side on which the check holds.
    row = per_seed["label"].map
    side = row(measured["op"]).map({">=": 1, ">": 1, "<=": -1, "<": -1})
    std = row(measured["std"]).where(lambda v: v > 0)
    per_seed["margin"] = side * (per_seed["value"] - row(measured["threshold"])) / std
    per_seed["spread decides"] = row(measured["status"])
    fig, ax = plt.subplots(figsize=(6.2, 0.24 * len(measured) + 1.0))
    sns.stripplot(per_seed, x="margin", y="label", order=list(measured.index), hue="spread decides",
                  jitter=False, size=4, ax=ax)
    ax.set_xscale("symlog", linthresh=2)
    ax.axvspan(-2, 2, color="0.9", zorder=0)
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel("margin to the threshold, in standard deviations over seeds\n"
                  "(positive: holds; grey: within 2)")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=8)
    # Below the figure: inside the axes, it covered the last rows.
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(handles, labels, title="spread decides", fontsize=8, loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 0), frameon=False)
    plt.show()

# %% [markdown]
# ## Configuration
#
# The resolved profile every chapter ran with (the same configuration hashes key the stored
# artifacts).

# %%
print(exp.profile.describe())

# %% [markdown]
# ## How the unlearning learning rates were chosen
#
# On `paper` profiles every method runs with the paper's epochs, batch size and LR. The paper's
# LRs do not carry over to the `default` profile (one epoch of a narrow ResNet on
# Fashion-MNIST), so `benchmarks/tune_lrs.py` chose each one, for every method in every variant
# (full, classifier-only, CMF), by one rule: from the grid 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, run the
# method on forget set 6 (Shirt); keep the LRs whose **validation** retain accuracy is at most
# 3 pp below that of the model the run starts from; take the one with the lowest validation
# forget accuracy, the smallest LR among those within 1 pp of it. Validation is the 10% of the
# training set held out from the Original's training; the book unlearns on the whole training
# set (the authors' protocol), so for the rule the methods unlearn on the other 90% only and
# validation stays unseen. The test split the book reports on is never looked at. Re-run it with `.venv/bin/python benchmarks/tune_lrs.py --variants full classifier_only cmf`.
# The LRs this build used:

# %%
variants = ["full", "classifier_only", "cmf"]
rates = pd.DataFrame([{"method": m, "variant": v, "epochs": exp.profile.method(m, v).epochs,
                       "lr": exp.profile.method(m, v).lr}
                      for v in variants for m in exp.profile.variant_method_names(v)
                      if exp.profile.method(m, v).epochs > 0])
rates.pivot(index="method", columns="variant", values="lr").reindex(columns=variants)

# %% [markdown]
# ## Run times
#
# Wall time of each chapter in this build (from `make book`; chapters that ran before this page)
# and of each stored model's training or unlearning, summed per kind. Stored models are shared:
# a chapter that finds a model already computed spends nothing on it. `make book` computes every
# model and table first (`illusion run --executor processes`: single-threaded processes, one per
# core), so its chapters, executed side by side afterwards, mostly read the store; the model
# times below are those of that step, one thread each.

# %%
path = timings_path(run_name(exp.profile))
chapter_times = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["chapter", "seconds"])
chapter_times

# %%
# Every stored model of this run (loaded from the store, not recomputed).
models = exp.all_variants() | {("original", "cmf", fs): exp.cmf_original()
                               for fs in exp.profile.forget_sets}
stages = pd.DataFrame([{"model": key[0], "variant": key[1], "seconds": m.seconds}
                       for key, m in models.items()]).drop_duplicates()
stages = stages.groupby(["model", "variant"], sort=False)["seconds"].agg(["count", "sum", "mean"]).round(1)
chapter.save(stages.reset_index(), "stage_seconds")
stages

# %% [markdown]
# ## Software and hardware

# %%
packages = ["torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "matplotlib",
            "seaborn", "mlxtend", "papermill", "jupytext", "jupyter-book"]
environment = {"python": sys.version.split()[0], "platform": platform.platform(),
               "processor": platform.processor() or platform.machine(), "cpu cores": os.cpu_count(),
               "torch threads": torch.get_num_threads(),
               "accelerator": torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}
environment |= {name: version(name) for name in packages}
pd.Series(environment, name="value").to_frame()

# %% [markdown]
# ## Re-running a chapter
#
# Every chapter is a jupytext file `book/NN_name.py`; its `parameters` cell holds
# `profile = "default"` and `overrides = {}`. From the repository root:

# %%
root = project_root()
for source in chapters(root / "book"):
    print(f".venv/bin/python -m illusion.book execute --profile {exp.profile.name} --chapter {source.stem}")
print("\n# or, with papermill and overrides:")
print(".venv/bin/jupytext --to ipynb book/02_misalignment.py")
print(".venv/bin/papermill book/02_misalignment.ipynb out.ipynb --cwd book -p profile default "
      "-y '{\"overrides\": {\"methods.rl.lr\": 0.005}}'")

# %% [markdown]
# ## What the paper profiles cost on a GPU
#
# `benchmarks/gpu.py` counts the images each paper profile's full grid pushes through its
# network, from the profile's settings and the plan of every model and table the book reads
# (`illusion.plan`): *training* passes (forward and backward through the whole network: the
# Original, every Retrain, the CMF Original, every method in every variant on the data it
# trains on, the unlearning curves, the relearning attacks) and *inference* passes (forward
# only: validation, features for the heads and metrics once per model, CMF's class means,
# classifier-only runs, the curves' points, the attacks' evaluations). The linear probes and
# the NCC fit on cached features and cost no image pass. The ResNets' Original is counted at
# its full 300 epochs; early stopping (patience 50) can only shorten it. The three `paper-vit`
# profiles (the paper's ViT-S/16 appendix) fine-tune an ImageNet-pretrained ViT-S/16 for 10
# epochs, but it sees every image resized to 224 px: about 9.2 GFLOPs a forward pass, 8 times a
# ResNet-18's on 32 px. It then measures training (forward, backward, SGD step) and inference
# images per second of each profile's model at its input size and batch size (a pretrained
# model without its weights: the cost is the same), and divides. The counts are always those
# of the current plan; the throughput of a model measured before is read back from the committed
# CSV (`--rates-from`; `rates_date` says when and `device` where it was measured).
#
# The tables below are the committed run, not this build's. Where `gpu_basis` begins with
# "projected", no GPU was at hand and the figures are a **CPU-based estimate**: the throughput
# was measured on the development CPU (2 cores shared with other jobs; `device` gives the torch
# threads), which gives the "measured-device hours" (CPU-hours), and the GPU hours rest on an
# **assumption**: NVIDIA's published training
# throughput of ResNet-50 v1.5 on one A100 80GB in mixed precision, 2,470 images/s at 224 px
# ([DeepLearningExamples, ResNet50 v1.5 for PyTorch](https://github.com/NVIDIA/DeepLearningExamples/blob/master/PyTorch/Classification/ConvNets/resnet50v1.5/README.md),
# "Training performance: NVIDIA DGX A100", 1 GPU), scaled by the ratio of forward FLOPs of that
# network to each profile's model (counted by `torch.utils.flop_counter`), with inference 2.82x
# faster than training (the same page's V100 mixed-precision figures: 3,382 against 1,200
# images/s). Small 32-px images keep a GPU busier per FLOP less well than 224-px ones, so the
# ResNet-18 projections are more likely too short than too long. Running
# `python benchmarks/gpu.py` on a GPU (bf16 autocast, channels_last, data on the device, as the
# library trains) replaces both columns by a measurement; `gpu_basis` then says "measured on".

# %%
gpu_file = project_root() / "benchmarks" / "results" / "gpu_estimate.csv"
if gpu_file.is_file():
    cost = pd.read_csv(gpu_file)
    if "rates_date" not in cost:  # a CSV from before --rates-from: measured when counted
        cost["rates_date"] = cost["date"]
    print(f"{gpu_file.relative_to(project_root())}: counted {cost['date'].iloc[0]}, "
          f"`{cost['command'].iloc[0]}`")
    for (device, when, version), part in cost.groupby(["device", "rates_date", "torch"], sort=False):
        print(f"throughput of {', '.join(part['profile'].unique())}: measured on {device}, torch "
              f"{version}, {when}")
    for basis in cost["gpu_basis"].unique():
        print(f"GPU figures: {basis}")
    totals = cost[cost["stage"] == "total"].set_index("profile")
    totals.insert(0, "the paper's", ["ViT-S/16 appendix" if claims.vit_appendix_applies(get_profile(name))
                                     else "main tables" for name in totals.index])
    display(totals[["the paper's", "model", "train_passes", "infer_passes", "train_img_s", "infer_img_s",
                    "device_hours", "gpu_train_img_s", "gpu_hours"]]
            .rename(columns={"train_img_s": "measured train img/s", "infer_img_s": "measured infer img/s",
                             "device_hours": "measured-device hours", "gpu_train_img_s": "GPU train img/s",
                             "gpu_hours": "GPU hours"})
            .style.format(precision=1, thousands=","))
    display(cost.pivot_table(index="stage", columns="profile", values="gpu_hours", sort=False)
            .reindex(columns=totals.index).style.format(precision=2)
            .set_caption("GPU hours per stage"))
else:
    print("no GPU estimate: run benchmarks/gpu.py")
