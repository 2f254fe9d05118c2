"""The image-pass counts of benchmarks/gpu.py against a hand count on the smoke profile.

Smoke: MNIST-5k, 10 classes of 60 training images (6 of them validation, so 54 train the
Original) and 20 test images; forget sets {0} (D_f 60, D_r 540) and {1, 2} (D_f 120, D_r 480);
every method 1 epoch in batches of 64; attacks of 6 steps in batches of 32, evaluated at steps
0, 3 and 6. The timing part of the benchmark is not tested here.
"""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from illusion.config import resolve
from illusion.models import build_model

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
spec = importlib.util.spec_from_file_location("gpu_benchmark", PATH)
gpu = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = gpu  # its dataclasses look their module up there
spec.loader.exec_module(gpu)


@pytest.fixture(scope="module")
def counts():
    return gpu.workload("smoke").set_index("artifact")


def passes(counts, artifact):
    row = counts.loc[artifact]
    return int(row["train_passes"]), int(row["infer_passes"])


def test_sizes_of_smoke():
    assert gpu.Sizes.of(resolve("smoke")) == gpu.Sizes(classes=10, train=60, val=6, test=20)


def test_references_by_hand(counts):
    # Original: 2 epochs of the 540 training images, 60 validation images scored per epoch.
    assert passes(counts, "original") == (2 * 540, 2 * 60)
    assert passes(counts, "retrain 0") == (2 * 540, 0)
    assert passes(counts, "retrain 1-2") == (2 * 480, 0)
    # CMF Original: 1 epoch on the 540 training images; class means at its start and its end.
    assert passes(counts, "cmf_original") == (540, 2 * 540)


def test_methods_by_hand(counts):
    assert passes(counts, "retain_ft full 0") == (540, 0)
    assert passes(counts, "rl full 0") == (600, 0)
    assert passes(counts, "salun full 0") == (60 + 600, 0)  # its saliency pass over D_f first
    assert passes(counts, "ga full 1-2") == (120, 0)
    # NegGrad+: 9 retain batches (540 / 64), each with a batch of the cycling D_f (60 images).
    assert passes(counts, "neggrad_plus full 0") == (540 + 9 * 60, 0)
    # SCRUB: 1 max epoch on D_f and 1 min epoch on D_r; the teacher sees the same images.
    assert passes(counts, "scrub full 0") == (600, 600)
    # UNSIR (smoke's shortened noise): 4 noise steps of 64 images per forget class; impair on
    # 2 x 64 noise images and a subset of 60 images per retain class, then repair on the subset.
    assert passes(counts, "unsir full 1-2") == (2 * 4 * 64 + (2 * 2 * 64 + 480) + 480, 0)
    # SVD: features of 900 // 9 = 100 (all 60) images per retain class and of D_f.
    assert passes(counts, "svd full 0") == (0, 540 + 60)
    assert passes(counts, "prune full 0") == (0, 0)


def test_variants_by_hand(counts):
    # CMF: the class means recomputed over D_f and D_r at the epoch start and at the end.
    assert passes(counts, "rl cmf 0") == (600, 2 * 600)
    # Classifier-only on cached features: one extraction of the whole training split, the test
    # split and the retain part of validation per forget set; the methods cost no image pass.
    assert passes(counts, "original features, forget set 0") == (0, 800 + 9 * 6)
    assert passes(counts, "rl classifier_only 0") == (0, 0)
    # UNSIR needs images: its noise learns through the whole network, the rest trains fc only.
    assert passes(counts, "unsir classifier_only 0") == (4 * 64, (2 * 64 + 540) + 540)
    # Chapter 7's authors-protocol run (a second setting) is another model: forward passes.
    authors = [a for a in counts.index if a.startswith("rl classifier_only 0 on ")]
    assert len(authors) == 1 and passes(counts, authors[0]) == (0, 600)


def test_tables_by_hand(counts):
    # Attacks: retain fine-tuning (6 x 32) and few-shot (6 x (32 + 5 shots)); both score the
    # 200 test images at steps 0, 3 and 6; head-only trains on cached features.
    assert passes(counts, "relearning(unlearned(rl, 0, full), 0)") == (6 * 32 + 6 * 37, 2 * 3 * 200)
    assert passes(counts, "layerwise(original(), 0)") == (0, 600 + 200)


def test_each_artifact_counted_once(counts):
    stages = counts["stage"].value_counts()
    methods = resolve("smoke").methods
    assert stages["unlearning (full)"] == 2 * len(methods)  # every method on both forget sets
    assert stages["Retrain"] == 2 and stages["Original"] == 1
    # The features of every model once; a classifier-only model reuses the Original's, and the
    # augmented-heads setting of chapter 7 extracts the Original, Retrains and RL again.
    features = counts.index[counts["stage"] == "features (heads, metrics, attacks)"]
    assert not any("classifier_only" in a for a in features)
    assert sum(" on " in a for a in features) == 1 + 2 + 2


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="no pass count for method 'mine'.*valid choices"):
        gpu.method_run("mine", resolve("smoke").methods["rl"], 60, 540, 1, 9)


def test_every_stage_is_listed(counts):
    # The estimate totals its stages in STAGES' order; a stage missing there must not drop out.
    assert set(counts["stage"]) <= set(gpu.STAGES)


def test_vit_references_by_hand():
    # paper-vit: CIFAR-10, 5,000 training images per class, 500 of them validation; the
    # pretrained ViT fine-tuned 10 epochs, the Original on the training part, scoring the
    # validation images every epoch, each Retrain on the whole of D_r.
    counts = gpu.workload("paper-vit").set_index("artifact")
    assert passes(counts, "original") == (10 * 45_000, 10 * 5_000)
    assert passes(counts, "retrain 0") == (10 * 45_000, 0)
    assert passes(counts, "retrain 0-1-2") == (10 * 35_000, 0)


def test_vit_flops_by_hand():
    # One 32-px image through a one-block ViT-Tiny/16 (4 patches and the CLS token: T = 5
    # tokens of D = 192, an MLP of 4D, 10 classes); a multiply-add is 2 FLOPs.
    model = build_model("timm:vit_tiny_patch16_224", 10, 3, input_size=32, options={"depth": 1})
    t, d = 5, 192
    expected = (2 * 4 * (3 * 16 * 16) * d    # patch embedding
                + 2 * t * d * 3 * d          # queries, keys, values
                + 2 * 2 * t * t * d          # attention: q k^T, and its product with v
                + 2 * t * d * d              # output projection
                + 2 * 2 * t * d * 4 * d      # MLP
                + 2 * d * 10)                # classifier, on the CLS token
    assert gpu.forward_flops(model, torch.zeros(1, 3, 32, 32)) == expected


def test_one_measurement_per_network_and_image_size():
    shape = {name: gpu.measured_shape(resolve(name)) for name in gpu.PAPER_PROFILES}
    # The ViT resizes CIFAR's 32 px and Tiny-ImageNet's 64 px images to 224 px: one shape.
    assert shape["paper-vit"] == shape["paper-vit-cifar100"] == shape["paper-vit-tinyimagenet"]
    assert shape["paper"] == shape["paper-cifar100"] != shape["paper-tinyimagenet"]
    assert len(set(shape.values())) == 3
    assert gpu.model_label(resolve("paper-vit-tinyimagenet")) == (
        "timm:vit_small_patch16_224, 64 px resized to 224 px")
    assert gpu.model_label(resolve("paper")) == "resnet18 width 64, 32 px"
    assert gpu.model_label(resolve("paper-vit", {"model.options": {"depth": 2}})) == (
        "timm:vit_small_patch16_224, 32 px resized to 224 px, depth=2")


def test_throughput_read_back_from_an_earlier_run(tmp_path):
    path = tmp_path / "estimate.csv"
    row = {"profile": "paper", "stage": "total", "device": "CPU (1 torch threads)",
           "torch": "2.14.1", "model": "resnet18 width 64, 32 px", "train_batch": 128,
           "infer_batch": 256, "train_img_s": 6.0, "infer_img_s": 27.0, "forward_gflops": 1.1,
           "date": "2026-11-28"}  # a CSV from before rates_date: its date is the measurement's
    pd.DataFrame([row]).to_csv(path, index=False)
    rates = gpu.stored_rates(path, resolve("paper"))
    assert rates == {**{key: row[key] for key in gpu.RATES if key in row},
                     "rates_date": "2026-11-28"}
    assert gpu.stored_rates(path, resolve("paper-cifar100")) is None  # no row of it
    assert gpu.stored_rates(path, resolve("paper", {"model.width": 32})) is None  # another model
    assert gpu.stored_rates(path, resolve("paper", {"original.batch_size": 64})) is None
    # Measured on a CPU: the public GPU figure scaled by the FLOP ratio; on a GPU: none.
    projected = gpu.projection(rates, reference=int(2 * 1.1e9))
    assert projected["train_img_s"] == pytest.approx(2 * gpu.REFERENCE_GPU["train_img_s"])
    assert gpu.projection({**rates, "device": "NVIDIA H100"}, reference=1) is None
