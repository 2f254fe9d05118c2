"""Build steps of the executable book: chapters (jupytext percent ``.py``) to notebooks,
executed by papermill on a profile, and checks of the rendered HTML.

    python -m illusion.book execute --profile default   # book/NN_*.py -> book/NN_*.ipynb, run
    python -m illusion.book execute --profile default --seed 1235   # the same on another seed
    python -m illusion.book prepare --profile smoke --overrides tests/tiny.json \
        --out _build/nbval                              # for nbval
    python -m illusion.book render                      # the executed chapters -> _build/html
    python -m illusion.book check                       # every chapter page rendered, offline
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

from .config import SettingError, read_overrides
from .models import PretrainedWeightsMissing, describe_model, ensure_pretrained
from .paths import cache_dir, project_root, results_dir
from . import store
from .store import atomic_write_text


def timings_path(run: str) -> Path:
    """Wall time of each chapter of the last ``execute`` of ``run`` (:func:`results.run_name`)."""
    return results_dir() / run / "book" / "timings.csv"


class Collapsed:
    """A long text shown folded: an HTML ``<details>`` element under a one-line ``summary`` in
    the rendered book, the summary and the text in plain-text outputs (nbval, papermill, a
    terminal)."""

    def __init__(self, summary: str, text: str):
        self.summary, self.text = summary, text

    def _repr_html_(self) -> str:
        return (f'<details class="illusion-collapsed"><summary>{html.escape(self.summary)}'
                f"</summary><pre>{html.escape(self.text)}</pre></details>")

    def __repr__(self) -> str:
        return f"{self.summary}:\n{self.text}"


def summary_line(exp) -> str:
    """One line naming what a chapter runs on: profile, dataset, model, seed and device."""
    p = exp.profile
    return (f"profile {p.name!r}, dataset {p.data.name}, model {describe_model(p.model)}, "
            f"seed {p.seed}, device {exp.device}")


def asserts_checks(profile) -> bool:
    """Whether a chapter asserts its claim checks on ``profile`` (a resolved
    :class:`~illusion.config.Profile`): only on a named profile's own settings, up to its seed
    and device, and never on ``smoke``. The thresholds were measured on those settings over
    seeds; a run with any other setting overridden (fewer epochs, a smaller subset, a narrower
    model) is another experiment, whose checks are computed and shown, not asserted."""
    from .config import get_profile

    own = dataclasses.replace(get_profile(profile.name), seed=profile.seed, device=profile.device)
    return profile.name != "smoke" and profile.to_dict() == own.to_dict()


def rerun_commands(chapter: str, profile: str, overrides: dict | None = None) -> str:
    """The shell commands that re-execute ``chapter`` (``NN_name``) as the book ran it: with
    ``illusion.book``, and with papermill directly (any other parameters can be given there)."""
    import json
    import shlex

    overrides = overrides or {}
    seed = overrides.get("seed")
    book = (f".venv/bin/python -m illusion.book execute --profile {profile} --chapter {chapter}"
            + (f" --seed {seed}" if seed is not None else ""))
    parameters = f"-p profile {profile}"
    if overrides:
        parameters += " -y " + shlex.quote(json.dumps({"overrides": overrides}))
    # `illusion.book execute` takes a seed, not other overrides: papermill alone can pass them.
    others = set(overrides) - {"seed"}
    lines = ["make install   # once: .venv with the package and its pinned dependencies"]
    if others:
        lines.append("# this run's overrides are passed to papermill below")
    else:
        lines.append(book)
        lines.append("# or with papermill, where any parameter can be changed:")
    lines += [f".venv/bin/jupytext --to ipynb book/{chapter}.py",
              f".venv/bin/papermill book/{chapter}.ipynb {chapter}.out.ipynb --cwd book "
              f"{parameters}"]
    return "\n".join(lines)


def significant(value) -> str:
    """A table cell as the book shows it: a float to four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Chapter:
    """A chapter as it runs: the :class:`~illusion.experiment.Experiment` ``exp`` of its
    profile, its ``name`` (``NN_name``, the folder of its tables) and whether its claim checks
    are asserted (``asserts_checks``, see :func:`asserts_checks`). :func:`start` opens one."""

    def __init__(self, exp, name: str, asserts_checks: bool):
        self.exp, self.name, self.asserts_checks = exp, name, asserts_checks

    def save(self, table, name: str) -> str:
        """Write ``table`` as ``<name>.csv`` among this chapter's results of the run
        (:func:`illusion.results.save`); return its path."""
        from .results import save

        return save(table, self.exp.profile, self.name, name)

    def show_verdict(self, decided, what: str) -> None:
        """Show the verdict of the chapter's decided checks (:func:`illusion.claims.banner`)
        where its checks are, and glue it as ``verdict`` (myst-nb), which the chapter's opening
        pastes with a ``{glue} verdict`` directive, so the page leads with its result."""
        from myst_nb import glue

        from .claims import banner

        glue("verdict", banner(decided, self.exp.profile.name, what))

    def enforce(self, decided) -> None:
        """Where the chapter asserts its checks, fail on any whose verdict is not the expected
        one (:func:`illusion.claims.enforce`) and say that they passed; elsewhere say that
        they are not asserted."""
        from .claims import enforce

        if self.asserts_checks:
            enforce(decided)
        print("checks passed" if self.asserts_checks
              else "checks not asserted: smoke profile or overridden settings")


def start(profile: str, overrides: dict | None, chapter: str) -> Chapter:
    """The opening of every chapter: the :class:`Chapter` ``chapter`` (``NN_name``) on the
    :class:`~illusion.experiment.Experiment` of ``profile`` with ``overrides`` (one summary
    line printed; its resolved configuration and the commands that re-run the chapter
    displayed folded), with the plotting theme set."""
    import pandas as pd
    import seaborn as sns
    from IPython.display import display

    from .experiment import Experiment

    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    # Four significant digits in every table (88.65, 41.5, 0.0003), not pandas' six decimals.
    pd.set_option("display.float_format", "{:.4g}".format)
    pd.set_option("styler.format.formatter", significant)
    exp = Experiment(profile, overrides)
    print(summary_line(exp))
    display(Collapsed("resolved configuration", exp.profile.describe()))
    display(Collapsed("re-run this chapter", rerun_commands(chapter, profile, overrides)))
    return Chapter(exp, chapter, asserts_checks(exp.profile))


def chapters(book_dir: Path) -> list[Path]:
    """Chapter sources in reading order: ``book/NN_name.py``."""
    return sorted(book_dir.glob("[0-9][0-9]_*.py"))


# Code cells longer than this many lines are folded on the page (``hide-input``: a click
# shows them) so their tables and figures get the reader's attention and the page's width.
LONG_CELL_LINES = 12


def to_notebook(source: Path, target: Path):
    import jupytext

    notebook = jupytext.read(source)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if (cell.cell_type == "code" and cell.source.count("\n") >= LONG_CELL_LINES
                and not {"parameters", "hide-input", "remove-input"} & set(tags)):
            cell.metadata["tags"] = [*tags, "hide-input"]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, target)
    return target


def _select(book_dir: Path, only: list[str] | None) -> list[Path]:
    found = chapters(book_dir)
    if not only:
        return found
    names = {p.stem: p for p in found}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise SystemExit(f"unknown chapter(s) {unknown}; valid choices: {sorted(names)}")
    return [names[n] for n in only]


def hide_injected_parameters(path: Path) -> int:
    """Tag the cell papermill injected (``injected-parameters``) ``remove-cell``, so the
    rendered page shows only the chapter's own parameters cell (its summary line names the
    profile and seed the chapter ran on). Returns the number of cells tagged."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    tagged = 0
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            tagged += 1
    if tagged:
        nbformat.write(notebook, path)
    return tagged


def _execute_chapter(source: Path, notebook_dir: Path, book_dir: Path, parameters: dict) -> float:
    """Convert and execute one chapter with papermill; its wall time in seconds."""
    import papermill

    notebook = to_notebook(source, notebook_dir / f"{source.stem}.ipynb")
    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(notebook), parameters=parameters,
                               cwd=str(book_dir), kernel_name="python3", progress_bar=False)
    hide_injected_parameters(notebook)
    return time.perf_counter() - start


def _kernels_on_one_thread() -> None:
    """A process of chapters side by side: their kernels (which read the environment) on one
    torch thread each."""
    os.environ["OMP_NUM_THREADS"] = "1"


# The chapters that read what the other chapters of the run saved (the reproducibility page:
# their timings and checks): executed after all of them, never beside them.
READS_THE_OTHERS = ("09_reproducibility",)


def execute(profile: str, book_dir: Path, only: list[str] | None = None,
            seed: int | None = None, notebook_dir: Path | None = None,
            jobs: int = 1, sealed: bool = False) -> list[tuple[str, float]]:
    """Convert and execute each chapter in place (``book/NN_name.ipynb``, or in
    ``notebook_dir``: runs side by side each need their own) with papermill, on the profile's
    seed or on ``seed``; record the wall time of each in ``<results>/<run>/book/timings.csv``.

    ``jobs > 1`` executes that many chapters side by side, each kernel on one torch thread:
    for a store that already holds every model and table (``illusion run``), where the
    chapters only read, plot and print. Chapters that compute would compute twice.
    ``sealed``: the chapters may only read the store (:data:`illusion.store.SEALED`); one
    that asks for an artifact it lacks fails, naming it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .config import resolve
    from .results import run_name

    parameters = {"profile": profile} | ({"overrides": {"seed": seed}} if seed is not None else {})
    resolved = resolve(profile, parameters.get("overrides"))
    # A profile that promises pretrained weights stops here, before any chapter trains, when
    # they are neither cached nor downloadable.
    ensure_pretrained(resolved.model)
    run = run_name(resolved)
    notebook_dir = notebook_dir or book_dir
    timings: list[tuple[str, float]] = []
    failed: list[tuple[str, BaseException]] = []

    def record(name: str, seconds: float) -> None:
        timings.append((name, seconds))
        print(f"  {name} done in {seconds:.0f} s", flush=True)
        # Written after every chapter, so the reproducibility page sees the ones before it.
        lines = ["chapter,seconds"] + [f"{n},{s:.1f}" for n, s in sorted(timings)]
        atomic_write_text("\n".join(lines) + "\n", timings_path(run))

    sources = _select(book_dir, only)
    first = [s for s in sources if s.stem not in READS_THE_OTHERS]
    last = [s for s in sources if s.stem in READS_THE_OTHERS]
    print(f"executing {len(sources)} chapter(s) on profile {profile!r} ({run})"
          + (f", {jobs} side by side" if jobs > 1 else ""), flush=True)
    # Sealed before the pool spawns: its processes and every kernel inherit the seal.
    with store.sealed(cache_dir()) if sealed else contextlib.nullcontext():
        pool = (ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_kernels_on_one_thread)
                if jobs > 1 and len(first) > 1 else None)
        chapter = partial(_execute_chapter, notebook_dir=notebook_dir, book_dir=book_dir,
                          parameters=parameters)
        runs: list[tuple[Path, Callable[[], float]]] = [
            (source, pool.submit(chapter, source).result if pool else partial(chapter, source))
            for source in first]
        runs += [(source, partial(chapter, source)) for source in last]  # after all the others
        try:
            for source, run_chapter in runs:  # every chapter runs; the failures raise at the end
                try:
                    record(source.stem, run_chapter())
                except Exception as error:
                    failed.append((source.stem, error))
        finally:
            if pool:
                pool.shutdown()
    write_glance(run)
    if len(failed) == 1:
        raise failed[0][1]
    if failed:
        raise RuntimeError(f"{len(failed)} chapters failed: " + "; ".join(
            f"{name}: {type(error).__name__}: {str(error)[:300]}" for name, error in failed))
    return timings


def glance_path() -> Path:
    """The landing page's "results at a glance" (``book/intro.md`` includes it)."""
    return project_root() / "_build" / "glance.md"


def write_glance(run: str) -> Path:
    """Write the claims ledger of ``run`` (:func:`illusion.claims.run_ledger`) where the
    landing page includes it; a run whose chapters saved no checks gets a line saying so."""
    from .claims import glance_markdown, run_ledger

    try:
        text = glance_markdown(run_ledger(run), run)
    except FileNotFoundError as missing:
        text = f"No verdicts: {missing}.\n"
    atomic_write_text(text, glance_path())
    return glance_path()


def repository() -> tuple[str, str] | None:
    """The GitHub repository the book is published from, as ``(url, branch)``:
    ``$ILLUSION_REPOSITORY`` (and ``$ILLUSION_BRANCH``, default ``main``; the publishing
    workflow sets both), else the ``origin`` remote of the checkout when it is on GitHub, else
    ``None`` (the book then has no repository or launch buttons: they would point nowhere)."""
    import os
    import re
    import subprocess

    url = os.environ.get("ILLUSION_REPOSITORY", "")
    branch = os.environ.get("ILLUSION_BRANCH", "")
    if not url:
        try:
            url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=project_root(),
                                 capture_output=True, text=True, check=True).stdout.strip()
            branch = branch or subprocess.run(
                ["git", "branch", "--show-current"], cwd=project_root(), capture_output=True,
                text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    found = re.fullmatch(r"(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?",
                         url)
    return (f"https://github.com/{found.group(1)}", branch or "main") if found else None


def book_config(source: Path, repo: tuple[str, str] | None) -> dict:
    """The book's ``_config.yml`` with, when the repository is known, a repository button and
    a Binder launch button on every chapter (Binder builds ``environment.yml`` and runs
    ``.binder/postBuild``, which makes the chapters' notebooks from their ``.py`` sources)."""
    import yaml

    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    if repo is not None:
        url, branch = repo
        config["repository"] = {"url": url, "branch": branch, "path_to_book": ""}
        config.setdefault("html", {})["use_repository_button"] = True
        config.setdefault("launch_buttons", {}).update(
            {"binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"})
    return config


def render(root: Path) -> Path:
    """Render the executed chapters into ``_build/html`` with Jupyter Book, from the book's
    configuration completed by :func:`book_config` (written to ``_build/_config.yml``)."""
    import subprocess

    import yaml

    config = root / "_build" / "_config.yml"
    atomic_write_text(yaml.safe_dump(book_config(root / "_config.yml", repository()),
                                     sort_keys=False), config)
    # Sphinx builds incrementally and never deletes: the page of a renamed or removed chapter
    # would stay in the book, unlinked and stale.
    pages = root / "_build" / "html" / "book"
    sources = {p.stem for p in (root / "book").iterdir() if p.suffix in (".py", ".md")}
    for page in pages.glob("*.html") if pages.is_dir() else ():
        if page.stem not in sources:
            page.unlink()
    subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(root),
                    "--config", str(config), "--warningiserror", "--keep-going", "-q"],
                   check=True)
    return root / "_build" / "html"


def prepare(profile: str, book_dir: Path, out: Path, only: list[str] | None = None,
            overrides: dict | None = None) -> list[Path]:
    """Notebooks with the profile (and ``overrides`` of its settings) injected but not
    executed (nbval executes them). Bad overrides fail here, before any notebook is written."""
    import papermill

    from .config import resolve

    resolve(profile, overrides)
    prepared = []
    for source in _select(book_dir, only):
        notebook = to_notebook(source, out / f"{source.stem}.ipynb")
        papermill.execute_notebook(str(notebook), str(notebook),
                                   parameters={"profile": profile, "overrides": overrides or {}},
                                   prepare_only=True, kernel_name="python3", progress_bar=False)
        prepared.append(notebook)
    return prepared


# Elements whose URL the browser fetches on its own when the page loads; links (<a href>) are
# only followed when a reader clicks them.
LOADED_ASSETS = {"script": "src", "link": "href", "img": "src", "iframe": "src",
                 "source": "src", "audio": "src", "video": "src", "embed": "src"}


def network_assets(page: str) -> list[tuple[str, str]]:
    """The ``(tag, url)`` of every asset an HTML page loads from the network on opening."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            url = (dict(attrs).get(LOADED_ASSETS.get(tag, "")) or "").strip()
            if url.lower().startswith(("http://", "https://", "//")):
                found.append((tag, url))

    Parser().feed(page)
    return found


def check(book_dir: Path, html_dir: Path) -> None:
    """Fail unless the index and every chapter page exist in the rendered book, and no page
    loads a script, style, image or frame from the network (the book reads offline)."""
    expected = [html_dir / "index.html"] + [html_dir / "book" / f"{p.stem}.html"
                                            for p in chapters(book_dir)]
    missing = [str(p) for p in expected if not p.is_file()]
    if missing:
        raise SystemExit("the rendered book is missing: " + ", ".join(missing))
    online = [f"{page.relative_to(html_dir)}: <{tag}> {url}"
              for page in sorted(html_dir.rglob("*.html"))
              for tag, url in network_assets(page.read_text(encoding="utf-8"))]
    if online:
        raise SystemExit("the rendered book loads from the network:\n  " + "\n  ".join(online))
    print(f"book OK: {len(expected)} pages under {html_dir}")


def main(argv: list[str] | None = None, book_dir: Path | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m illusion.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("execute", "prepare"):
        p = sub.add_parser(name)
        p.add_argument("--profile", default="default")
        p.add_argument("--chapter", action="append", help="only this chapter (repeatable)")
        if name == "execute":
            p.add_argument("--seed", type=int, default=None,
                           help="run on this seed instead of the profile's (own results folder)")
            p.add_argument("--jobs", type=int, default=1,
                           help="chapters side by side, one torch thread each, after `illusion "
                                "run` filled the store (default 1)")
            p.add_argument("--sealed", action="store_true",
                           help="the chapters only read the store `illusion run` filled: an "
                                "artifact it lacks is an error, not a computation")
        if name == "prepare":
            p.add_argument("--out", type=Path, required=True)
            p.add_argument("--overrides", type=Path, default=None, metavar="FILE",
                           help="a JSON object of the profile's settings to override, as "
                                "illusion.config.resolve reads them (tests/tiny.json)")
    sub.add_parser("render")
    sub.add_parser("check")
    args = parser.parse_args(argv)
    root = project_root()
    book_dir = book_dir or root / "book"
    if args.command == "execute":
        try:
            execute(args.profile, book_dir, args.chapter, args.seed, jobs=args.jobs,
                    sealed=args.sealed)
        except (PretrainedWeightsMissing, SettingError) as error:
            parser.exit(2, f"python -m illusion.book execute: {error}\n")
    elif args.command == "prepare":
        try:
            overrides = read_overrides(args.overrides) if args.overrides else None
            prepare(args.profile, book_dir, args.out, args.chapter, overrides)
        except (OSError, SettingError) as error:
            parser.exit(2, f"python -m illusion.book prepare: {error}\n")
    elif args.command == "render":
        render(root)
    else:
        check(book_dir, root / "_build" / "html")


if __name__ == "__main__":
    sys.exit(main())
