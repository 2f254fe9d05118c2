"""The results contract: tidy tables written as CSV, and their summaries for display.

Every table a chapter shows is also written to
``_build/results/<run>/<chapter>/<table>.csv``, where ``<run>`` is the profile's name, followed
by ``-seed<N>`` when the run's seed is not the profile's own (:func:`run_name`); accuracy tables
have one row per model x variant x forget set x head x split with ``accuracy`` in percent.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import PROFILES, Profile, get_profile
from .heads import table_heads
from .paths import project_root, results_dir
from .store import atomic_write_text

ACCURACY_COLUMNS = ("model", "variant", "forget_set", "head", "split", "accuracy")
SPLIT_ORDER = ("retain", "forget")


def run_name(profile: str | Profile) -> str:
    """The results folder of a run: the profile's name, and ``-seed<N>`` when its seed is not
    the profile's own (so a run on another seed never overwrites the book's)."""
    if isinstance(profile, str):
        return profile
    own = get_profile(profile.name).seed if profile.name in PROFILES else profile.seed
    return profile.name if profile.seed == own else f"{profile.name}-seed{profile.seed}"


def save(table: pd.DataFrame, profile: str | Profile, chapter: str, name: str) -> str:
    """Write ``table`` atomically as CSV under the results folder of the run; return its path."""
    path = results_dir() / run_name(profile) / chapter / f"{name}.csv"
    atomic_write_text(table.to_csv(index=False), path)
    return str(path)


def labelled(table: pd.DataFrame, **columns) -> pd.DataFrame:
    """``table`` (changed in place) with ``columns``, one value each, as its first columns in
    the order given: where its rows come from (``model``, ``variant``, ``forget_set``)."""
    for position, (name, value) in enumerate(columns.items()):
        table.insert(position, name, value)
    return table


def variant_label(model: str, variant: str) -> str:
    """A model's row in a table of several variants: ``rl`` for the full model, ``rl + cmf``
    for its CMF variant."""
    return model if variant == "full" else f"{model} + {variant}"


def with_variant_labels(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each ``model`` relabelled by its variant (:func:`variant_label`)."""
    return table.assign(model=[variant_label(m, v) for m, v in zip(table["model"], table["variant"])])


def mean_accuracy(table: pd.DataFrame, model: str, variant: str, head: str, split: str) -> float:
    """Mean accuracy of ``model``'s ``variant`` under ``head`` on ``split`` over the forget
    sets of an accuracy table (NaN when it has no such rows)."""
    rows = table[(table["model"] == model) & (table["variant"] == variant)
                 & (table["head"] == head) & (table["split"] == split)]
    return float(rows["accuracy"].mean())


def with_bucket(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Add the ``bucket`` column (``single``/``multi``) of each row's forget set."""
    buckets = {fs.name: b for b, sets in profile.buckets.items() for fs in sets}
    return table.assign(bucket=table["forget_set"].map(buckets))


def mean_std(table: pd.DataFrame, profile: Profile, by=("model", "variant")) -> pd.DataFrame:
    """Mean and standard deviation over the forget sets of each bucket (tidy)."""
    grouped = with_bucket(table, profile).groupby(["bucket", *by, "head", "split"], sort=False)
    return grouped["accuracy"].agg(mean="mean", std="std", n="count").reset_index()


def accuracy_table(table: pd.DataFrame, profile: Profile, by=("model", "variant")) -> pd.DataFrame:
    """The paper's layout: a row per bucket x model (in order of first appearance), columns
    head x split, cells 'mean ± std' over the bucket's forget sets."""
    summary = mean_std(table, profile, by)
    summary["cell"] = [f"{m:.1f} ± {s:.1f}" if n > 1 else f"{m:.1f}"
                       for m, s, n in zip(summary["mean"], summary["std"].fillna(0), summary["n"])]
    rows = summary[["bucket", *by]].drop_duplicates()
    rows = rows.sort_values("bucket", key=lambda b: b.map(list(profile.buckets).index), kind="stable")
    rows = pd.MultiIndex.from_frame(rows)
    wide = summary.pivot(index=["bucket", *by], columns=["head", "split"], values="cell")
    columns = [(h, s) for h in table_heads() for s in SPLIT_ORDER if (h, s) in wide.columns]
    return wide.reindex(index=rows, columns=pd.MultiIndex.from_tuples(columns, names=["head", "split"]))


def seed_spread_path() -> Path:
    """The committed spread over seeds of the bucket means of Tables 1 and 3
    (``benchmarks/seed_spread.py``)."""
    return project_root() / "benchmarks" / "results" / "seed_spread_tables.csv"


def seed_std_table(name: str, profile: Profile, label=None) -> pd.DataFrame | None:
    """Table ``name``'s (``table1``, ``table3``) standard deviation over seeds of each bucket
    mean, in :func:`accuracy_table`'s layout (rows bucket x model, ``label(model, variant)``
    when given), or None where it was not measured for ``profile``."""
    path = seed_spread_path()
    if not path.is_file():
        return None
    spread = pd.read_csv(path, keep_default_na=False, na_values=[""])
    spread = spread[(spread["table"] == name) & (spread["profile"] == profile.name)]
    if spread.empty:
        return None
    spread = spread.assign(model=[label(m, v) if label else m
                                  for m, v in zip(spread["model"], spread["variant"])],
                           cell=[f"± {s:.1f}" for s in spread["std"]])
    wide = spread.pivot_table(index=["bucket", "model"], columns=["head", "split"], values="cell",
                              aggfunc="first", sort=False)
    columns = [(h, s) for h in table_heads() for s in SPLIT_ORDER if (h, s) in wide.columns]
    return wide.reindex(columns=pd.MultiIndex.from_tuples(columns, names=["head", "split"]))
