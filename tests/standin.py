"""Tiny stand-ins for the paper's datasets, written in their real on-disk formats.

The ``paper`` profiles read CIFAR-10, CIFAR-100 and Tiny-ImageNet, which a test machine does
not have. These writers produce small datasets in exactly the layout and file formats of the
real ones, so that :func:`illusion.data.load_dataset` reads them with the code that reads the
real files; nothing in the loader is replaced.

- CIFAR-10 (``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
  ``batches.meta``) and CIFAR-100 (``cifar-100-python/``: ``train``, ``test``, ``meta``, with
  fine and coarse labels) as the Python 2 pickles the authors of CIFAR distribute: dict keys,
  class names and file names are Python 2 ``str`` (pickle's ``BINSTRING``), the image array
  is a numpy ``uint8`` array of rows of 3,072 bytes (1,024 red, 1,024 green, 1,024 blue, each
  row-major 32x32) reduced through ``numpy.core.multiarray._reconstruct`` with its raw bytes
  a Python 2 ``str``: a reader must unpickle them with ``encoding="latin1"``, as for the real
  files. Labels are Python lists of ints. The md5 sums of course differ from the real files'.
- Tiny-ImageNet (``tiny-imagenet-200/``): ``wnids.txt``, ``words.txt`` (with synsets besides
  the dataset's, as the real one has 82,115), ``train/<wnid>/images/<wnid>_<i>.JPEG`` and
  ``train/<wnid>/<wnid>_boxes.txt``, ``val/images/val_<i>.JPEG`` with
  ``val/val_annotations.txt`` (tab-separated: file, wnid, box), and an unlabelled
  ``test/images/``. Images are 64x64 JPEGs; as in the real data, a few are grey-scale.

Every image is its class's own smooth colour pattern plus noise, so a model can learn the
classes (and a class swap would show).
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm")
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2")
TINY_CLASSES = 200


# --------------------------------------------------------------------------------------------
# Images


def class_images(labels: np.ndarray, num_classes: int, size: int, seed: int,
                 noise: float = 0.15) -> np.ndarray:
    """(N, size, size, 3) uint8 images: class ``c``'s smooth colour pattern (a random 4x4 RGB
    grid, upsampled; the same in every file of a dataset) plus Gaussian noise drawn from
    ``seed``."""
    prototypes = np.random.default_rng(num_classes).uniform(0.1, 0.9, (num_classes, 4, 4, 3))
    prototypes = prototypes.repeat(size // 4, axis=1).repeat(size // 4, axis=2)
    rng = np.random.default_rng(seed)
    x = prototypes[labels] + noise * rng.normal(size=(len(labels), size, size, 3))
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def _stratified_labels(num_classes: int, per_class: int, seed: int) -> list[int]:
    """``per_class`` of every class, shuffled (the real batches are not sorted by class)."""
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels).tolist()


# --------------------------------------------------------------------------------------------
# CIFAR: Python 2 pickles


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's ``cPickle.dump(obj, f, 2)`` did for the CIFAR files: text and
    bytes become Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING``), numpy is found under
    its Python 2 module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(obj.__module__,
                                                                          obj.__module__)
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode("ascii"))
        self.memoize(obj)


def python2_pickle(obj, path: Path) -> None:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    Path(path).write_bytes(buffer.getvalue())


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> (N, 3072): the red plane, then green, then blue, each row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def write_cifar10(root: Path, train_per_class: int = 50, test_per_class: int = 10,
                  seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with the training images spread over five batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"test_batch": _stratified_labels(10, test_per_class, seed)}
    train = _stratified_labels(10, train_per_class, seed + 1)
    per_batch = -(-len(train) // 5)
    for b in range(5):
        parts[f"data_batch_{b + 1}"] = train[b * per_batch:(b + 1) * per_batch]
    for i, (name, labels) in enumerate(parts.items()):
        images = class_images(np.asarray(labels, int), 10, 32, seed + 10 * i)
        label = ("testing batch 1 of 1" if name == "test_batch"
                 else f"training batch {name[-1]} of 5")
        python2_pickle({"batch_label": label, "labels": labels, "data": _cifar_rows(images),
                        "filenames": [f"standin_{CIFAR10_CLASSES[c]}_{i}_{j}.png"
                                      for j, c in enumerate(labels)]}, folder / name)
    python2_pickle({"num_cases_per_batch": per_batch, "label_names": list(CIFAR10_CLASSES),
                    "num_vis": 3072}, folder / "batches.meta")
    return folder


def write_cifar100(root: Path, train_per_class: int = 10, test_per_class: int = 3,
                   seed: int = 0) -> Path:
    """``root/cifar-100-python``: ``train``, ``test`` and ``meta``; coarse label = fine // 5
    (not the real superclass map: no loader of this project reads coarse labels)."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, per_class) in enumerate((("train", train_per_class), ("test", test_per_class))):
        fine = _stratified_labels(100, per_class, seed + i)
        images = class_images(np.asarray(fine, int), 100, 32, seed + 10 * i)
        python2_pickle({"filenames": [f"standin_{CIFAR100_CLASSES[c]}_{j}.png"
                                      for j, c in enumerate(fine)],
                        "batch_label": f"{'training' if name == 'train' else 'testing'} batch 1 of 1",
                        "fine_labels": fine, "coarse_labels": [c // 5 for c in fine],
                        "data": _cifar_rows(images)}, folder / name)
    python2_pickle({"fine_label_names": list(CIFAR100_CLASSES),
                    "coarse_label_names": list(CIFAR100_SUPERCLASSES)}, folder / "meta")
    return folder


# --------------------------------------------------------------------------------------------
# Tiny-ImageNet: folders of JPEGs


def tiny_wnids(num_classes: int = TINY_CLASSES) -> list[str]:
    """WordNet-style ids, in ``wnids.txt``'s (unsorted) order."""
    ids = [f"n{1000000 + 7919 * i:08d}" for i in range(num_classes)]
    return list(np.random.default_rng(7).permutation(ids))


def tiny_name(wnid: str) -> str:
    """The ``words.txt`` entry of a stand-in wnid: comma-separated synonyms."""
    return f"thing {wnid[-4:]}, stand-in {wnid}"


def write_tinyimagenet(root: Path, train_per_class: int = 10, val_per_class: int = 2,
                       seed: int = 0, num_classes: int = TINY_CLASSES) -> Path:
    """``root/tiny-imagenet-200`` in the real layout (see the module's docstring)."""
    from PIL import Image

    folder = Path(root) / "tiny-imagenet-200"
    wnids = tiny_wnids(num_classes)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    # words.txt covers all of WordNet: the dataset's synsets among others, in wnid order.
    others = [f"n{9000000 + i:08d}" for i in range(5)]
    (folder / "words.txt").write_text("".join(
        f"{w}\t{tiny_name(w) if w in wnids else 'other synset'}\n" for w in sorted(wnids + others)))

    def save(image: np.ndarray, path: Path, grey: bool = False) -> None:
        picture = Image.fromarray(image)
        (picture.convert("L") if grey else picture).save(path, "JPEG", quality=90)

    labels = np.repeat(np.arange(num_classes), train_per_class)
    images = class_images(labels, num_classes, 64, seed)
    for c, w in enumerate(wnids):
        (folder / "train" / w / "images").mkdir(parents=True, exist_ok=True)
        boxes = []
        for i in range(train_per_class):
            name = f"{w}_{i}.JPEG"
            save(images[c * train_per_class + i], folder / "train" / w / "images" / name,
                 grey=(i == 1))
            boxes.append(f"{name}\t{i % 7}\t{i % 5}\t{40 + i % 20}\t{50 + i % 13}\n")
        (folder / "train" / w / f"{w}_boxes.txt").write_text("".join(boxes))

    val = np.random.default_rng(seed + 1).permutation(np.repeat(np.arange(num_classes),
                                                                val_per_class))
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    annotations = []
    for i, (c, image) in enumerate(zip(val, class_images(val, num_classes, 64, seed + 2))):
        save(image, folder / "val" / "images" / f"val_{i}.JPEG", grey=(i == 3))
        annotations.append(f"val_{i}.JPEG\t{wnids[c]}\t{i % 9}\t{i % 4}\t{44 + i % 17}\t62\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(annotations))

    (folder / "test" / "images").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(class_images(np.arange(3), num_classes, 64, seed + 3)):
        save(image, folder / "test" / "images" / f"test_{i}.JPEG")
    return folder


# Where illusion looks for each dataset under its data folder ($ILLUSION_DATA).
WRITERS = {"cifar10": lambda data: write_cifar10(Path(data) / "cifar10"),
           "cifar100": lambda data: write_cifar100(Path(data) / "cifar100"),
           "tinyimagenet": lambda data: write_tinyimagenet(Path(data))}
