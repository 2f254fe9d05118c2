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

