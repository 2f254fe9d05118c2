"""The image-pass counts of benchmarks/gpu.py against a hand count on the smoke profile.

Smoke: MNIST-5k, 10 classes of 60 training images (6 of them validation, so 54 train the
Original) and 20 test images; forget sets {0} (D_f 60, D_r 540) and {1, 2} (D_f 120, D_r 480);
every method 1 epoch in batches of 64; attacks of 6 steps in batches of 32, evaluated at steps
0, 3 and 6. The timing part of the benchmark is not tested here.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from illusion.config import resolve

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
    # UNSIR: 40 noise steps of 64 images per forget class; impair on 20 x 64 noise images and
    # a subset of 60 images per retain class, then repair on the subset.
    assert passes(counts, "unsir full 1-2") == (2 * 40 * 64 + (2 * 20 * 64 + 480) + 480, 0)
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
    assert passes(counts, "unsir classifier_only 0") == (40 * 64, (20 * 64 + 540) + 540)
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
