"""The claims ledger on hand-made tables whose verdicts are known: yes, partial and no for
each claim, and "not run" when the rows a claim needs are absent."""

import pandas as pd
import pytest

from illusion.claims import (Verdict, claim_1, claim_2, claim_3, claim_3_parts, claim_4, holds,
                             ledger, paper_lowered_heads, paper_results)


def acc(model, variant="full", forget_sets=("0", "1"), output=(90, 90), lp=(90, 90),
        ncc=(90, 90)) -> pd.DataFrame:
    """Rows of one model: (retain, forget) accuracy per head, the same on every forget set."""
    return pd.DataFrame([{"model": model, "variant": variant, "forget_set": fs, "head": head,
                          "split": split, "accuracy": float(value), "seconds": 1.0}
                         for fs in forget_sets
                         for head, pair in (("output", output), ("lp", lp), ("ncc", ncc))
                         for split, value in zip(("retain", "forget"), pair)])


def table(*parts) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True)


RETRAIN = acc("retrain", output=(92, 0), lp=(91, 50), ncc=(90, 30))
ORIGINAL = acc("original", output=(90, 95), lp=(88, 92), ncc=(85, 90))


def test_holds_rule():
    assert holds({"a": True, "b": True}) == "yes"
    assert holds({"a": True, "b": False}) == "partial"
    assert holds({"a": False}) == "no"
    assert holds({}) == "not run"
    with pytest.raises(ValueError, match="holds must be one of"):
        Verdict(1, "s", "p", "o", "maybe")


# ------------------------------------------------------------------ claim 1

def test_claim_1_yes_partial_no():
    illusion = dict(output=(90, 0), lp=(90, 90), ncc=(88, 80))
    yes = claim_1(table(RETRAIN, acc("rl", **illusion), acc("salun", **illusion)))
    assert yes.holds == "yes" and yes.units == {"rl": True, "salun": True}
    assert "92.49" in yes.paper and "(T)" in yes.paper  # the paper's RL LP forget
    assert "rl: output 0.0" in yes.ours and "Retrain 50.0" in yes.ours

    # SalUn's NCC forget is only 3 pp above Retrain's: below the 5 pp margin.
    partial = claim_1(table(RETRAIN, acc("rl", **illusion),
                            acc("salun", output=(90, 0), lp=(90, 90), ncc=(88, 33))))
    assert partial.holds == "partial" and partial.units == {"rl": True, "salun": False}

    # Output forget 20%: the methods did not even forget at the output.
    leaky = dict(output=(90, 20), lp=(90, 90), ncc=(88, 80))
    assert claim_1(table(RETRAIN, acc("rl", **leaky), acc("salun", **leaky))).holds == "no"
    # A larger margin turns the first table into "no" (LP gap 40, NCC gap 50).
    assert claim_1(table(RETRAIN, acc("rl", **illusion)), margin=45).holds == "no"


def test_claim_1_averages_over_forget_sets_shared_with_retrain():
    rl = table(acc("rl", output=(90, 0), lp=(90, 90), ncc=(88, 80)),
               acc("rl", forget_sets=("7",), output=(90, 100), lp=(90, 0), ncc=(90, 0)))
    assert claim_1(table(RETRAIN, rl), methods=("rl",)).holds == "yes"


def test_claim_1_not_run():
    rl = acc("rl", output=(90, 0), lp=(90, 90), ncc=(88, 80))
    assert claim_1(rl).holds == "not run"                                  # no Retrain
    assert claim_1(table(RETRAIN, acc("scrub"))).holds == "not run"        # no RL / SalUn
    with pytest.raises(ValueError, match="lacks columns"):
        claim_1(rl.drop(columns="head"))


# ------------------------------------------------------------------ claim 2

def test_claim_2_yes_partial_no():
    def co(model, output, lp=ORIGINAL_LP, ncc=ORIGINAL_NCC):
        return acc(model, "classifier_only", output=output, lp=lp, ncc=ncc)

    yes = claim_2(table(ORIGINAL, co("rl", (89.5, 0)), co("ga", (89, 3))))
    assert yes.holds == "yes" and yes.units == {"ga": True, "rl": True}
    # GA loses 10 pp of retain accuracy: not "unchanged retain".
    partial = claim_2(table(ORIGINAL, co("rl", (89.5, 0)), co("ga", (80, 0))))
    assert partial.holds == "partial" and partial.units == {"ga": False, "rl": True}
    # LP forget differs from the Original's: the backbone was not frozen.
    moved = claim_2(table(ORIGINAL, co("rl", (89.5, 0), lp=(88, 80))))
    assert moved.holds == "no" and "12.00 pp" in moved.ours
    assert claim_2(table(ORIGINAL, co("rl", (90, 50)), co("ga", (90, 40)))).holds == "no"


ORIGINAL_LP, ORIGINAL_NCC = (88, 92), (85, 90)


def test_claim_2_not_run():
    assert claim_2(table(ORIGINAL, acc("rl"))).holds == "not run"          # no classifier_only
    co = acc("rl", "classifier_only", output=(90, 0), lp=ORIGINAL_LP, ncc=ORIGINAL_NCC)
    assert claim_2(co).holds == "not run"                                  # no Original


# ------------------------------------------------------------------ claim 3

FULL = {"rl": acc("rl", output=(90, 0), lp=(90, 90), ncc=(90, 80)),
        "scrub": acc("scrub", output=(90, 0), lp=(90, 70), ncc=(90, 50))}


def cmf(model, out, lp, ncc):
    return acc(model, "cmf", output=(92, out), lp=(92, lp), ncc=(92, ncc))


def test_claim_3_yes_partial_no():
    yes = claim_3(table(*FULL.values(), cmf("rl", 70, 75, 72), cmf("scrub", 30, 55, 33)))
    assert yes.holds == "yes" and yes.units == {"rl": True, "scrub": True}
    assert "80.70" in yes.paper  # the paper's RL+CMF output forget
    # The same low output forget passes for SCRUB but fails for RL, whose CMF variant must
    # keep a high output forget accuracy (condition (c) applies to RL/SalUn only).
    partial = claim_3(table(*FULL.values(), cmf("rl", 20, 25, 22), cmf("scrub", 20, 25, 22)))
    assert partial.holds == "partial" and partial.units == {"rl": False, "scrub": True}
    # SCRUB+CMF: LP forget above full SCRUB's (75 > 70) and output far from NCC (|5 - 40|).
    no = claim_3(table(*FULL.values(), cmf("rl", 20, 25, 22), cmf("scrub", 5, 75, 40)))
    assert no.holds == "no"
    # Output forget more than max_gap away from NCC forget fails (b) alone.
    assert claim_3(table(FULL["rl"], cmf("rl", 70, 75, 60))).holds == "no"
    assert claim_3(table(FULL["rl"], cmf("rl", 70, 75, 60)), max_gap=15).holds == "yes"


def test_claim_3_parts_name_what_fails():
    parts = claim_3_parts(table(*FULL.values(), cmf("rl", 20, 95, 22), cmf("scrub", 30, 55, 33)))
    failing = parts[~parts["holds"]][["method", "part", "heads"]].values.tolist()
    # RL+CMF: LP 95 above RL's 90, output 20 below 50; its NCC is not compared (the paper's
    # own RL+CMF NCC rises).
    assert failing == [["rl", "lowers", "lp"], ["rl", "illusion", "output"]]
    assert set(parts.loc[parts["method"] == "rl", "heads"]) == {"output vs ncc", "lp", "output"}
    # "Barely forget" is relative to where the CMF variant starts: the CMF Original's output
    # forget (30 here: 20 keeps two thirds of it), else the Original's (80: 20 is a quarter).
    start = acc("original", "cmf", output=(92, 30), lp=(92, 90), ncc=(92, 30))
    base = table(*FULL.values(), cmf("rl", 20, 85, 22))
    illusion = lambda t: claim_3_parts(t).query("part == 'illusion'")["holds"].item()  # noqa: E731
    assert illusion(table(base, start)) and not illusion(table(base, ORIGINAL))


def test_claim_3_not_run():
    assert claim_3(table(*FULL.values())).holds == "not run"             # no cmf rows
    assert claim_3(cmf("rl", 70, 75, 72)).holds == "not run"               # no base method


# ------------------------------------------------------------------ claim 4

def auc(model, variant="full", forget_sets=("0", "1"), **by_attack) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "variant": variant, "forget_set": fs, "attack": a,
                          "auc": float(v)} for fs in forget_sets for a, v in by_attack.items()])


RELEARN_RETRAIN = auc("retrain", few_shot=30, head_only=20)
HIGH_LP = table(RETRAIN, acc("rl", output=(90, 0), lp=(90, 90)),
                acc("scrub", output=(90, 0), lp=(90, 52)))


def test_claim_4_yes_partial_no():
    relearn = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=60),
                    auc("scrub", few_shot=25, head_only=15))
    # SCRUB's LP forget (52) is not 10 pp above Retrain's (50): only RL is tested.
    yes = claim_4(relearn, HIGH_LP)
    assert yes.holds == "yes"
    assert yes.units == {"rl:few_shot": True, "rl:head_only": True}
    assert "not high-LP: scrub" in yes.ours
    # Without the results table every method is tested, and SCRUB recovers slower.
    assert claim_4(relearn).holds == "partial"
    # Fast on one attack only.
    mixed = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=10))
    assert claim_4(mixed, HIGH_LP).units == {"rl:few_shot": True, "rl:head_only": False}
    slow = table(RELEARN_RETRAIN, auc("rl", few_shot=20, head_only=10))
    assert claim_4(slow, HIGH_LP).holds == "no"
    # The AUC margin is respected: few-shot 80 > 30 + 45 passes, head-only 60 < 20 + 45 fails.
    assert claim_4(relearn, HIGH_LP, auc_margin=45).units == {"rl:few_shot": True,
                                                              "rl:head_only": False}


def test_claim_4_variants_and_not_run():
    relearn = table(RELEARN_RETRAIN, auc("rl", "cmf", few_shot=80, head_only=60))
    verdict = claim_4(relearn)
    assert verdict.units == {"rl/cmf:few_shot": True, "rl/cmf:head_only": True}
    assert claim_4(auc("rl", few_shot=80)).holds == "not run"              # no Retrain
    only_low = table(RELEARN_RETRAIN, auc("scrub", few_shot=80))
    v = claim_4(only_low, HIGH_LP)
    assert v.holds == "not run" and "no method has high LP forget" in v.ours


# ------------------------------------------------------------------ ledger

def test_ledger_runs_what_is_present():
    results = table(RETRAIN, acc("rl", output=(90, 0), lp=(90, 90), ncc=(88, 80)),
                    acc("salun", output=(90, 0), lp=(90, 90), ncc=(88, 80)))
    out = ledger({"results": results})
    assert out["claim"].tolist() == [1, 2, 3, 4]
    assert out["holds"].tolist() == ["yes", "not run", "not run", "not run"]
    assert list(out.columns) == ["claim", "claim_text", "statement", "paper", "ours", "holds"]
    relearn = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=60))
    both = ledger({"results": results, "relearning": relearn}, options={1: {"margin": 45}})
    assert both["holds"].tolist() == ["no", "not run", "not run", "yes"]
    assert (ledger({})["holds"] == "not run").all()
    with pytest.raises(ValueError, match="unknown table.*valid choices"):
        ledger({"accuracy": results})
    with pytest.raises(ValueError, match="unknown claim"):
        ledger({"results": results}, options={7: {}})


def test_paper_results_table_feeds_the_claims():
    paper = paper_results()
    rl_lp = paper[(paper["model"] == "rl") & (paper["variant"] == "full") & (paper["head"] == "lp")
                  & (paper["split"] == "forget")]["accuracy"]
    assert rl_lp.tolist() == [92.49]
    assert len(paper) == 11 * 6 - 5  # five cells are unknown
    # By the paper's own numbers claims 1 and 3 hold; claim 3 compares only the heads whose
    # forget accuracy the paper reports lower (RL+CMF NCC forget 82.04 is above RL's 80.25).
    assert claim_1(paper).holds == "yes"
    assert claim_3(paper).holds == "yes"
    assert claim_3(paper, lowered_heads={"rl": ("lp", "ncc")}).units["rl"] is False
    assert paper_lowered_heads() == {"rl": ("lp",), "salun": ("lp", "ncc"), "neggrad_plus": (),
                                     "scrub": ("lp", "ncc"), "unsir": ("ncc",)}
