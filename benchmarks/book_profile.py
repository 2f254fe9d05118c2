"""Where the time of one ``make book`` goes: the wall time of every stage.

    .venv/bin/python benchmarks/book_profile.py [--profile default] [--out benchmarks/results/book_profile.csv]

Executes every chapter, one after the other as ``make book`` does, into an empty artifact store
(a fresh temporary ``$ILLUSION_CACHE``, so every model, evaluation, curve and attack is
computed), then renders the HTML. The store appends one row per computed artifact
(``illusion.store.STAGE_LOG``): its wall time including the artifacts it needed on the way
(``seconds``) and net of them (``self_seconds``). The CSV holds those rows with the chapter
that computed them, one ``chapter`` row per chapter (its whole execution: kernel start,
training, plotting) and one ``render`` row, largest ``self_seconds`` first.
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

from illusion.book import chapters
from illusion.paths import project_root
from illusion.store import STAGE_LOG, atomic_write_text

COLUMNS = ["chapter", "kind", "stage", "key", "seconds", "self_seconds"]


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=project_root())
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--out", type=Path,
                        default=project_root() / "benchmarks" / "results" / "book_profile.csv")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="illusion-profile-") as tmp:
        for source in chapters(project_root() / "book"):
            log = Path(tmp) / f"{source.stem}.csv"
            env = os.environ | {"ILLUSION_CACHE": str(Path(tmp) / "store"), STAGE_LOG: str(log)}
            seconds = timed([sys.executable, "-m", "illusion.book", "execute", "--profile",
                             args.profile, "--chapter", source.stem], env)
            rows.append({"chapter": source.stem, "kind": "chapter", "stage": source.stem,
                         "key": "", "seconds": seconds, "self_seconds": seconds})
            if log.is_file():
                stages = pd.read_csv(log, names=COLUMNS[1:])
                rows += stages.assign(chapter=source.stem).to_dict("records")
        seconds = timed([sys.executable, "-m", "illusion.book", "render"], dict(os.environ))
        rows.append({"chapter": "", "kind": "render", "stage": "render", "key": "",
                     "seconds": seconds, "self_seconds": seconds})
    table = pd.DataFrame(rows, columns=COLUMNS).sort_values("self_seconds", ascending=False)
    atomic_write_text(table.to_csv(index=False, float_format="%.2f"), args.out)
    chapters_total = table.loc[table["kind"] == "chapter", "seconds"].sum()
    print(f"{args.out}: chapters {chapters_total:.0f} s, render "
          f"{table.loc[table['kind'] == 'render', 'seconds'].sum():.0f} s")
    print(table[table["kind"] != "chapter"].head(15).to_string(index=False))


if __name__ == "__main__":
    main()
