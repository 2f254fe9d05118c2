"""The book's check functions on hand-made tables whose verdicts are known: which checks hold,
which fail and which do not apply, and one verdict per claim from them."""

import pandas as pd
import pytest

from illusion import claims
from illusion.claims import (classifier_only_checks, cmf_checks, decide, misalignment_checks,
                             paper_lowered_heads, paper_results, relearning_checks, verdict_of,
                             verdicts)


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


def measured(checks: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(check, subject) -> verdict, judged by the tolerances alone."""
    decided = decide(checks, None)
    return dict(zip(zip(decided["check"], decided["subject"]), decided["verdict"]))


def failing(checks: pd.DataFrame) -> list[tuple[str, str]]:
    return [key for key, verdict in measured(checks).items() if verdict == "fails"]


RETRAIN = acc("retrain", output=(92, 0), lp=(91, 50), ncc=(90, 30))
ORIGINAL = acc("original", output=(90, 95), lp=(88, 92), ncc=(85, 90))


# ------------------------------------------------------------------ one verdict per claim

def test_verdict_of_a_claims_checks():
    checks = claims._checks([("claim1_output_forget", "rl", 0.0),
                             ("claim1_output_forget", "salun", 1.0),
                             ("claim4_auc_gain", "scrub:few_shot", -3.0, False)])
    assert verdict_of(decide(checks, None)) == ("holds", "2 of 2 checks hold")
    part = checks.assign(value=[0.0, 20.0, -3.0])
    assert verdict_of(decide(part, None)) == ("holds in part", "1 of 2 checks hold, 1 fail, "
                                                               "1 unexpected")
    assert verdict_of(decide(checks.assign(value=[20.0, 20.0, -3.0]), None))[0] == "fails"
    assert verdict_of(decide(checks.iloc[2:], None)) == ("not applicable", "no check applies")


def test_verdicts_list_every_claim_asked_for():
    checks = decide(misalignment_checks(table(ORIGINAL, RETRAIN, acc("rl", output=(90, 0))),
                                        methods=("rl",)), None)
    ledger = verdicts(checks, claims=("1", "2", "3", "4"))
    assert ledger["claim"].tolist() == ["Claim 1", "Claim 2", "Claim 3", "Claim 4"]
    assert ledger["verdict"].tolist()[1:] == ["not run"] * 3
    assert ledger.loc[0, "statement"] == claims.STATEMENTS["1"]
    assert verdicts(checks)["claim"].tolist() == ["Claim 1"]  # by default, the claims checked
    with pytest.raises(ValueError, match=r"unknown claim\(s\) \['5'\]; valid choices"):
        verdicts(checks, claims=("1", "5"))


# ------------------------------------------------------------------ claim 1 (chapter 2)

ILLUSION = dict(output=(90, 0), lp=(90, 90), ncc=(88, 80))


def test_misalignment_checks_hold_and_fail():
    both = misalignment_checks(table(ORIGINAL, RETRAIN, acc("rl", **ILLUSION),
                                     acc("salun", **ILLUSION)))
    assert set(measured(both).values()) == {"holds"} and len(both) == 2 * (2 + 2 * 2)
    values = both.set_index(["check", "subject"])["value"]
    assert values["claim1_above_retrain", "rl/lp"] == 40.0      # 90 against Retrain's 50
    assert values["claim1_below_original", "rl/ncc"] == 10.0    # 80 against the Original's 90

    # SalUn's NCC forget is only 3 pp above Retrain's (below the 5 pp margin) and 57 pp below
    # the Original's (more than 10): the features lost the class.
    lost = misalignment_checks(table(ORIGINAL, RETRAIN, acc("rl", **ILLUSION),
                                     acc("salun", output=(90, 0), lp=(90, 90), ncc=(88, 33))))
    assert failing(lost) == [("claim1_above_retrain", "salun/ncc"),
                             ("claim1_below_original", "salun/ncc")]
    assert verdict_of(decide(lost, None))[0] == "holds in part"

    # Output forget 20% and retain 10 pp below the Original's: not output-level success.
    leaky = misalignment_checks(table(ORIGINAL, RETRAIN,
                                      acc("rl", output=(80, 20), lp=(90, 90), ncc=(88, 80))),
                                methods=("rl",))
    assert failing(leaky) == [("claim1_output_forget", "rl"), ("claim1_output_retain_change", "rl")]


def test_misalignment_checks_average_over_the_forget_sets():
    rl = table(acc("rl", forget_sets=("0",), output=(90, 0), lp=(90, 90), ncc=(88, 80)),
               acc("rl", forget_sets=("1",), output=(90, 8), lp=(90, 60), ncc=(88, 80)))
    values = misalignment_checks(table(ORIGINAL, RETRAIN, rl), methods=("rl",)).set_index(
        ["check", "subject"])["value"]
    assert values["claim1_output_forget", "rl"] == 4.0          # 0 and 8
    assert values["claim1_above_retrain", "rl/lp"] == 25.0       # 90 and 60 against 50


# ------------------------------------------------------------------ claim 2 (chapter 4)

def co(model, output, lp=(88, 92), ncc=(85, 90)):
    """A classifier-only model, actually evaluated (the Original's LP and NCC by default)."""
    return acc(model, "classifier_only", output=output, lp=lp, ncc=ncc).assign(
        computed_as="classifier_only")


def full(model, retain=90.0):
    return acc(model, output=(retain, 0)).assign(computed_as="full")


BASE = ORIGINAL.assign(computed_as="full")


def test_classifier_only_checks_hold_and_fail():
    ok = classifier_only_checks(table(BASE, full("rl"), co("rl", (89.5, 0)), full("ga"),
                                      co("ga", (89, 3))), methods=("rl", "ga"))
    assert set(measured(ok).values()) == {"holds"}
    assert set(ok["check"]) == {"claim2_output_forget", "claim2_output_retain_change",
                                "claim2_heads_unchanged"}  # no geometry: no evidence checks
    # Classifier-only GA loses 10 pp of retain accuracy: not "unchanged retain".
    ga = classifier_only_checks(table(BASE, full("ga"), co("ga", (80, 0))), methods=("ga",))
    assert failing(ga) == [("claim2_output_retain_change", "ga")]
    # ... unless GA's own full run loses it too: then its settings are at fault, and the retain
    # check does not apply.
    ga = classifier_only_checks(table(BASE, full("ga", retain=80), co("ga", (80, 0))),
                                methods=("ga",))
    assert measured(ga)[("claim2_output_retain_change", "ga")] == "not applicable"
    # LP forget differs from the Original's: the backbone was not frozen.
    moved = classifier_only_checks(table(BASE, full("rl"), co("rl", (89.5, 0), lp=(88, 80))),
                                   methods=("rl",))
    assert failing(moved) == [("claim2_heads_unchanged", "rl")]
    assert moved.set_index("check").loc["claim2_heads_unchanged", "value"] == 12.0
    leaky = classifier_only_checks(table(BASE, full("rl"), co("rl", (90, 50))), methods=("rl",))
    assert failing(leaky) == [("claim2_output_forget", "rl")]


def test_classifier_only_checks_with_the_evidence():
    geometry = pd.DataFrame({"model": ["original", "rl"], "alignment_forget": [0.9, 0.1],
                             "alignment_retain": [0.9, 0.88], "nc4_forget": [2.0, 70.0],
                             "nc4_retain": [1.0, 2.0]})
    checks = classifier_only_checks(table(BASE, full("rl"), co("rl", (89.5, 0))), geometry,
                                    methods=("rl",), features_identical=True)
    values = checks.set_index("check")["value"]
    assert values["claim2_forget_alignment_change"] == pytest.approx(-0.8)
    assert values["claim2_nc4_forget_change"] == 68.0
    assert values["claim2_features_identical"] == 1.0
    assert set(measured(checks).values()) == {"holds"}
    turned = geometry.assign(alignment_forget=[0.9, 0.7])  # the forget row barely turned away
    assert failing(classifier_only_checks(table(BASE, full("rl"), co("rl", (89.5, 0))), turned,
                                          methods=("rl",))) == [
        ("claim2_forget_alignment_change", "rl")]


# ------------------------------------------------------------------ claim 3 (chapter 5)

FULL = {"rl": acc("rl", output=(90, 0), lp=(90, 90), ncc=(90, 80)),
        "scrub": acc("scrub", output=(90, 0), lp=(90, 70), ncc=(90, 50))}


def cmf(model, out, lp, ncc):
    return acc(model, "cmf", output=(92, out), lp=(92, lp), ncc=(92, ncc))


def test_cmf_checks_hold_and_fail():
    ok = cmf_checks(table(*FULL.values(), cmf("rl", 70, 75, 72), cmf("scrub", 30, 55, 33)))
    assert set(measured(ok).values()) == {"holds"}
    # RL is compared on LP only (the paper's own RL + CMF NCC rises), SCRUB on both heads, and
    # only RL (of RL and SalUn) must keep a high output forget.
    assert list(zip(ok["check"], ok["subject"])) == [
        ("claim3_tracks", "rl"), ("claim3_lowers", "rl/lp"), ("claim3_illusion", "rl"),
        ("claim3_tracks", "scrub"), ("claim3_lowers", "scrub/lp"), ("claim3_lowers", "scrub/ncc")]
    # The same low output forget passes for SCRUB but fails for RL.
    low = cmf_checks(table(*FULL.values(), cmf("rl", 20, 25, 22), cmf("scrub", 20, 25, 22)))
    assert failing(low) == [("claim3_illusion", "rl")]
    # SCRUB + CMF: LP forget above full SCRUB's (75 > 70) and output far from NCC (|5 - 40|).
    scrub = cmf_checks(table(*FULL.values(), cmf("scrub", 5, 75, 40)))
    assert failing(scrub) == [("claim3_tracks", "scrub"), ("claim3_lowers", "scrub/lp")]
    # The method judged for the illusion is a parameter (``illusion evaluate`` names its own).
    mine = cmf_checks(table(*FULL.values(), cmf("scrub", 30, 55, 33)), illusion_methods=("scrub",))
    assert failing(mine) == [("claim3_illusion", "scrub")]  # 30 of 100: below half


def test_cmf_checks_name_what_fails():
    parts = cmf_checks(table(*FULL.values(), cmf("rl", 20, 95, 22), cmf("scrub", 30, 55, 33)))
    # RL+CMF: LP 95 above RL's 90, output 20 below half of 100.
    assert failing(parts) == [("claim3_lowers", "rl/lp"), ("claim3_illusion", "rl")]
    # "Barely forget" is relative to where the CMF variant starts: the CMF Original's output
    # forget (30 here: 20 keeps two thirds of it), else the Original's (95: 20 is a fifth).
    start = acc("original", "cmf", output=(92, 30), lp=(92, 90), ncc=(92, 30))
    base = table(*FULL.values(), cmf("rl", 20, 85, 22))

    def kept(t):
        return cmf_checks(t).set_index("check").loc["claim3_illusion", "value"]

    assert kept(table(base, start)) == pytest.approx(20 / 30)
    assert kept(table(base, ORIGINAL)) == pytest.approx(20 / 95)
    assert failing(cmf_checks(table(base, ORIGINAL))) == [("claim3_illusion", "rl")]


def test_cmf_checks_of_the_cmf_original_and_without_rows():
    rows = table(*FULL.values(), cmf("rl", 70, 75, 72))
    assert not {"cmf_original_closeness", "cmf_head_agreement"} & set(cmf_checks(rows)["check"])
    closeness = pd.DataFrame({"head": ["output", "lp", "ncc"], "difference": [-1.0, 4.0, 0.5]})
    checks = cmf_checks(rows, closeness, 99.5)
    assert failing(checks) == [("cmf_original_closeness", "lp")]
    assert measured(checks)[("cmf_head_agreement", "cmf_original")] == "holds"
    assert cmf_checks(table(*FULL.values())).empty                  # no cmf rows
    assert cmf_checks(cmf("rl", 70, 75, 72)).empty                   # no base method


# ------------------------------------------------------------------ claim 4 (chapter 6)

def auc(model, variant="full", forget_sets=("0", "1"), **by_attack) -> pd.DataFrame:
    return pd.DataFrame([{"model": model, "variant": variant, "forget_set": fs, "attack": a,
                          "auc": float(v)} for fs in forget_sets for a, v in by_attack.items()])


RELEARN_RETRAIN = auc("retrain", few_shot=30, head_only=20)
HIGH_LP = table(RETRAIN, acc("rl", output=(90, 0), lp=(90, 90)),
                acc("scrub", output=(90, 0), lp=(90, 52)))


def test_relearning_checks_hold_and_fail():
    relearn = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=60),
                    auc("scrub", few_shot=25, head_only=15))
    # SCRUB's LP forget (52) is not 10 pp above Retrain's (50): its rows do not apply.
    assert measured(relearning_checks(relearn, HIGH_LP)) == {
        ("claim4_auc_gain", "rl:few_shot"): "holds", ("claim4_auc_gain", "rl:head_only"): "holds",
        ("claim4_auc_gain", "scrub:few_shot"): "not applicable",
        ("claim4_auc_gain", "scrub:head_only"): "not applicable"}
    assert relearning_checks(relearn, HIGH_LP)["value"].tolist()[:2] == [50.0, 40.0]
    # Fast on one attack only.
    mixed = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=10))
    assert failing(relearning_checks(mixed, HIGH_LP)) == [("claim4_auc_gain", "rl:head_only")]
    # Only the attacks asked for, and only forget sets attacked on Retrain too.
    assert relearning_checks(mixed, HIGH_LP, attacks=("few_shot",))["subject"].tolist() == [
        "rl:few_shot"]
    elsewhere = table(RELEARN_RETRAIN, auc("rl", forget_sets=("7",), few_shot=80))
    assert relearning_checks(elsewhere, HIGH_LP).empty


def test_relearning_checks_of_the_variants():
    relearn = table(RELEARN_RETRAIN, auc("rl", few_shot=80, head_only=60),
                    auc("rl", "cmf", few_shot=20, head_only=60))
    results = table(HIGH_LP, acc("rl", "cmf", output=(90, 50), lp=(90, 85)))
    assert relearning_checks(relearn, results)["subject"].tolist() == ["rl:few_shot",
                                                                        "rl:head_only"]
    both = relearning_checks(relearn, results, variants=("full", "cmf"))
    assert both["subject"].tolist() == ["rl:few_shot", "rl:head_only", "rl/cmf:few_shot",
                                        "rl/cmf:head_only"]
    assert failing(both) == [("claim4_auc_gain", "rl/cmf:few_shot")]
    # A variant is high-LP by its own LP forget: RL + CMF at 55 is not.
    low = table(HIGH_LP, acc("rl", "cmf", output=(90, 50), lp=(90, 55)))
    applies = relearning_checks(relearn, low, variants=("cmf",))["applies"]
    assert not applies.any() and len(applies) == 2


# ------------------------------------------------------------------ the paper's numbers

def test_paper_results_table_feeds_the_checks():
    paper = paper_results()
    rl_lp = paper[(paper["model"] == "rl") & (paper["variant"] == "full") & (paper["head"] == "lp")
                  & (paper["split"] == "forget")]["accuracy"]
    assert rl_lp.tolist() == [92.49]
    assert len(paper) == 11 * 6 - 5  # five cells are unknown
    # By the paper's own numbers every part of claim 3 holds; it compares only the heads whose
    # forget accuracy the paper reports lower (RL+CMF NCC forget 82.04 is above RL's 80.25).
    parts = cmf_checks(paper)
    assert set(measured(parts).values()) == {"holds"}
    assert set(parts["subject"]) == {"rl", "rl/lp", "salun", "salun/lp", "salun/ncc", "scrub",
                                     "scrub/lp", "scrub/ncc", "neggrad_plus", "unsir",
                                     "unsir/ncc"}
    rl_ncc_too = paper_lowered_heads() | {"rl": ("lp", "ncc")}
    assert failing(cmf_checks(paper, lowered_heads=rl_ncc_too)) == [("claim3_lowers", "rl/ncc")]
    assert paper_lowered_heads() == {"rl": ("lp",), "salun": ("lp", "ncc"), "neggrad_plus": (),
                                     "scrub": ("lp", "ncc"), "unsir": ("ncc",)}


@pytest.mark.parametrize("profile, verdict", [("paper", "fails"), ("paper-cifar100", "not decided"),
                                              ("paper-tinyimagenet", "not decided")])
def test_the_original_accuracy_floor_is_asserted_only_where_it_was_measured(profile, verdict):
    # A CIFAR-100 ResNet-18 ends in the 70s: below Fashion-MNIST's floor, unmeasured on its own.
    probes = pd.DataFrame([("original", "6", split, probe, 70.0) for split in ("retain", "forget")
                           for probe in ("lbfgs", "sgd")],
                          columns=["model", "forget_set", "split", "probe", "accuracy"])
    checks = decide(claims.setup_checks(76.0, probes), profile)
    row = checks[checks["check"] == "original_accuracy"].iloc[0]
    assert (row.verdict, row.expected) == (verdict, "not decided" if verdict == "not decided" else "holds")


def test_a_check_the_two_probes_decide_differently_says_so():
    """Claim 1's LP margin over Retrain: 14 pp under the paper's probe, 2 pp under L-BFGS."""
    rl = acc("rl", output=(90, 0), lp=(90, 64))
    models = (ORIGINAL, RETRAIN, acc("rl", output=(90, 0), lp=(90, 52)))
    second = table(*(m.query("head == 'lp'") for m in models)).assign(head=claims.SECOND_OPINION)
    results = table(ORIGINAL, RETRAIN, rl, second)
    checks = claims.with_second_opinion(misalignment_checks, results, methods=("rl",))
    decided = decide(checks, None).set_index(["check", "subject"])
    assert decided.loc[("claim1_above_retrain", "rl/lp"), "value"] == 14.0
    assert decided.loc[("claim1_above_retrain", "rl/lp"), "second_opinion"] == 2.0
    assert decided.loc[("claim1_above_retrain", "rl/lp"), "verdict"] == "holds"
    assert decided.loc[("claim1_above_retrain", "rl/lp"), "probe"] == claims.DEPENDS_ON_THE_PROBE
    # A check that does not read the probe has the same value under both, and no mark.
    assert decided.loc[("claim1_above_retrain", "rl/ncc"), "second_opinion"] == \
        decided.loc[("claim1_above_retrain", "rl/ncc"), "value"]
    assert decided.loc[("claim1_above_retrain", "rl/ncc"), "probe"] == ""
    verdict, counts = verdict_of(decided[decided["claim"] == "1"].reset_index())
    assert "1 depends on the probe" in counts
    # Without the second opinion's rows, nothing to compare: NaN, no mark.
    alone = decide(claims.with_second_opinion(misalignment_checks, results.query(
        "head != @claims.SECOND_OPINION"), methods=("rl",)), None)
    assert alone["second_opinion"].isna().all() and (alone["probe"] == "").all()


def test_setup_checks_read_the_references_only():
    """The probe gap of chapter 1 is asserted on the Original and Retrain; the unlearned and
    CMF models are shown beside them, not checked."""
    rows = [("original", "full", "6", s, p, 80.0) for s in ("retain", "forget")
            for p in ("lbfgs", "sgd")]
    rows += [("rl", "full", "6", s, p, 80.0 if p == "sgd" else 40.0)
             for s in ("retain", "forget") for p in ("lbfgs", "sgd")]
    probes = pd.DataFrame(rows, columns=["model", "variant", "forget_set", "split", "probe",
                                         "accuracy"])
    gaps = claims.setup_checks(90.0, probes).set_index("check")["value"]
    assert gaps["probe_gap_retain"] == 0.0 and gaps["probe_gap_forget"] == 0.0


def test_the_vit_appendix_table_is_the_papers():
    """REFERENCE §9b, transcribed: a few cells, its shape, and the appendix's finding that even
    Retrain keeps the LP forget accuracy at 77.6-97.7% on pretrained features."""
    c10 = claims.paper_vit_results("cifar10")
    assert len(c10) == 5 * 3 * 2 * 2 and set(c10["bucket"]) == {"single", "multi"}
    cell = lambda t, **k: t.query(" and ".join(f"{c} == {v!r}" for c, v in k.items()))["accuracy"].item()  # noqa: E731
    assert cell(c10, model="rl", head="ncc", split="forget", bucket="single") == 99.57
    tiny = claims.paper_vit_results("tinyimagenet")
    assert cell(tiny, model="neggrad_plus", head="lp", split="forget", bucket="multi") == 67.50
    retrain_lp = pd.concat(claims.paper_vit_results(d) for d in claims.PAPER_VIT_DATASETS).query(
        "model == 'retrain' and head == 'lp' and split == 'forget'")["accuracy"]
    assert retrain_lp.min() == 77.60 and retrain_lp.max() == 97.71
    with pytest.raises(ValueError, match="no dataset 'mnist'.*cifar10"):
        claims.paper_vit_results("mnist")
