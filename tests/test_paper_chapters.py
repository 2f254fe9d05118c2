"""The chapters of the book executed by papermill on the paper profiles, reading stand-ins of
their datasets in the real on-disk formats (tests/standin.py). The overrides only shrink sizes
(width, epochs, one forget set per bucket, SGD-probe epochs, L-BFGS iterations, attack steps
and shots). Every code path of the paper profiles runs once, not every chapter on every
profile: on ``paper`` (ResNet-18, the SGD probe on augmented features, the authors'
classifier-only protocol) the chapters whose code reads the profile's recipe: 1, 2, 4, 5 (the
paper's CMF table), 8 and the ledger of 9; on ``paper-tinyimagenet`` chapters 1 and 2, where
ResNet-50's bottlenecks meet every code path that depends on the architecture: chapter 1 runs
every baseline in full, in the authors' classifier-only protocol (BatchNorm) and under CMF
(its 4x-expanded features) on the first forget set, chapter 2 the 20-class bucket, both the
cosine probe schedule. The ViT-S/16 profiles (``paper-vit*``, the paper's appendix) run a
two-block ViT-Tiny of timm from a random init: a transformer meets every code path (no
BatchNorm, a CLS-token feature, the central crop and resize of the inputs).
``paper-vit-cifar100`` runs chapters 1, 2 (every model kind on its dataset's settings, and
chapter 2's appendix table of its dataset), 5 (CMF on 192-d CLS features, the ResNet-only
table left out) and 8 (the comparison of its resized and cropped inputs with the authors'),
``paper-vit-tinyimagenet`` chapters 1, 2 and 8 (its inputs, resized whole). ``paper-vit``
(CIFAR-10) differs from ``paper-vit-cifar100`` only in the values it reads (its column of the
same settings tables, its dataset's appendix numbers: tests/test_claims.py), so it adds no
code path and does not run. The chapters whose code does not depend on the profile (the
geometry of 3, the attacks and probes of 6 and 7) run under nbval (smoke shrunk:
tests/tiny.json, on the store its plan filled); their library code meets a ViT in
tests/test_cli_models.py (the audit: every attack and probe, OU@ε included).
``paper-vit-cifar100`` reads what ``paper-cifar100`` would (its data, its 150-epoch probe with
patience, its 10-class bucket, its per-dataset method settings), so the ResNet-18 on
CIFAR-100 adds no code path and does not run. ResNet-50 runs at width 1 (1-8 channels before
the 4x expansion): its bottlenecks on 64-px maps took twice the time at width 4, and the
Tiny-ImageNet test ran 107 s at width 2 against 89 s at width 1 (one run each, alone). The
stand-ins hold 20 training images per CIFAR-10 class and 5 per CIFAR-100 and Tiny-ImageNet
class: every batch, split and head sees data, and more images only cost time.
Checks are computed and shown but not asserted on shrunk settings
(:func:`illusion.book.asserts_checks`)."""


import os

import numpy as np
import pandas as pd
import pytest

import standin
from illusion import book
from illusion.config import get_profile
from illusion.paths import project_root

# The ViT-S/16 appendix's profiles run a ViT-Tiny of the same timm family, two blocks deep,
# on 32-px inputs, from a random init (no download): what ran is asserted from the chapters'
# summary line.
VIT_SHRINK = {"model.arch": "timm:vit_tiny_patch16_224", "model.pretrained": False,
              "model.input_size": 32, "model.options": {"depth": 2}}
VIT = "timm:vit_tiny_patch16_224 (random init, 32 px, depth=2)"
# The model each profile's chapters must say they ran.
PROFILES = {"paper": "resnet18 (width 4)", "paper-tinyimagenet": "resnet50 (width 1)",
            "paper-vit-cifar100": VIT, "paper-vit-tinyimagenet": VIT}
# The chapters each profile runs.
CHAPTERS = {"paper": ("01_setup", "02_misalignment", "04_classifier_only", "05_cmf",
                      "08_deviations", "09_reproducibility"),
            "paper-tinyimagenet": ("01_setup", "02_misalignment"),
            "paper-vit-cifar100": ("01_setup", "02_misalignment", "05_cmf", "08_deviations"),
            "paper-vit-tinyimagenet": ("01_setup", "02_misalignment", "08_deviations")}
# The ledger's rows in reading order, and the claims each chapter's checks decide.
LEDGER = ["The setting", "Claim 1", "Claim 2", "Claim 3", "Claim 4", "Beyond the paper (ours)"]
CLAIMS_OF = {"01_setup": ("The setting",), "02_misalignment": ("Claim 1",),
             "03_neural_collapse": ("Claim 2",), "04_classifier_only": ("Claim 2",),
             "05_cmf": ("Claim 3",), "06_relearning": ("Claim 4",),
             "07_beyond": ("Claim 4", "Beyond the paper (ours)")}
# Classes of the profile's multi-class forget sets (the paper's buckets).
MULTI = {"paper": 3, "paper-tinyimagenet": 20,
         "paper-vit-cifar100": 10, "paper-vit-tinyimagenet": 20}


def shrink(profile: str) -> dict:
    """Overrides that make ``profile`` run in seconds without changing what code runs."""
    p = get_profile(profile)
    overrides = {"model.width": 4, "original.epochs": 1, "original.warmup_epochs": 1,
                 "retrain.epochs": 1, "retrain.warmup_epochs": 1, "heads.sgd_epochs": 2,
                 "heads.sgd_patience": 1, "heads.lbfgs_max_iter": 10,
                 "attack.steps": 4, "attack.eval_every": 2,
                 "attack.batch_size": 16, "probes.prototype_shots": [1, 2],
                 "probes.prototype_draws": 1,
                 "buckets": {b: [list(sets[0].classes)] for b, sets in p.buckets.items()}}
    overrides |= {f"methods.{m}.epochs": 1 for m, c in p.methods.items() if c.epochs > 0}
    overrides |= {f"variant_methods.{v}.{m}.epochs": 1 for v, table in p.variant_methods.items()
                  for m, c in table.items() if c.epochs > 0}
    # UNSIR's noise: 40 steps and 20 copies of a 128-image batch per forget class (20 classes
    # in Tiny-ImageNet's multi-class bucket) dominate everything else at these sizes.
    for prefix in ["methods.unsir", *(f"variant_methods.{v}.unsir" for v in p.variant_methods)]:
        overrides |= {f"{prefix}.options.noise_steps": 2, f"{prefix}.options.noise_repeats": 1,
                      f"{prefix}.batch_size": 16}
    if p.model.arch == "resnet50":
        overrides["model.width"] = 1
    if p.model.outside:
        assert p.model.pretrained  # the profile's own promise; the shrink trains from scratch
        overrides |= VIT_SHRINK
    return overrides


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    standin.write_cifar10(root / "cifar10", train_per_class=20)
    standin.write_cifar100(root / "cifar100", train_per_class=5)
    # 24 of Tiny-ImageNet's 200 classes hold the profile's first forget sets (class 2; classes
    # 0-19, with 4 classes left to retain), 5 images each (the few-shot attack's shots), which
    # keeps ResNet-50 on 64-px images within CI's time; the loader reads any count.
    standin.write_tinyimagenet(root, train_per_class=5, num_classes=24)
    return root


def execute_in_one_kernel(notebooks: list, parameters: dict, cwd) -> list:
    """Each notebook with papermill's parameter cell injected, executed in turn in one kernel:
    the ~7 s a fresh kernel spends importing torch, pandas and the package is paid once per
    profile, not once per chapter. That each chapter also runs alone in a kernel of its own
    is what nbval checks (make test, on smoke)."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    kernel = KernelManager(kernel_name="python3")
    # One thread, as the test's own process (tests/conftest.py): two kernels side by side on
    # two cores with a thread per core each spin against each other (10x slower, measured).
    kernel.start_kernel(cwd=str(cwd), env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        executed = []
        for path in notebooks:
            nb = parameterize_notebook(load_notebook_node(str(path)), parameters)
            NotebookClient(nb, km=kernel, timeout=600).execute()
            executed.append(nb)
        return executed
    finally:
        kernel.shutdown_kernel(now=True)


def run_chapters(profile, data_root, tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    monkeypatch.setenv("ILLUSION_DATA", str(data_root))
    monkeypatch.setenv("ILLUSION_CACHE", str(tmp_path / "store"))
    monkeypatch.setenv("ILLUSION_RESULTS", str(tmp_path / "results"))
    source = project_root() / "book"
    chapters = [c for c in book.chapters(source) if c.stem in CHAPTERS[profile]]
    assert len(chapters) == len(CHAPTERS[profile])
    notebooks = [book.to_notebook(c, tmp_path / "nb" / f"{c.stem}.ipynb") for c in chapters]
    outputs = execute_in_one_kernel(notebooks, {"profile": profile, "overrides": shrink(profile)},
                                    source)
    text = "".join(out.get("text", "") if isinstance(out.get("text", ""), str)
                   else "".join(out["text"])
                   for nb in outputs for cell in nb["cells"] for out in cell.get("outputs", []))
    assert f"model {PROFILES[profile]}," in text
    assert "checks not asserted" in text  # shrunk settings: computed and shown only

    results = tmp_path / "results" / profile
    table1 = pd.read_csv(results / "02_misalignment" / "table1.csv")
    assert np.isfinite(table1["accuracy"]).all() and table1["accuracy"].between(0, 100).all()
    sets = {str(s) for s in table1["forget_set"]}
    assert any(len(s.split("-")) == MULTI[profile] for s in sets), sets
    probes = pd.read_csv(results / "01_setup" / "linear_probes.csv")
    assert np.isfinite(probes.select_dtypes("number")).all().all()
    ran = {c.stem for c in chapters}
    for chapter, name, value in [("04_classifier_only", "table2", "accuracy"),
                                 ("05_cmf", "table3", "accuracy"),
                                 ("06_relearning", "recovery_auc", "auc"),
                                 ("07_beyond", "prototype_recovery", "auc"),
                                 ("07_beyond", "over_unlearning", "value")]:
        if chapter in ran:
            table = pd.read_csv(results / chapter / f"{name}.csv")
            assert len(table) and np.isfinite(table[value]).all(), (chapter, name)
    if "09_reproducibility" in ran:
        ledger = pd.read_csv(results / "09_reproducibility" / "claims_ledger.csv")
        decided = {claim for chapter in ran for claim in CLAIMS_OF.get(chapter, ())}
        assert list(ledger["claim"]) == [c for c in LEDGER if c in decided]


# One class per profile: make test's xdist workers take one scope (class, module or notebook)
# each, so the three profiles run side by side.
class TestPaper:
    def test_the_chapters_run(self, data_root, tmp_path, monkeypatch):
        run_chapters("paper", data_root, tmp_path, monkeypatch)


class TestPaperTinyImagenet:
    def test_the_chapters_run(self, data_root, tmp_path, monkeypatch):
        run_chapters("paper-tinyimagenet", data_root, tmp_path, monkeypatch)


class TestPaperVitCifar100:
    def test_the_chapters_run(self, data_root, tmp_path, monkeypatch):
        run_chapters("paper-vit-cifar100", data_root, tmp_path, monkeypatch)


class TestPaperVitTinyImagenet:
    def test_the_chapters_run(self, data_root, tmp_path, monkeypatch):
        run_chapters("paper-vit-tinyimagenet", data_root, tmp_path, monkeypatch)
