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


# The slowest scopes (measured with make test's --durations), slowest first. With
# --no-loadscope-reorder (the Makefile) pytest-xdist hands scopes to its workers in collection
# order: a long one collected last runs alone at the end while the other worker idles;
# started first, the short ones fill in around it. (Its default order, by the number of tests
# in a scope, put the one-test chapter runs last.)
SLOWEST_FIRST = ("tests/test_run.py",
                 "tests/test_paper_chapters.py::TestPaperVitCifar100",
                 "tests/test_paper_chapters.py::TestPaperTinyImagenet",
                 "tests/test_paper_chapters.py::TestPaper::",
                 "tests/test_outside.py",
                 "tests/test_paper_chapters.py",
                 "_build/nbval/05_cmf.ipynb",
                 "tests/test_cli_models.py",
                 "_build/nbval/07_beyond.ipynb")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next((i for i, prefix in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(SLOWEST_FIRST))
    items.sort(key=rank)  # stable: the order within a scope is kept
