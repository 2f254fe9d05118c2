"""GPU readiness: what each paper profile's full grid costs, in image passes and in hours.

    python benchmarks/gpu.py [--profiles paper paper-cifar100 paper-tinyimagenet paper-vit
                                         paper-vit-cifar100 paper-vit-tinyimagenet]
                             [--batches 20] [--warmup 3] [--out benchmarks/results/gpu_estimate.csv]
                             [--rates-from benchmarks/results/gpu_estimate.csv]

Two parts:

1. :func:`workload` counts, from a profile's settings and its plan (:func:`illusion.plan.plan`,
   every model and table the book reads), the images the grid pushes through the network:
   *training* passes (forward and backward through the whole network) and *inference* passes
   (forward only, or backward into the last layer alone). It follows each artifact's code: the
   Original and Retrain (their epochs, on the training or the retain split), the CMF Original,
   every method in every variant (its epochs on the data it trains on: D_r, D_f or both,
   SalUn's saliency pass, SCRUB's teacher, UNSIR's noise, CMF's class means recomputed every
   epoch), the unlearning curves, each model's features for the heads and metrics (once per
   model), the layer-wise probes and the relearning attacks. The linear probes and the NCC fit
   on cached features: no image passes.
2. On the device (CUDA: bf16 autocast, channels_last, data resident on the GPU; else the CPU)
   it measures training (forward, backward, SGD step) and inference images per second of each
   profile's model at its input size and batch sizes, after a warm-up, synchronised. A model
   with pretrained weights is measured without them (the cost is the same; nothing is
   downloaded), a model that resizes its images (the ViT-S/16 of the ``paper-vit`` profiles,
   224 px) at the size it resizes them to, whatever the dataset's.

Hours = training passes / training images per second + inference passes / inference images
per second, per profile and stage, printed and written as CSV with the device, torch version,
date and command. On a machine without CUDA the CSV also holds a GPU projection (columns
``gpu_*``), labelled as such: a public GPU figure scaled by the models' FLOPs (see
:data:`REFERENCE_GPU`). Run it on a GPU to replace the projection by a measurement.
``--rates-from CSV`` takes a profile's throughput from an earlier run's CSV (its ``rates_date``
and ``device`` say where and when it was measured) instead of measuring it again, where that
CSV holds the same model; the counts and hours are always computed afresh. So a profile can be
added, or the counts follow a changed plan, without hours of measurement on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from illusion import plan
from illusion.classifier_only import protocol_of
from illusion.config import ForgetSet, MethodConfig, Profile, resolve, to_jsonable
from illusion.device import autocast, synchronize
from illusion.models import INFERENCE_BATCH_SIZE, MEMORY_FORMAT, model_from_config
from illusion.train import resolve_device

PAPER_PROFILES = ("paper", "paper-cifar100", "paper-tinyimagenet", "paper-vit",
                  "paper-vit-cifar100", "paper-vit-tinyimagenet")
RESULT = Path(__file__).resolve().parent / "results" / "gpu_estimate.csv"
# The stages of :func:`workload`'s rows, in the order the tables list them.
STAGES = ("Original", "Retrain", "CMF Original", "unlearning (full)",
          "unlearning (classifier_only)", "classifier-only features", "unlearning (cmf)",
          "unlearning curves", "features (heads, metrics, attacks)", "layer-wise probes",
          "relearning attacks", "prototype attack", "over-unlearning: PGD on the Original",
          "over-unlearning")
# What a measurement of throughput records (``--rates-from`` reads them back).
RATES = ("device", "rates_date", "torch", "model", "train_batch", "infer_batch", "train_img_s",
         "infer_img_s", "forward_gflops")

# Per class: training images (the whole training split, validation included) and test images,
# channels and image side. None: the source fixes no size (the profile must give it).
DATASETS = {
    "cifar10": (10, 5000, 1000, 3, 32),
    "cifar100": (100, 500, 100, 3, 32),
    "tinyimagenet": (200, 500, 50, 3, 64),
    "fashion-mnist": (10, 6000, 1000, 1, 28),
    "mnist5k": (10, None, None, 1, 28),
}

# The public figure the GPU projection scales (used only when no GPU measured): NVIDIA's
# ResNet-50 v1.5 for PyTorch, ImageNet 224 px, one A100 80GB (DGX A100), mixed precision,
# training; inference/training ratio from the same page's V100 mixed-precision figures
# (batch 256: 3,382 img/s inference, 1,200 img/s training).
REFERENCE_GPU = {
    "name": "A100 80GB (1 GPU, mixed precision)",
    "train_img_s": 2470.0,
    "infer_over_train": 3382.0 / 1200.0,
    "model": "torchvision resnet50, 224 px",
    "source": "https://github.com/NVIDIA/DeepLearningExamples/blob/master/PyTorch/"
              "Classification/ConvNets/resnet50v1.5/README.md (Training performance: NVIDIA "
              "DGX A100 (8x A100 80GB), 1 GPU; Inference performance: NVIDIA DGX-1 (1x V100 16GB))",
}


# --------------------------------------------------------------------------------------------
# Counting


@dataclass(frozen=True)
class Sizes:
    """Images per class of a profile's dataset subset (every class the same size)."""

    classes: int
    train: int  # the whole training split (D_f and D_r), validation included
    val: int    # held out to select the Original
    test: int

    @classmethod
    def of(cls, p: Profile) -> "Sizes":
        if p.data.name not in DATASETS:
            raise ValueError(f"no sizes for dataset {p.data.name!r}; valid choices: {sorted(DATASETS)}")
        classes, train, test, _, _ = DATASETS[p.data.name]
        train, test = p.data.train_per_class or train, p.data.test_per_class or test
        if train is None or test is None:
            raise ValueError(f"dataset {p.data.name!r} needs data.train_per_class and "
                             f"data.test_per_class in the profile")
        return cls(classes, train, int(round(p.data.val_fraction * train)), test)


@dataclass(frozen=True)
class Passes:
    train: int = 0  # images through forward and backward of the whole network
    infer: int = 0  # images through a forward pass only

    def __add__(self, other: "Passes") -> "Passes":
        return Passes(self.train + other.train, self.infer + other.infer)

    def __mul__(self, k: int) -> "Passes":
        return Passes(self.train * k, self.infer * k)


@dataclass(frozen=True)
class Run:
    """One method run: its image passes, optimiser steps and epochs of the shared loop."""

    passes: Passes
    steps: int
    epochs: int


def batches(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def cycled(total_batches: int, n: int, batch_size: int) -> int:
    """Images in the first ``total_batches`` batches of an endless, reshuffled stream of a split
    of ``n`` images (every pass ends with its one short batch)."""
    per_pass = batches(n, batch_size)
    full, rest = divmod(total_batches, per_pass)
    return full * n + min(rest * batch_size, n)


def method_run(name: str, cfg: MethodConfig, forget: int, retain: int, forget_classes: int,
               retain_classes: int, backbone: bool = True) -> Run:
    """The passes of method ``name`` on ``forget`` and ``retain`` training images. With
    ``backbone`` False (classifier-only, the authors' protocol) a gradient reaches the last
    layer only, so its images cost a forward pass; UNSIR's noise still needs the gradient with
    respect to the input, through the whole network."""
    def gradient(n: int) -> Passes:
        return Passes(train=n) if backbone else Passes(infer=n)

    e, bs = cfg.epochs, cfg.batch_size
    if name in ("retain_ft", "l1_sparse"):
        return Run(gradient(e * retain), e * batches(retain, bs), e)
    if name == "ga":
        return Run(gradient(e * forget), e * batches(forget, bs), e)
    if name in ("rl", "salun"):
        mask = gradient(forget) if name == "salun" else Passes()
        return Run(mask + gradient(e * (forget + retain)), e * batches(forget + retain, bs), e)
    if name == "neggrad_plus":
        steps = e * batches(retain, bs)
        return Run(gradient(e * retain + cycled(steps, forget, bs)), steps, e)
    if name == "scrub":
        max_epochs = min(e, int(cfg.option("max_epochs", 2)))
        seen = max_epochs * forget + e * retain
        return Run(gradient(seen) + Passes(infer=seen),  # the teacher's forward on each batch
                   max_epochs * batches(forget, bs) + e * batches(retain, bs), e)
    if name == "unsir":
        steps, repeats = int(cfg.option("noise_steps", 40)), int(cfg.option("noise_repeats", 20))
        subset = retain_classes * min(int(cfg.option("retain_per_class", 1000)),
                                      retain // retain_classes)
        impair = forget_classes * repeats * bs + subset
        noise = Passes(train=forget_classes * steps * bs)
        return Run(noise + gradient(e * (impair + subset)),
                   e * (batches(impair, bs) + batches(subset, bs)), 2 * e)
    if name == "svd":
        per_class = max(1, bs // retain_classes)
        sampled = min(bs, retain_classes * min(per_class, retain // retain_classes))
        return Run(Passes(infer=sampled + min(bs, forget)), 1, 1)
    if name == "prune":
        return Run(Passes(), 0, 0)
    if name == "spotter":
        # PGD copies of D_f (each step a gradient through the network), the teacher on D_f and
        # its copies once, then every epoch D_f and its copies.
        pgd = int(cfg.option("pgd_steps", 3)) * forget
        return Run(Passes(train=pgd, infer=3 * forget) + gradient(2 * e * forget),
                   e * batches(forget, bs), e)
    raise ValueError(f"no pass count for method {name!r}; valid choices: ['ga', 'l1_sparse', "
                     f"'neggrad_plus', 'prune', 'retain_ft', 'rl', 'salun', 'scrub', 'spotter', "
                     f"'svd', 'unsir']")


def _json(*parts) -> str:
    return json.dumps(to_jsonable(parts), sort_keys=True)


class Counter:
    """The image passes of the artifacts of one profile's plan, each artifact counted once
    however many chapters or settings ask for it (the store computes it once)."""

    def __init__(self, profile: Profile):
        self.sizes = Sizes.of(profile)
        self.seen: set = set()
        self.rows: list[dict] = []

    # sizes of one forget set
    def split(self, fs: ForgetSet) -> tuple[int, int]:
        forget = len(fs.classes) * self.sizes.train
        return forget, self.sizes.classes * self.sizes.train - forget

    def whole(self) -> int:
        return self.sizes.classes * (self.sizes.train + self.sizes.test)

    def add(self, key, stage: str, artifact: str, passes: Passes) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        self.rows.append({"stage": stage, "artifact": artifact, "train_passes": passes.train,
                          "infer_passes": passes.infer})
        return True

    # models
    def model_key(self, p: Profile, call: plan.Call) -> str:
        if call.method == "original":
            return _json("original", p.data, p.model, p.original, p.seed)
        if call.method == "retrain":
            return _json("retrain", p.data, p.model, p.retrain, p.seed, call.args[0])
        if call.method == "cmf_original":
            return _json("cmf", p.method("prepare", "cmf"), self.model_key(p, plan.ORIGINAL))
        method, fs, variant = call.args
        return _json("unlearned", method, fs, variant, p.method(method, variant),
                     self.model_key(p, plan.base(call)))

    def variant_run(self, p: Profile, method: str, fs: ForgetSet, variant: str,
                    cfg: MethodConfig) -> Run:
        """A method's run in ``variant`` (CMF: its class means recomputed from D_f and D_r
        at every epoch start and at the end; classifier-only: only the last layer learns)."""
        forget, retain = self.split(fs)
        k_f = len(fs.classes)
        k_r = self.sizes.classes - k_f
        if variant == "classifier_only":
            run = method_run(method, cfg, forget, retain, k_f, k_r, backbone=False)
            if protocol_of(method, cfg) == "cached":  # on cached features: no image pass
                self.add(("co-features", self.model_key(p, plan.ORIGINAL), fs),
                         "classifier-only features", f"original features, forget set {fs}",
                         Passes(infer=self.whole() + k_r * self.sizes.val))
                return Run(Passes(), run.steps, run.epochs)
            return run
        run = method_run(method, cfg, forget, retain, k_f, k_r)
        if variant == "cmf":
            return Run(run.passes + Passes(infer=(run.epochs + 1) * (forget + retain)),
                       run.steps, run.epochs)
        return run

    def model(self, p: Profile, call: plan.Call) -> None:
        s, n = self.sizes, self.sizes.classes
        if call.method == "original":
            r = p.original
            passes = Passes(r.epochs * n * (s.train - s.val), r.epochs * n * s.val)
            self.add(self.model_key(p, call), "Original", "original", passes)
        elif call.method == "retrain":
            fs = call.args[0]
            self.add(self.model_key(p, call), "Retrain", f"retrain {fs}",
                     Passes(train=p.retrain.epochs * self.split(fs)[1]))
        elif call.method == "cmf_original":
            cfg, fit = p.method("prepare", "cmf"), n * (s.train - s.val)
            self.add(self.model_key(p, call), "CMF Original", "cmf_original",
                     Passes(cfg.epochs * fit, (cfg.epochs + 1) * fit))
        else:
            method, fs, variant = call.args
            run = self.variant_run(p, method, fs, variant, p.method(method, variant))
            self.add(self.model_key(p, call), f"unlearning ({variant})",
                     f"{method} {variant} {fs}", run.passes)

    # tables
    def features(self, p: Profile, model: plan.Call) -> None:
        """The features of the whole training split and the test split, once per model; a
        classifier-only model has the Original's backbone, hence its features."""
        if model.method == "unlearned" and model.args[2] == "classifier_only":
            model = plan.ORIGINAL
        augmentation = ((p.original.crop_padding, p.original.flip, p.seed)
                        if p.heads.augment_train else None)
        self.add(("features", self.model_key(p, model), augmentation),
                 "features (heads, metrics, attacks)", str(model), Passes(infer=self.whole()))

    def table(self, p: Profile, call: plan.Call) -> None:
        model, fs = call.args
        key = (call.method, self.model_key(p, model), fs, call.kwargs, _json(p.heads, p.attack))
        if call.method in ("evaluate", "metrics"):
            self.features(p, model)
        elif call.method == "layerwise":
            self.add(key, "layer-wise probes", str(call), Passes(infer=self.whole()))
        elif call.method == "relearning":
            self.features(p, model)  # the head-only attacks'
            a, tests = p.attack, self.sizes.classes * self.sizes.test
            evaluations = 1 + a.steps // a.eval_every + (a.steps % a.eval_every > 0)
            forget, retain = self.split(fs)
            batch = min(a.batch_size, retain)
            attacks = dict(call.kwargs).get("attacks", ("retain_finetune", "few_shot", "head_only"))
            finetuned = [n for n in attacks if n in ("retain_finetune", "few_shot", "few_shot_fresh")]
            shots = sum(n.startswith("few_shot") for n in finetuned) * a.shots * len(fs.classes)
            self.add(key, "relearning attacks", str(call),
                     Passes(train=a.steps * (len(finetuned) * batch + shots),
                            infer=len(finetuned) * evaluations * tests))
        elif call.method in ("prototype_attack", "similarity"):
            self.features(p, model)  # the test features (CKA: the references' too, counted there)
            if call.method == "prototype_attack":
                self.add(key, "prototype attack", str(call), Passes(infer=self.split(fs)[0]))
        elif call.method == "over_unlearning":
            forget = self.split(fs)[0]
            q = p.probes
            self.add(("perturb", self.model_key(p, plan.ORIGINAL), fs, _json(q)),
                     "over-unlearning: PGD on the Original", str(fs),
                     Passes(train=q.ou_steps * forget, infer=3 * forget))
            self.add(key, "over-unlearning", str(call), Passes(infer=2 * forget))
        else:
            raise ValueError(f"no pass count for table {call.method!r}; valid choices: "
                             f"['evaluate', 'layerwise', 'metrics', 'over_unlearning', "
                             f"'prototype_attack', 'relearning', 'similarity']")

    def curve(self, p: Profile, call: plan.Call) -> None:
        """The method run again, measured at ``points`` steps or every epoch: each point
        extracts the features of the probe subset and of the test split."""
        method, fs, variant = call.args
        kw = dict(call.kwargs)
        cfg = p.method(method, variant)
        if kw.get("epochs") is not None:
            cfg = dataclasses.replace(cfg, epochs=kw["epochs"])
        run = self.variant_run(p, method, fs, variant, cfg)
        forget, retain = self.split(fs)
        if kw.get("at", "step") == "step":
            n_train = retain + (forget if method != "retain_ft" else 0)
            every = max(1, (max(cfg.epochs, 1) * batches(n_train, cfg.batch_size))
                        // kw.get("points", 8))
            points, recomputes = 1 + run.steps // every, 0
        else:
            points, recomputes = 1 + run.epochs, run.epochs if variant == "cmf" else 0
        probe = self.sizes.classes * min(kw.get("train_per_class", 200), self.sizes.train)
        measured = Passes(infer=points * (probe + self.sizes.classes * self.sizes.test)
                          + recomputes * (forget + retain))
        self.add((_json(str(call), cfg, p.heads), self.model_key(p, plan.base(call))),
                 "unlearning curves", str(call), run.passes + measured)


def workload(profile: str, overrides=None) -> pd.DataFrame:
    """One row per artifact of ``profile``'s plan that feeds a network images (stage,
    artifact, train_passes, infer_passes); an artifact asked for twice is counted once. A
    second Experiment of a chapter (a node's ``setting``) counts what its settings change."""
    main = resolve(profile, overrides)
    counter = Counter(main)
    for node in plan.plan(profile, overrides):
        p = resolve(main, json.loads(node.setting)) if node.setting else main
        first = len(counter.rows)
        for call in node.calls:
            if call.method in plan.MODELS:
                counter.model(p, call)
            elif call.method == "unlearning_curve":
                counter.curve(p, call)
            else:
                counter.table(p, call)
        for row in counter.rows[first:] if node.setting else ():
            row["artifact"] += f" on {node.setting}"
    return pd.DataFrame(counter.rows, columns=["stage", "artifact", "train_passes", "infer_passes"])


# --------------------------------------------------------------------------------------------
# Measuring


def images_per_second(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool,
                      n_batches: int, warmup: int) -> float:
    """Training (forward, backward, SGD Nesterov step under the library's autocast) or
    inference (eval mode, no gradient) images per second on ``x``'s device."""
    device = x.device
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train(train)

    def step() -> None:
        if train:
            with autocast(device):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), autocast(device):
                model(x)

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n_batches):
        step()
    synchronize(device)
    return len(x) * n_batches / (time.perf_counter() - start)


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``x``; attention in its plain matrix products (the fused
    CPU kernel of ``scaled_dot_product_attention`` escapes the counter)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops()


def network(p: Profile):
    """``p``'s model configuration as measured: without pretrained weights (the same cost)."""
    return dataclasses.replace(p.model, pretrained=False)


def measured_shape(p: Profile) -> tuple:
    """What the throughput of ``p``'s model depends on: the network, the size of the images it
    sees (a model that resizes its inputs sees ``input_size`` whatever the dataset's) and the
    batch size. The number of classes changes the last layer only."""
    _, _, _, channels, side = DATASETS[p.data.name]
    m = p.model
    return (m.arch, m.width, _json(m.options), channels, m.input_size or side, p.original.batch_size)


def model_label(p: Profile) -> str:
    """``resnet18 width 64, 32 px``, ``timm:vit_small_patch16_224, 32 px resized to 224 px``."""
    side, m = DATASETS[p.data.name][4], p.model
    if not m.outside:
        return f"{m.arch} width {m.width}, {side} px"
    resized = f" resized to {m.input_size} px" if m.input_size else ""
    return ", ".join([f"{m.arch}", f"{side} px{resized}",
                      *(f"{key}={value}" for key, value in sorted(m.options.items()))])


def measure(p: Profile, device: torch.device, n_batches: int, warmup: int) -> dict:
    """Training and inference images per second of ``p``'s model on ``device``, and its forward
    FLOPs per image."""
    classes, _, _, channels, side = DATASETS[p.data.name]
    model = model_from_config(network(p), classes, channels, device)
    g = torch.Generator().manual_seed(0)

    def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, channels, side, side, generator=g)
        return (x.to(device).contiguous(memory_format=MEMORY_FORMAT),
                torch.randint(0, classes, (n,), generator=g).to(device))

    train = images_per_second(model, *data(p.original.batch_size), True, n_batches, warmup)
    infer = images_per_second(model, *data(INFERENCE_BATCH_SIZE), False, n_batches, warmup)
    flops = forward_flops(model_from_config(network(p), classes, channels),
                          torch.zeros(1, channels, side, side))
    return {"model": model_label(p),
            "train_batch": p.original.batch_size, "infer_batch": INFERENCE_BATCH_SIZE,
            "train_img_s": train, "infer_img_s": infer, "forward_gflops": flops / 1e9}


def reference_flops() -> int:
    from torchvision.models import resnet50

    return forward_flops(resnet50(), torch.zeros(1, 3, 224, 224))


def hours(passes: pd.DataFrame, train_img_s: float, infer_img_s: float) -> pd.Series:
    return (passes["train_passes"] / train_img_s + passes["infer_passes"] / infer_img_s) / 3600


def stored_rates(path: Path, p: Profile) -> dict | None:
    """The throughput of ``p``'s model (:data:`RATES`) in an earlier run's CSV, None where it
    holds no row of ``p`` measured on the same model and training batch size."""
    table = pd.read_csv(path)
    rows = table[(table["profile"] == p.name) & (table["model"] == model_label(p))
                 & (table["train_batch"] == p.original.batch_size)]
    if rows.empty:
        return None
    row = rows.iloc[0].to_dict()
    row["rates_date"] = row.get("rates_date") if pd.notna(row.get("rates_date")) else row["date"]
    return {key: row[key] for key in RATES}


def projection(rates: dict, reference: int) -> dict | None:
    """The GPU figures of ``rates`` measured on a CPU: the public GPU figure scaled by FLOPs
    (:data:`REFERENCE_GPU`); None for rates measured on a GPU."""
    if not rates["device"].startswith("CPU"):
        return None
    scale = reference / (rates["forward_gflops"] * 1e9)
    train = REFERENCE_GPU["train_img_s"] * scale
    return {"basis": f"projected: {REFERENCE_GPU['name']} ResNet-50 training "
                     f"{REFERENCE_GPU['train_img_s']:.0f} img/s at 224 px x FLOP ratio "
                     f"{scale:.2f}; inference x{REFERENCE_GPU['infer_over_train']:.2f}",
            "train_img_s": train, "infer_img_s": train * REFERENCE_GPU["infer_over_train"]}


def estimate(profile: str, rates: dict, gpu: dict | None) -> pd.DataFrame:
    """Per stage (and in total) of ``profile``: passes, device hours (``rates``: :data:`RATES`),
    GPU hours (``gpu``: :func:`projection`, None where ``rates`` are a GPU's)."""
    counts = workload(profile)
    table = counts.groupby("stage")[["train_passes", "infer_passes"]].sum()
    # Every stage the counts have, in reading order (one unknown to STAGES last, not lost).
    table = table.reindex([s for s in STAGES if s in table.index]
                          + [s for s in table.index if s not in STAGES])
    table.loc["total"] = table.sum()
    table = table.reset_index()
    table.insert(0, "profile", profile)
    table = table.assign(**rates)
    table["device_hours"] = hours(table, rates["train_img_s"], rates["infer_img_s"])
    table["gpu_basis"] = gpu["basis"] if gpu else f"measured on {rates['device']}"
    table["gpu_train_img_s"] = gpu["train_img_s"] if gpu else rates["train_img_s"]
    table["gpu_infer_img_s"] = gpu["infer_img_s"] if gpu else rates["infer_img_s"]
    table["gpu_hours"] = hours(table, table["gpu_train_img_s"], table["gpu_infer_img_s"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=list(PAPER_PROFILES))
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--rates-from", type=Path, default=None,
                        help="an earlier run's CSV: reuse its throughput of the same models")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    device_name = (torch.cuda.get_device_name(device) if cuda else
                   f"CPU ({torch.get_num_threads()} torch threads)")
    print(f"torch {torch.__version__} on {device_name}")
    reference = reference_flops()
    today = datetime.date.today().isoformat()
    measured: dict[tuple, dict] = {}
    tables = []
    for name in args.profiles:
        p = resolve(name)
        stored = stored_rates(args.rates_from, p) if args.rates_from else None
        shape = measured_shape(p)  # one measurement per network and image size
        if stored is None and shape not in measured:
            measured[shape] = {"device": device_name, "rates_date": today, "torch": torch.__version__,
                               **measure(p, device, args.batches, args.warmup)}
        rates = stored or {**measured[shape], "model": model_label(p)}
        table = estimate(name, rates, projection(rates, reference))
        print(f"\n{name}: {rates['model']}, training {rates['train_img_s']:.1f} img/s "
              f"(batch {rates['train_batch']}), inference {rates['infer_img_s']:.1f} img/s "
              f"(batch {rates['infer_batch']}), {rates['forward_gflops']:.2f} GFLOPs/image, "
              f"measured on {rates['device']} ({rates['rates_date']})")
        print(table[["stage", "train_passes", "infer_passes", "device_hours", "gpu_hours"]]
              .to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
        tables.append(table)
    result = pd.concat(tables, ignore_index=True)
    result["date"] = today
    result["command"] = " ".join(["python", *map(shlex.quote, sys.argv)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out, index=False)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
