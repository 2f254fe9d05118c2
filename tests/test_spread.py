"""The book's thresholds against the committed seed spread (benchmarks/seed_spread.py), and the
three verdicts of a check: holds, fails, not decided."""

import dataclasses

import pandas as pd
import pytest

from illusion import claims
from illusion.claims import FAILS, NOT_DECIDED, TOLERANCES, measured_status

PROFILE = "default"


def committed() -> pd.DataFrame:
    path = claims.spread_path()
    if not path.is_file():
        pytest.fail(f"{path} is missing: run benchmarks/seed_spread.py")
    table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"subject": str})
    return table[table["profile"] == PROFILE]


def declared(check: str, subject: str) -> str:
    key = (check, subject)
    return ("not decided" if key in NOT_DECIDED.get(PROFILE, ()) else
            "fails" if key in FAILS.get(PROFILE, ()) else "holds")


def status_now(row) -> str:
    return measured_status(row.check, row.mean, row.std, row.min, row.max, row.n)


# The committed spread is five seeds (1234-1238), the paper's SGD probe deciding every LP check.
SEEDS_MEASURED = 5


def test_the_spread_has_its_seeds_and_every_measured_check():
    spread = committed()
    assert (spread["n"] >= SEEDS_MEASURED).all(), spread[spread["n"] < SEEDS_MEASURED]
    measured = {c for c, t in TOLERANCES.items() if not t.exact}
    assert measured <= set(spread["check"]), sorted(measured - set(spread["check"]))


def test_every_threshold_clears_its_measured_spread():
    """A check asserted as holding (or recorded as failing) must have every seed on one side of
    its threshold and the mean at least claims.DECIDED_STDS standard deviations from it; one
    that does not must be declared not decided. Moving a threshold inside the spread fails here."""
    wrong = []
    for row in committed().itertuples():
        now = status_now(row)
        if now != declared(row.check, row.subject):
            wrong.append(f"{row.check} {row.subject}: threshold {TOLERANCES[row.check].op} "
                         f"{TOLERANCES[row.check].threshold:g}, seeds {row.mean:.3f} ± "
                         f"{row.std:.3f} [{row.min:.3f}, {row.max:.3f}] decide {now!r}, the code "
                         f"declares {declared(row.check, row.subject)!r}")
    assert not wrong, "\n".join(wrong)


def test_declarations_name_measured_checks():
    spread = committed()
    pairs = set(zip(spread["check"], spread["subject"]))
    for kind, table in (("NOT_DECIDED", NOT_DECIDED), ("FAILS", FAILS)):
        stale = set(table.get(PROFILE, ())) - pairs
        assert not stale, f"{kind} names checks the spread never measured: {sorted(stale)}"


def test_a_threshold_moved_into_the_spread_is_caught(monkeypatch):
    """Each threshold that the spread lets the book assert, moved to its quantity's mean
    over the seeds, is no longer decided: the consistency test above would fail."""
    # A quantity that took one value on every seed (GA's forget accuracy reaches exactly 0) has
    # no inside to move a threshold into.
    decided = [row for row in committed().itertuples()
               if status_now(row) in ("holds", "fails") and row.std > 0]
    assert decided
    for row in decided:
        moved = dataclasses.replace(TOLERANCES[row.check], threshold=row.mean)
        monkeypatch.setitem(TOLERANCES, row.check, moved)
        assert status_now(row) == "not decided", row
        monkeypatch.undo()


@pytest.mark.parametrize("values, applies, expected", [
    ([90.0, 90.5, 89.5, 90.2, 89.8], [True] * 5, "holds"),     # far above 88, tight
    ([86.0, 86.5, 85.5, 86.2, 85.8], [True] * 5, "fails"),     # far below
    ([88.5, 87.5, 89.0, 88.2, 88.9], [True] * 5, "not decided"),  # straddles 88
    ([88.6, 88.9, 89.9, 88.7, 89.8], [True] * 5, "not decided"),  # all above, within 2 std
    ([88.5, 89.0, 89.5, 89.0, 89.5], [True] * 5, "not decided"),  # 2.6 std above: within 3
    ([88.8, 89.2, 89.6, 89.2, 89.6], [True] * 5, "holds"),        # 3.9 std above
    ([90.0, 90.5, 89.5, 90.2, 89.8], [True, True, False, True, False], "holds"),  # the value decides
    ([90.0], [True], "not decided"),                            # one seed is no spread
])
def test_measured_status_rule(values, applies, expected):
    per_seed = pd.DataFrame({"check": "original_accuracy", "subject": "original", "value": values,
                             "applies": applies})
    assert claims.spread(per_seed)["status"].item() == expected


def test_decide_and_enforce(monkeypatch):
    table = claims._checks([("original_accuracy", "original", 89.0),
                            ("probe_gap_retain", "lp", 2.0),
                            ("probe_gap_forget", "lp", 5.0),
                            ("claim4_auc_gain", "rl:few_shot", -1.0, False)])
    monkeypatch.setitem(NOT_DECIDED, "x", frozenset({("probe_gap_forget", "lp")}))
    monkeypatch.setitem(FAILS, "x", frozenset({("probe_gap_retain", "lp")}))
    decided = claims.decide(table, "x")
    assert decided["verdict"].tolist() == ["holds", "fails", "not decided", "not applicable"]
    claims.enforce(decided)  # a recorded failure, a not-decided and an inapplicable check pass
    with pytest.raises(AssertionError, match="probe_gap_retain"):
        claims.enforce(claims.decide(table, "y"))  # on another profile nothing is recorded
    fixed = table.assign(value=[89.0, 0.5, 5.0, -1.0])
    with pytest.raises(AssertionError, match="probe_gap_retain"):  # a recorded failure that holds
        claims.enforce(claims.decide(fixed, "x"))


def test_a_claim_holds_where_decided(monkeypatch):
    from test_claims import ORIGINAL, RETRAIN, acc, table
    rows = table(ORIGINAL, RETRAIN, acc("rl", output=(90, 0), lp=(90, 85), ncc=(90, 80)),
                 acc("salun", output=(90, 0), lp=(90, 85), ncc=(90, 80)))
    checks = claims.misalignment_checks(rows)
    assert claims.verdict_of(claims.decide(checks, "x"))[0] == "holds"
    monkeypatch.setitem(NOT_DECIDED, "x", frozenset({("claim1_above_retrain", "salun/lp")}))
    assert claims.verdict_of(claims.decide(checks, "x")) == (
        "holds where decided", "11 of 12 checks hold, 1 not decided at this scale")
    leaky = checks.assign(value=checks["value"].where(checks["subject"] != "rl", 20.0))
    assert claims.verdict_of(claims.decide(leaky, "x"))[0] == "holds in part"


def test_banner_colours_the_chapter_verdict(monkeypatch):
    table = claims._checks([("original_accuracy", "original", 89.0), ("probe_gap_retain", "lp", 0.5)])
    ok = claims.banner(claims.decide(table, "x"), "x", "Setting")
    assert ok.kind == "tip" and "holds" in ok.title and 'class="admonition tip"' in ok._repr_html_()
    monkeypatch.setitem(NOT_DECIDED, "x", frozenset({("probe_gap_retain", "lp")}))
    assert claims.banner(claims.decide(table, "x"), "x", "Setting").kind == "warning"
    bad = claims.banner(claims.decide(table.assign(value=[80.0, 0.5]), "y"), "y", "Setting")
    assert bad.kind == "danger" and "unexpected" in repr(bad)


def test_a_check_recorded_as_failing_stays_failed_in_the_ledger(monkeypatch):
    from test_claims import FULL, cmf, table
    rows = table(*FULL.values(), cmf("scrub", 55, 80, 55))  # SCRUB + CMF: LP and NCC above SCRUB's
    checks = claims.cmf_checks(rows)
    monkeypatch.setitem(NOT_DECIDED, "x", frozenset({("claim3_lowers", "scrub/ncc")}))
    assert claims.verdict_of(claims.decide(checks, "x")) == (
        "holds in part", "1 of 3 checks hold, 1 fail, 1 not decided at this scale, 1 unexpected")
    monkeypatch.setitem(FAILS, "x", frozenset({("claim3_lowers", "scrub/lp")}))
    decided = claims.decide(checks, "x")
    assert claims.verdict_of(decided)[1] == ("1 of 3 checks hold, 1 fail (1 measured failing on "
                                             "every seed, illusion.claims.FAILS), 1 not decided "
                                             "at this scale")
    claims.enforce(decided)


def test_one_verdict_per_claim_from_the_chapters_checks(monkeypatch, tmp_path):
    setting = claims._checks([("original_accuracy", "original", 89.0),
                              ("probe_gap_retain", "lp", 0.5)])
    cmf = claims._checks([("claim3_tracks", "rl", 1.0), ("claim3_lowers", "rl/lp", 2.0),
                          ("claim3_lowers", "salun/lp", -1.0)])
    monkeypatch.setitem(NOT_DECIDED, "x", frozenset({("claim3_lowers", "salun/lp")}))
    assert claims.verdict_of(claims.decide(setting, "x")) == ("holds", "2 of 2 checks hold")
    verdict, counts = claims.verdict_of(claims.decide(cmf, "x"))
    assert verdict == "holds in part"
    assert counts == "1 of 3 checks hold, 1 fail, 1 not decided at this scale, 1 unexpected"
    monkeypatch.setitem(FAILS, "x", frozenset({("claim3_lowers", "rl/lp")}))
    decided = claims.decide(cmf, "x")
    assert claims.verdict_of(decided)[1] == ("1 of 3 checks hold, 1 fail (1 measured failing on "
                                             "every seed, illusion.claims.FAILS), 1 not decided "
                                             "at this scale")
    # The banner and the ledger word the same verdict.
    assert claims.banner(decided, "x", "Claim 3").title == "Claim 3 on 'x': holds in part"
    monkeypatch.setenv("ILLUSION_RESULTS", str(tmp_path))
    for chapter, table in {"01_setup": claims.decide(setting, "x"), "05_cmf": decided}.items():
        (tmp_path / "x" / chapter).mkdir(parents=True)
        table.to_csv(tmp_path / "x" / chapter / "checks.csv", index=False)
    ledger = claims.run_ledger("x").set_index("claim")
    assert ledger["verdict"].to_dict() == {"The setting": "holds", "Claim 3": "holds in part"}
    assert ledger.loc["Claim 3", "chapters"] == "05_cmf"
    page = claims.glance_markdown(ledger.reset_index(), "x")
    assert "| **Claim 3**: " in page and "{doc}`05 <05_cmf>`" in page
    with pytest.raises(FileNotFoundError, match="'y'"):
        claims.run_ledger("y")
