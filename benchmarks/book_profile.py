"""Where the time of one ``make book`` goes: the wall time of every stage.

    .venv/bin/python benchmarks/book_profile.py [--profile default] [--jobs 2]
                                                [--out benchmarks/results/book_profile.csv]

Runs what ``make book`` runs into an empty artifact store (a fresh temporary
``$ILLUSION_CACHE``, so every model, evaluation, curve and attack is computed): with ``--jobs
N`` (N > 1), ``illusion run --executor processes --jobs N`` (row ``plan``) and then the
chapters N side by side on the sealed store (``python -m illusion.book execute --jobs N
--sealed``); with ``--jobs 1``, every chapter one after the other, each computing what it
needs. Then it renders the HTML. The store
appends one row per computed artifact (``illusion.store.STAGE_LOG``): its wall time including
the artifacts it needed on the way (``seconds``) and net of them (``self_seconds``), in the
process that computed it (side by side processes overlap in time). The CSV holds those rows
with the step that computed them (``plan`` or the chapter), one ``chapter`` row per chapter
(its whole execution: kernel start, training, plotting), one ``plan`` and one ``render`` row,
largest ``self_seconds`` first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from illusion.book import chapters, timings_path
from illusion.config import resolve
from illusion.paths import project_root
from illusion.results import run_name
from illusion.store import STAGE_LOG, atomic_write_text

COLUMNS = ["chapter", "kind", "stage", "key", "seconds", "self_seconds"]


def timed(command: list[str], env: dict) -> float:
    """Wall time of ``command``; a failing chapter is reported, not fatal: its time counts."""
    start = time.perf_counter()
    if subprocess.run(command, env=env, cwd=project_root()).returncode:
        print(f"(failed: {' '.join(command[1:])})", flush=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--store", type=Path, default=None,
                        help="an empty artifact store to fill and keep (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="processes side by side, as make book runs them (1: the chapters "
                             "one after the other, each computing what it needs)")
    parser.add_argument("--out", type=Path,
                        default=project_root() / "benchmarks" / "results" / "book_profile.csv")
    args = parser.parse_args(argv)

    rows = []

    def logged(step: str, log: Path) -> None:
        if log.is_file():
            stages = pd.read_csv(log, names=COLUMNS[1:])
            rows.extend(stages.assign(chapter=step).to_dict("records"))

    with tempfile.TemporaryDirectory(prefix="illusion-profile-") as tmp:
        store = str(args.store or Path(tmp) / "store")
        if args.store and any(args.store.glob("*/*")):
            raise SystemExit(f"--store {args.store} is not empty: the profile needs an empty store")
        if args.jobs > 1:
            log = Path(tmp) / "plan.csv"
            env = os.environ | {"ILLUSION_CACHE": store, STAGE_LOG: str(log)}
            seconds = timed([sys.executable, "-m", "illusion.cli", "run", "--profile",
                             args.profile, "--executor", "processes", "--jobs",
                             str(args.jobs)], env)
            rows.append({"chapter": "plan", "kind": "plan", "stage": "illusion run", "key": "",
                         "seconds": seconds, "self_seconds": seconds})
            logged("plan", log)
            log = Path(tmp) / "chapters.csv"
            env = os.environ | {"ILLUSION_CACHE": store, STAGE_LOG: str(log)}
            seconds = timed([sys.executable, "-m", "illusion.book", "execute", "--profile",
                             args.profile, "--jobs", str(args.jobs), "--sealed"], env)
            rows.append({"chapter": "chapters", "kind": "chapters", "stage": "every chapter",
                         "key": "", "seconds": seconds, "self_seconds": seconds})
            times = pd.read_csv(timings_path(run_name(resolve(args.profile))))
            rows += [{"chapter": c, "kind": "chapter", "stage": c, "key": "", "seconds": t,
                      "self_seconds": t} for c, t in zip(times["chapter"], times["seconds"])]
            logged("chapters", log)
        else:
            for source in chapters(project_root() / "book"):
                log = Path(tmp) / f"{source.stem}.csv"
                env = os.environ | {"ILLUSION_CACHE": store, STAGE_LOG: str(log)}
                seconds = timed([sys.executable, "-m", "illusion.book", "execute", "--profile",
                                 args.profile, "--chapter", source.stem], env)
                rows.append({"chapter": source.stem, "kind": "chapter", "stage": source.stem,
                             "key": "", "seconds": seconds, "self_seconds": seconds})
                logged(source.stem, log)
        seconds = timed([sys.executable, "-m", "illusion.book", "render"], dict(os.environ))
        rows.append({"chapter": "", "kind": "render", "stage": "render", "key": "",
                     "seconds": seconds, "self_seconds": seconds})
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values("self_seconds", ascending=False)
    atomic_write_text(table.to_csv(index=False, float_format="%.2f"), args.out)
    total = {kind: table.loc[table["kind"] == kind, "seconds"].sum()
             for kind in ("plan", "chapters", "chapter", "render")}
    chapters_wall = total["chapters"] if args.jobs > 1 else total["chapter"]
    print(f"{args.out}: plan {total['plan']:.0f} s, chapters {chapters_wall:.0f} s, render "
          f"{total['render']:.0f} s; in all {total['plan'] + chapters_wall + total['render']:.0f} s")
    print(table[~table["kind"].isin(["chapter", "chapters", "plan", "render"])]
          .head(15).to_string(index=False))


if __name__ == "__main__":
    main()
