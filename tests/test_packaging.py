import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pinned |= set(extra)
    env = (ROOT / "environment.yml").read_text()
    listed = {m.group(1) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+==[^\s]+)\s*$", env, re.M)}
    assert listed == pinned


def test_torch_and_jupyter_book_pins():
    deps = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in deps and '"torchvision==0.29.1"' in deps
    version = re.search(r'"jupyter-book==([0-9.]+)', deps).group(1)
    assert version.startswith("1.")


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for chapter in sorted((ROOT / "book").glob("[0-9][0-9]_*.py")):
        assert f"book/{chapter.stem}" in toc, chapter.name
