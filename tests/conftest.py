import pytest
import torch

from illusion.config import DataConfig
from illusion.data import load_dataset


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny test models are dominated by threading overhead: one thread is several times faster
    on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    """Every test gets its own artifact store and results folder."""
    monkeypatch.setenv("ILLUSION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ILLUSION_RESULTS", str(tmp_path / "results"))


@pytest.fixture(scope="session")
def synthetic():
    """Separable class-clustered 12x12 images, 4 classes (a known-answer dataset)."""
    torch.manual_seed(0)
    return load_dataset(DataConfig("synthetic", train_per_class=40, test_per_class=20,
                                   num_classes=4, noise=0.5, seed=0))


# Tests that stand alone, each its own unit of work for pytest-xdist (make test runs
# ``-n auto --dist loadgroup``): the paper profiles' chapter runs, minutes each.
STANDALONE = {"test_paper_chapters.py"}


def pytest_collection_modifyitems(items):
    """Keep each test module on one xdist worker (its tests share its fixtures: a store whose
    models train once), and every notebook's cells (nbval) on one worker, in the book's order:
    a notebook's cells share one kernel, and the chapters share one store (chapter 1 trains the
    models the next ones read)."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("nbval"))
        elif item.path.name not in STANDALONE:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
