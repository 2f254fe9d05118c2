"""Build steps of the executable book: chapters (jupytext percent ``.py``) to notebooks,
executed by papermill on a profile, and checks of the rendered HTML.

    python -m illusion.book execute --profile default   # book/NN_*.py -> book/NN_*.ipynb, run
    python -m illusion.book execute --profile default --seed 1235   # the same on another seed
    python -m illusion.book prepare --profile smoke --out _build/nbval   # for nbval
    python -m illusion.book check                       # every chapter page was rendered
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .paths import project_root, results_dir
from .store import atomic_write_text


def timings_path(run: str) -> Path:
    """Wall time of each chapter of the last ``execute`` of ``run`` (:func:`results.run_name`)."""
    return results_dir() / run / "book" / "timings.csv"


def start(profile: str, overrides: dict | None = None):
    """The opening of every chapter: the :class:`~illusion.experiment.Experiment` of
    ``profile`` with ``overrides`` (its resolved configuration printed), the plotting theme, and
    whether claim checks run (on every profile but ``smoke``)."""
    import seaborn as sns

    from .experiment import Experiment

    sns.set_theme(style="whitegrid", context="notebook")
    exp = Experiment(profile, overrides)
    print(f"profile {exp.profile.name!r}, seed {exp.profile.seed}, on {exp.device}; "
          f"resolved configuration:")
    print(exp.profile.describe())
    return exp, exp.profile.name != "smoke"


def chapters(book_dir: Path) -> list[Path]:
    """Chapter sources in reading order: ``book/NN_name.py``."""
    return sorted(book_dir.glob("[0-9][0-9]_*.py"))


def to_notebook(source: Path, target: Path):
    import jupytext

    notebook = jupytext.read(source)
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


def execute(profile: str, book_dir: Path, only: list[str] | None = None,
            seed: int | None = None) -> list[tuple[str, float]]:
    """Convert and execute each chapter in place (``book/NN_name.ipynb``) with papermill, on
    the profile's seed or on ``seed``; record the wall time of each in
    ``<results>/<run>/book/timings.csv``."""
    import papermill

    from .config import resolve
    from .results import run_name

    parameters = {"profile": profile} | ({"overrides": {"seed": seed}} if seed is not None else {})
    run = run_name(resolve(profile, parameters.get("overrides")))
    timings = []
    for source in _select(book_dir, only):
        notebook = to_notebook(source, source.with_suffix(".ipynb"))
        print(f"executing {source.name} on profile {profile!r} ({run})", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(str(notebook), str(notebook), parameters=parameters,
                                   cwd=str(book_dir), kernel_name="python3", progress_bar=False)
        timings.append((source.stem, time.perf_counter() - start))
        print(f"  done in {timings[-1][1]:.0f} s", flush=True)
        # Written after every chapter, so the reproducibility page sees the ones before it.
        lines = ["chapter,seconds"] + [f"{name},{seconds:.1f}" for name, seconds in timings]
        atomic_write_text("\n".join(lines) + "\n", timings_path(run))
    return timings


def prepare(profile: str, book_dir: Path, out: Path, only: list[str] | None = None) -> list[Path]:
    """Notebooks with the profile injected but not executed (nbval executes them)."""
    import papermill

    prepared = []
    for source in _select(book_dir, only):
        notebook = to_notebook(source, out / f"{source.stem}.ipynb")
        papermill.execute_notebook(str(notebook), str(notebook), parameters={"profile": profile},
                                   prepare_only=True, kernel_name="python3", progress_bar=False)
        prepared.append(notebook)
    return prepared


def check(book_dir: Path, html_dir: Path) -> None:
    """Fail unless the index and every chapter page exist in the rendered book."""
    expected = [html_dir / "index.html"] + [html_dir / "book" / f"{p.stem}.html"
                                            for p in chapters(book_dir)]
    missing = [str(p) for p in expected if not p.is_file()]
    if missing:
        raise SystemExit("the rendered book is missing: " + ", ".join(missing))
    print(f"book OK: {len(expected)} pages under {html_dir}")


def main(argv: list[str] | None = None) -> None:
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
        if name == "prepare":
            p.add_argument("--out", type=Path, required=True)
    sub.add_parser("check")
    args = parser.parse_args(argv)
    root = project_root()
    book_dir = root / "book"
    if args.command == "execute":
        execute(args.profile, book_dir, args.chapter, args.seed)
    elif args.command == "prepare":
        prepare(args.profile, book_dir, args.out, args.chapter)
    else:
        check(book_dir, root / "_build" / "html")


if __name__ == "__main__":
    sys.exit(main())
