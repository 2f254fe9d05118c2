"""Where things live: the project root, the artifact cache, the data and the results.

Each location can be moved with an environment variable, so that a researcher can point
several checkouts at one cache, or keep the data on another disk.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """``$ILLUSION_ROOT``, else the nearest folder above the working directory holding
    ``_toc.yml`` (chapters execute inside ``book/``), else the working directory."""
    if os.environ.get("ILLUSION_ROOT"):
        return Path(os.environ["ILLUSION_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return here


def cache_dir() -> Path:
    """The artifact store: ``$ILLUSION_CACHE`` or ``<root>/.cache/illusion``."""
    return Path(os.environ.get("ILLUSION_CACHE") or project_root() / ".cache" / "illusion")


def data_dir() -> Path:
    """Downloaded or provided datasets: ``$ILLUSION_DATA`` or ``<root>/.cache/data``."""
    return Path(os.environ.get("ILLUSION_DATA") or project_root() / ".cache" / "data")


def results_dir() -> Path:
    """Tidy result tables: ``$ILLUSION_RESULTS`` or ``<root>/_build/results``."""
    return Path(os.environ.get("ILLUSION_RESULTS") or project_root() / "_build" / "results")
