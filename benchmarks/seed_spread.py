"""How much every number the book asserts moves with the seed.

Runs the book's chapters on a profile once per seed (each seed in its own results folder,
``_build/results/<profile>-seed<N>``; the profile's own seed in ``_build/results/<profile>``),
then computes every asserted quantity from each run's saved tables through
:func:`illusion.claims.run_checks` (the same function the chapters call) and writes, per
check and subject, the mean, standard deviation, min and max over the seeds, with the commit
and machine they came from:

    python benchmarks/seed_spread.py --seeds 1234 1235 1236 1237 1238           # run + collect
    python benchmarks/seed_spread.py --seeds 1234 1235 1236 1237 1238 --collect  # collect only
    python benchmarks/seed_spread.py --seeds ... --chapters 07_beyond   # rerun one, then collect

A chapter whose assertion fails on a seed is recorded (``failed_chapters``) and the run goes
on: its tables are saved before its checks, so the spread still sees its numbers. The profile's
data subset stays fixed; the seed drives initialisation, batch order and every random draw.
Each seed runs in one single-threaded process (``--jobs`` seeds side by side), its chapters
one after the other, each computing what the seed's store lacks: the artifacts and store keys
of ``make book``'s ``illusion run`` (a plan node makes exactly the calls a chapter makes), each
computed on one thread as there, without the seal.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from illusion import claims
from illusion.book import chapters, execute
from illusion.config import resolve
from illusion.paths import project_root, results_dir
from illusion.results import mean_std, run_name, seed_spread_path
from illusion.store import atomic_write_text

# The tables whose bucket means get seed error bars: name -> chapter that saves it.
TABLES = {"table1": "02_misalignment", "table3": "05_cmf"}
# The chapters that assert something (the deviations and reproducibility pages only report).
CHAPTERS = ("01_setup", "02_misalignment", "03_neural_collapse", "04_classifier_only", "05_cmf",
            "06_relearning", "07_beyond")


def run_seed(profile: str, seed: int, book_dir: Path, chapters=CHAPTERS) -> list[str]:
    """Execute the asserting ``chapters`` on ``seed``, each notebook in a folder of the seed's
    own (seeds may run side by side); the chapters whose checks failed."""
    import tempfile

    import torch
    from papermill.exceptions import PapermillExecutionError

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # the chapters' kernels read it
    notebooks = Path(tempfile.mkdtemp(prefix=f"seed{seed}-"))
    failed = []
    for chapter in chapters:
        try:
            execute(profile, book_dir, [chapter], seed, notebook_dir=notebooks)
        except PapermillExecutionError as error:
            print(f"  {chapter} failed on seed {seed}: {error.ename}: {error.evalue}"[:400], flush=True)
            failed.append(chapter)
    return failed


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import torch
    return f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__}"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=project_root())
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--collect", action="store_true", help="only collect existing runs")
    parser.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=CHAPTERS,
                        help="run only these (the others' saved tables must be current)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds side by side (default 1: one after the other)")
    parser.add_argument("--machine-note", default="",
                        help="how the runs were made, when not by this process (threads, machines)")
    parser.add_argument("--out", type=Path,
                        default=project_root() / "benchmarks" / "results" / "seed_spread.csv")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 2:
        raise SystemExit(f"need at least two distinct seeds for a spread, got {args.seeds}")
    book_dir = project_root() / "book"
    missing = [c for c in CHAPTERS if c not in {p.stem for p in chapters(book_dir)}]
    if missing:
        raise SystemExit(f"chapters {missing} not found under {book_dir}")
    if not args.collect:
        start = time.perf_counter()
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = {seed: pool.submit(run_seed, args.profile, seed, book_dir, args.chapters)
                    for seed in args.seeds}
            for seed, run in runs.items():
                print(f"seed {seed}: done after {time.perf_counter() - start:.0f} s, failed "
                      f"chapters {run.result() or 'none'}", flush=True)
    per_seed = pd.concat([claims.run_checks(args.profile, run_name(resolve(args.profile,
                                                                           {"seed": s})))
                          .assign(seed=s) for s in args.seeds], ignore_index=True)
    spread = claims.spread(per_seed)
    spread = spread.assign(seeds=" ".join(map(str, args.seeds)), profile=args.profile,
                           commit=commit(),
                           machine=machine() + f"; one torch thread per seed, {args.jobs} "
                                                f"seed(s) side by side"
                           + (f"; {args.machine_note}" if args.machine_note else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(spread.to_csv(index=False), args.out)
    per_seed_path = args.out.with_name(args.out.stem + "_per_seed.csv")
    atomic_write_text(per_seed.to_csv(index=False), per_seed_path)
    tables = table_spread(args.profile, args.seeds).assign(profile=args.profile,
                                                            seeds=" ".join(map(str, args.seeds)))
    atomic_write_text(tables.to_csv(index=False), seed_spread_path())
    print(f"wrote {args.out} ({len(spread)} quantities), {per_seed_path} and "
          f"{seed_spread_path()} ({len(tables)} table cells)")
    print(declarations(spread, args.profile))


def declarations(spread: pd.DataFrame, profile: str) -> str:
    """The entries of illusion.claims.NOT_DECIDED and FAILS that this spread implies, each
    under a comment with its spread (mean ± std [min, max]) and threshold."""
    lines = [f"# implied for illusion.claims on {profile!r}:"]
    for name, kind in (("NOT_DECIDED", "not decided"), ("FAILS", "fails")):
        rows = spread[spread["status"] == kind].sort_values(["check", "subject"])
        body = "".join(f"\n    # {r.mean:.2f} ± {r.std:.2f} [{r.min:.2f}, {r.max:.2f}] against "
                       f"{r.op} {r.threshold:g}\n    (\"{r.check}\", \"{r.subject}\"),"
                       for r in rows.itertuples())
        lines.append(f"{name}[{profile!r}] = frozenset({{{body}\n}})")
    return "\n".join(lines)


def table_spread(profile: str, seeds) -> pd.DataFrame:
    """The spread over seeds of every bucket mean of Table 1 and Table 3 (mean over the
    bucket's forget sets, per model, variant, head and split)."""
    rows = []
    for name, chapter in TABLES.items():
        for seed in seeds:
            config = resolve(profile, {"seed": seed})
            path = results_dir() / run_name(config) / chapter / f"{name}.csv"
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
            table["forget_set"] = table["forget_set"].astype(str)
            rows.append(mean_std(table, config).assign(table=name, seed=seed))
    means = pd.concat(rows, ignore_index=True)
    keys = ["table", "bucket", "model", "variant", "head", "split"]
    return (means.groupby(keys, sort=False)["mean"]
            .agg(n="count", mean="mean", std="std", min="min", max="max").reset_index())


if __name__ == "__main__":
    sys.exit(main())
