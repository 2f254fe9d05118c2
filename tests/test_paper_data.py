"""The paper profiles' datasets, read by illusion's own loading path from stand-ins in the real
on-disk formats (tests/standin.py): CIFAR-10, CIFAR-100 and Tiny-ImageNet."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import standin
from illusion import data as data_module
from illusion.config import get_profile
from illusion.data import split_forget
from illusion.experiment import Experiment
from illusion.store import Store

# Per profile: dataset, class names, image size, and the per-class counts the stand-in gives
# after the profile's own subsetting (every image; 10% of the training set held out).
EXPECTED = {
    "paper": dict(name="cifar10", classes=standin.CIFAR10_CLASSES, size=32,
                  train=45, val=5, test=10, multi=3),
    "paper-cifar100": dict(name="cifar100", classes=standin.CIFAR100_CLASSES, size=32,
                           train=9, val=1, test=3, multi=10),
    "paper-tinyimagenet": dict(name="tinyimagenet",
                               classes=tuple(standin.tiny_name(w).split(",")[0]
                                             for w in standin.tiny_wnids()),
                               size=64, train=9, val=1, test=2, multi=20),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """All three stand-ins, where illusion looks for them under $ILLUSION_DATA."""
    root = tmp_path_factory.mktemp("data")
    for write in standin.WRITERS.values():
        write(root)
    return root


@pytest.fixture(scope="module")
def experiments(data_root):
    """Each paper profile's Experiment with its data loaded (once per module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ILLUSION_DATA", str(data_root))
        loaded = {}
        for profile in EXPECTED:
            exp = Experiment(profile, store=Store(data_root / "store"))
            exp.data  # loads, and checks every forget set of the profile against the data
            loaded[profile] = exp
        return loaded


@pytest.mark.parametrize("profile", EXPECTED)
def test_paper_profiles_read_their_dataset(experiments, profile):
    want, d = EXPECTED[profile], experiments[profile].data
    k = len(want["classes"])
    assert d.name == want["name"] and d.classes == want["classes"] and d.num_classes == k
    for split, per_class in ((d.train, want["train"]), (d.val, want["val"]), (d.test, want["test"])):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape == (k * per_class, 3, want["size"], want["size"])
        assert torch.isfinite(split.x).all()
        assert split.y.min() == 0 and split.y.max() == k - 1
        assert torch.bincount(split.y, minlength=k).tolist() == [per_class] * k
    assert len(d.whole_train) == k * (want["train"] + want["val"])
    # Normalised: the training part has about zero mean and unit spread in every channel.
    mean, std = d.train.x.mean((0, 2, 3)), d.train.x.std((0, 2, 3))
    assert mean.abs().max() < 0.5 and ((std > 0.5) & (std < 2)).all()


def _affine_residual(raw: np.ndarray, x: torch.Tensor) -> float:
    """Largest deviation of ``x`` from a per-channel affine map of ``raw`` (N, C, H, W): zero
    when ``x`` is ``raw`` normalised, large when pixels, planes or images are out of order."""
    worst = 0.0
    for c in range(raw.shape[1]):
        r, v = raw[:, c].ravel().astype(np.float64), x[:, c].numpy().ravel().astype(np.float64)
        slope, offset = np.polyfit(r, v, 1)
        assert slope > 0
        worst = max(worst, float(np.abs(slope * r + offset - v).max()))
    return worst


@pytest.mark.parametrize("profile, cls", [("paper", "CIFAR10"), ("paper-cifar100", "CIFAR100")])
def test_cifar_is_read_as_torchvision_reads_it(experiments, data_root, monkeypatch, profile, cls):
    """The test split (kept whole and in file order) holds exactly the images and labels that
    torchvision's own CIFAR reader finds in the same files. Only its md5 check is switched off
    here: the stand-in's files are not the real ones."""
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    reference = getattr(tvd, cls)(str(data_root / EXPECTED[profile]["name"]), train=False)
    d = experiments[profile].data
    assert tuple(reference.classes) == d.classes
    assert d.test.y.tolist() == list(reference.targets)
    assert _affine_residual(reference.data.transpose(0, 3, 1, 2), d.test.x) < 1e-4


def test_tinyimagenet_labels_follow_the_annotations(experiments, data_root):
    """Validation images (the test split, whole and in annotation order) carry the class of
    their line in val_annotations.txt, numbered as in wnids.txt; grey JPEGs become RGB."""
    folder = data_root / "tiny-imagenet-200"
    wnids = (folder / "wnids.txt").read_text().split()
    lines = [line.split("\t") for line in (folder / "val" / "val_annotations.txt").read_text().splitlines()]
    d = experiments["paper-tinyimagenet"].data
    assert d.test.y.tolist() == [wnids.index(w) for _, w, *_ in lines]
    raw = np.stack([np.asarray(Image.open(folder / "val" / "images" / name).convert("RGB"))
                    for name, *_ in lines]).transpose(0, 3, 1, 2)
    assert _affine_residual(raw, d.test.x) < 1e-4


@pytest.mark.parametrize("profile", EXPECTED)
def test_images_keep_their_labels(experiments, profile):
    """Each stand-in class has its own colour pattern: nearest class mean on the pixels
    classifies the test split almost perfectly, which a label shifted or shuffled anywhere
    between the files and the tensors would prevent."""
    d = experiments[profile].data
    train, test = d.whole_train.x.flatten(1), d.test.x.flatten(1)
    means = torch.stack([train[d.whole_train.y == c].mean(0) for c in range(d.num_classes)])
    accuracy = (torch.cdist(test, means).argmin(1) == d.test.y).float().mean().item()
    assert accuracy > 0.95


@pytest.mark.parametrize("profile", EXPECTED)
def test_every_forget_set_of_the_paper_buckets_splits_the_data(experiments, profile):
    want, exp = EXPECTED[profile], experiments[profile]
    buckets = get_profile(profile).buckets
    assert set(buckets) == {"single", "multi"}
    assert {len(fs.classes) for fs in buckets["single"]} == {1}
    assert {len(fs.classes) for fs in buckets["multi"]} == {want["multi"]}
    k, per_class = exp.data.num_classes, want["train"] + want["val"]
    for fs in exp.profile.forget_sets:
        split = split_forget(exp.data, exp.forget_set(fs))  # Experiment.split, without its cache
        forget, retain = set(fs.classes), set(range(k)) - set(fs.classes)
        assert set(split.forget_train.y.tolist()) == forget
        assert len(split.forget_train) == len(forget) * per_class
        assert set(split.retain_train.y.tolist()) == retain
        assert len(split.retain_train) == len(retain) * per_class
        assert set(split.forget_test.y.tolist()) == forget
        assert set(split.retain_test.y.tolist()) == retain
        assert not set(split.retain_val.y.tolist()) & forget


# --------------------------------------------------------------------------------------------
# Missing and damaged files


def test_missing_cifar_files_are_named_without_a_download(tmp_path):
    folder = standin.write_cifar10(tmp_path / "cifar10")
    (folder / "data_batch_3").unlink()
    with pytest.raises(data_module.DataUnavailable,
                       match=r"dataset 'cifar10' is not available: .*cifar-10-batches-py lacks "
                             r"data_batch_3\. Unpack torchvision's CIFAR10 archive"):
        data_module.fetch_cifar("cifar10", tmp_path / "cifar10", download=False)


@pytest.mark.parametrize("damage, problem", [
    (lambda path: path.write_bytes(path.read_bytes()[:1000]), "is not a readable CIFAR pickle"),
    (lambda path: path.write_bytes(pickle.dumps({"data": np.zeros((2, 5), np.uint8), "labels": [0, 1]})),
     r"holds images of shape \(2, 5\)"),
    (lambda path: path.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})),
     r"holds labels outside 0..9"),
])
def test_a_damaged_cifar_batch_is_named(tmp_path, monkeypatch, damage, problem):
    folder = standin.write_cifar10(tmp_path / "cifar10", train_per_class=5, test_per_class=2)
    damage(folder / "data_batch_2")
    monkeypatch.setenv("ILLUSION_DATA", str(tmp_path))
    with pytest.raises(data_module.DataFileError, match=f"{folder / 'data_batch_2'} {problem}"):
        data_module.load_dataset(get_profile("paper").data)


def test_a_val_annotation_of_an_unknown_class_is_named(tmp_path, monkeypatch):
    folder = standin.write_tinyimagenet(tmp_path, train_per_class=2, val_per_class=1, num_classes=3)
    annotations = folder / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_0.JPEG\tn99999999\t0\t0\t5\t5\n")
    monkeypatch.setenv("ILLUSION_DATA", str(tmp_path))
    with pytest.raises(data_module.DataFileError, match=r"line 4 .* names no class of wnids.txt"):
        data_module.load_dataset(get_profile("paper-tinyimagenet").data)


# --------------------------------------------------------------------------------------------
# End to end, at stand-in scale


def test_paper_profile_runs_end_to_end_on_the_standin(data_root, monkeypatch, tmp_path):
    """The ``paper`` profile through the library with only its sizes shrunk (width, epochs,
    one forget set, SGD-probe epochs): Original, Retrain, RL in every variant (full,
    classifier-only, CMF), and their evaluation with the paper's SGD linear probe on
    augmented training features, plus MIA and alignment."""
    monkeypatch.setenv("ILLUSION_DATA", str(data_root))
    shrink = {"model.width": 4, "original.epochs": 1, "retrain.epochs": 1,
              "buckets": {"single": [[3]]}, "methods.rl.epochs": 1,
              "variant_methods.cmf.rl.epochs": 1, "variant_methods.classifier_only.rl.epochs": 1,
              "heads.sgd_epochs": 2}
    exp = Experiment("paper", shrink, store=Store(tmp_path / "store"))
    paper = get_profile("paper")
    assert (exp.profile.model.arch, exp.profile.heads.lp, exp.profile.heads.augment_train) == \
        (paper.model.arch, "sgd", True)
    original, retrain = exp.original(), exp.retrain(3)
    assert original.record["history"]["epoch"] == [1]
    models = {v: exp.unlearned("rl", 3, v) for v in ("full", "classifier_only", "cmf")}
    original_fc = original.model.fc.weight
    for variant, trained in models.items():
        assert not torch.equal(trained.model.fc.weight, original_fc), variant
        table = exp.evaluate(trained).set_index(["head", "split"])
        assert sorted(table.index) == sorted((h, s) for h in ("output", "lp", "ncc")
                                             for s in ("retain", "forget"))
        assert table["accuracy"].between(0, 100).all() and table["forget_set"].eq("3").all()
    # Retrain: the last epoch, trained without a validation split (the authors' script).
    assert retrain.record["history"]["best_epoch"] == 1
    assert np.isnan(retrain.record["history"]["val_accuracy"]).all()
    metrics = exp.metrics(models["full"]).set_index("metric")["value"]
    assert set(metrics.index) == {"mia", "alignment_forget", "alignment_retain"}
    assert np.isfinite(metrics).all()
