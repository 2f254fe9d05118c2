"""Methods from outside the package: a test-only package installed as a distribution (a
``*.dist-info`` folder with ``entry_points.txt`` on ``sys.path``, found by ``importlib.metadata``)
and a ``module:function`` path, each evaluated end to end on a shrunken smoke profile, and
every bad input of ``illusion evaluate``."""

import json
import re
import sys
import textwrap

import pandas as pd
import pytest
import torch

from illusion import claims, outside
from illusion.cli import main
from illusion.config import get_profile
from illusion.evaluation import SHORT, MethodReport, evaluate_method
from illusion.experiment import Experiment
from illusion.unlearn import METHODS, traits

# Tiny sizes: one forget set, one epoch, a short attack.
TINY = {"data.train_per_class": 30, "data.test_per_class": 10, "original.epochs": 1,
        "retrain.epochs": 1, "attack.steps": 2, "attack.eval_every": 1,
        "heads.lbfgs_max_iter": 20, "probes.prototype_shots": [1, 5]}
PACKAGE = "illusion_outside_testpkg"
METHODS_PY = '''
import torch
from torch import nn

from illusion.outside import Declaration, declare


def _retain_steps(model, split, cfg, ctx):
    """Fine-tune on D_r for cfg.epochs epochs: honours the context as a built-in does."""
    optimiser = torch.optim.SGD(ctx.parameters(model), lr=cfg.lr, momentum=0.9)
    x, y = split.retain_train.x, split.retain_train.y
    for epoch in range(cfg.epochs):
        ctx.on_epoch_start(model, epoch)
        ctx.train_mode(model)
        for i in range(0, len(x), cfg.batch_size):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + cfg.batch_size]),
                                        y[i:i + cfg.batch_size]).backward()
            optimiser.step()
            ctx.on_step(model, i)
        ctx.on_epoch_end(model, epoch)
    return model


# What the entry point names: a declaration object with traits and settings.
TINY = Declaration(_retain_steps, lr=0.02, options={"strength": 1.0}, cmf_lr=0.005,
                   classifier_only_lr=0.05)


@declare(lr=0.03)
def plain(model, split, cfg, ctx):
    return _retain_steps(model, split, cfg, ctx)


def broken(model, split, cfg, ctx):
    return None


def zero_retain(model, split, cfg, ctx):
    """Writes into the data it was lent: every later run would train on blank images."""
    split.retain_train.x.zero_()
    return _retain_steps(model, split, cfg, ctx)


def as_float64(model, split, cfg, ctx):
    return _retain_steps(model, split, cfg, ctx).double()


@declare(edits_classifier=True, epochs=0, lr=0.0, fixed=("epochs", "lr"))
def silence_bias(model, split, cfg, ctx):
    """A training-free edit of the last layer; a CMF head has no bias to edit."""
    with torch.no_grad():
        for c in split.forget_set.classes:
            model.fc.bias[c] = -1e4
    return model


@declare(edits_classifier=True, epochs=0, lr=0.0, fixed=("epochs", "lr"))
def zero_rows(model, split, cfg, ctx):
    """Classifier surgery only: the forget rows zeroed, their biases -1e4. Every feature is the
    Original's; no fine-tuning from this head moves such a bias."""
    with torch.no_grad():
        for c in split.forget_set.classes:
            model.fc.weight[c] = 0
            model.fc.bias[c] = -1e4
    return model


def bias_then_retain(model, split, cfg, ctx):
    """Touches fc.bias before fine-tuning: fails under CMF, whose head has no bias."""
    with torch.no_grad():
        model.fc.bias.zero_()
    return _retain_steps(model, split, cfg, ctx)


def two_args(model, split):
    return model
'''


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The test package on sys.path, with its distribution metadata declaring entry point
    ``tiny_outside`` of group ``illusion.methods``; removed afterwards, and so are the methods
    it registered."""
    root = tmp_path_factory.mktemp("site")
    (root / PACKAGE).mkdir()
    (root / PACKAGE / "__init__.py").write_text("")
    (root / PACKAGE / "methods.py").write_text(METHODS_PY)
    info = root / f"{PACKAGE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [illusion.methods]
        tiny_outside = {PACKAGE}.methods:TINY
        """))
    before = set(METHODS)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in set(METHODS) - before:
        del METHODS[name]
    for module in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[module]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """One artifact store for the module: the Original and Retrain train once."""
    return tmp_path_factory.mktemp("store")


def test_an_entry_point_method_gets_the_report_of_a_builtin(package, store_dir, monkeypatch):
    monkeypatch.setenv("ILLUSION_CACHE", str(store_dir))
    assert "tiny_outside" in outside.choices()
    assert "tiny_outside" in outside.entry_points()

    # Its declared row under the profile's policy, overridable like a built-in's.
    exp = Experiment("default", {"methods.tiny_outside.lr": 0.07}, methods=["tiny_outside"])
    assert exp.method_names == ("tiny_outside",)
    assert exp.profile.method("tiny_outside").lr == 0.07
    assert exp.profile.method("tiny_outside").epochs == get_profile("default").method("rl").epochs
    assert exp.profile.method("tiny_outside", "classifier_only").lr == 0.05
    assert exp.profile.method("tiny_outside", "cmf").lr == 0.005
    assert exp.profile.method("tiny_outside").options == {"strength": 1.0}
    assert traits("tiny_outside").options == ("strength",)
    with pytest.raises(ValueError, match="unknown option.*'strenght'.*valid choices"):
        Experiment("default", {"methods.tiny_outside.options": {"strenght": 2}},
                   methods=["tiny_outside"])

    report = evaluate_method("tiny_outside", "smoke", ["0"], TINY)
    assert isinstance(report, MethodReport)
    keys = ["model", "variant"]
    expected = {"table1": {("original", "full"), ("retrain", "full"), ("tiny_outside", "full")},
                "table2": {("original", "full"), ("retrain", "full"), ("tiny_outside", "full"),
                           ("tiny_outside", "classifier_only")},
                "table3": {("original", "full"), ("original", "cmf"), ("retrain", "full"),
                           ("tiny_outside", "full"), ("tiny_outside", "cmf")}}
    for name, pairs in expected.items():
        table = getattr(report, name)
        assert set(map(tuple, table[keys].drop_duplicates().to_numpy())) == pairs, name
        # The paper's probe (lp) and the L-BFGS probe beside it, as the book's Tables 1-3.
        assert set(table["head"]) == {"output", "lp", "ncc", claims.SECOND_OPINION}
        assert set(table["split"]) == {"retain", "forget"}
        assert table["accuracy"].between(0, 100).all()
    # The classifier-only model's LP and NCC are the Original's (its backbone is frozen).
    t2 = report.table2[report.table2["head"].isin(["lp", "ncc"])]
    heads = t2.set_index(["model", "variant", "head", "split"])["accuracy"]
    for h in ("lp", "ncc"):
        for s in ("retain", "forget"):
            assert heads["tiny_outside", "classifier_only", h, s] == heads["original", "full", h, s]

    auc = report.recovery_auc
    assert set(auc["attack"]) == {"retain_finetune", "few_shot", "head_only", "few_shot_fresh",
                                  "head_only_fresh", *(f"prototype ({form}, α={alpha:g})"
                                                       for form in ("cosine", "l2")
                                                       for alpha in (0.5, 1))}
    assert {("tiny_outside", v) for v in ("full", "classifier_only", "cmf")} <= set(
        map(tuple, auc[keys].drop_duplicates().to_numpy()))
    # Every claim judged by the book's checks, with this method as the unit of each.
    assert list(report.claims.columns) == ["claim", "statement", "verdict", "checks"]
    assert list(report.claims["claim"]) == ["Claim 1", "Claim 2", "Claim 3", "Claim 4"]
    checks = report.checks
    assert {"check", "subject", "value", "verdict", "expected", "second_opinion",
            "probe"} <= set(checks.columns)
    assert {"claim1_output_forget", "claim2_output_forget", "claim2_heads_unchanged",
            "claim3_tracks", "claim3_illusion", "claim4_strongest_gain"} <= set(checks["check"])
    assert checks["subject"].str.match(r"tiny_outside($|[/:])").all(), checks["subject"]
    assert checks["verdict"].isin(claims.VERDICTS).all()
    for row in report.claims.itertuples():  # the verdict of a claim is that of its checks
        mine = checks[checks["claim"] == row.claim.removeprefix("Claim ")]
        assert (row.verdict, row.checks) == claims.verdict_of(mine)
    assert report.meta["origin"] == f"{PACKAGE}.methods:TINY"
    # On smoke every method, built-in or not, takes the profile's common LR (0.01).
    assert report.meta["settings"]["cmf"]["lr"] == get_profile("smoke").method("rl", "cmf").lr
    text = report.summary()
    for title in ("Table 1", "Table 2", "Table 3", "Relearning: recovery", "Strongest attack", "Over-unlearning", "Claims ledger", "Verdicts"):
        assert title in text
    assert f"Claim 4 ({SHORT['4']}): {report.claims.loc[3, 'verdict']}" in text


def test_a_module_function_path_through_the_cli(package, store_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("ILLUSION_CACHE", str(store_dir))
    out = tmp_path / "report"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    status = main(["evaluate", "--method", f"{PACKAGE}.methods:plain", "--profile", "smoke",
                   "--forget-sets", "0", "--out", str(out), *sets,
                   "--set", "methods.plain.lr=0.004"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "Table 3" in printed.out and "Claim 4" in printed.out
    files = {p.name for p in out.iterdir()}
    assert files == {"report.json", "summary.txt", *(f"{t}.csv" for t in MethodReport.TABLES)}
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["method"] == "plain"
    assert report["meta"]["settings"]["full"]["lr"] == 0.004
    verdicts = pd.read_csv(out / "claims.csv")
    assert list(verdicts["claim"]) == ["Claim 1", "Claim 2", "Claim 3", "Claim 4"]
    assert verdicts["verdict"].notna().all()
    table3 = pd.read_csv(out / "table3.csv")
    assert ("plain", "cmf") in set(zip(table3["model"], table3["variant"]))


@pytest.mark.parametrize("method, message", [
    ("no_such_method", "unknown unlearning method 'no_such_method'; valid choices: .*'rl'.*"
                       "'tiny_outside'"),
    ("no_such_pkg.mod:fn", "cannot import module 'no_such_pkg.mod'"),
    (f"{PACKAGE}.methods:missing", f"module '{PACKAGE}.methods' has no 'missing'; valid "
                                   f"choices: .*'broken'.*'plain'"),
    (f"{PACKAGE}.methods:two_args", r"takes \(model, split, cfg, ctx\)"),
    (f"{PACKAGE}.methods", "unknown unlearning method"),
    (f"{PACKAGE}.methods:", "write 'module:function'"),
])
def test_bad_methods_fail_before_anything_is_written(package, tmp_path, capsys, method, message):
    out = tmp_path / "never"
    assert main(["evaluate", "--method", method, "--profile", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args, message", [
    (["--forget-sets", "12"], "--forget-sets: forget set 12: class\\(es\\) \\[12\\] out of range"),
    (["--forget-sets", "x"], "--forget-sets: cannot read forget set 'x'"),
    (["--set", "methods.plain.lrr=1"], "unknown setting 'methods.plain.lrr'"),
    (["--set", "nonsense"], "write KEY=VALUE"),
])
def test_bad_settings_fail_before_anything_is_written(package, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["evaluate", "--method", f"{PACKAGE}.methods:plain", "--profile", "smoke",
                 "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not out.exists() and not list(tmp_path.glob("cache/models/*"))


def test_a_method_that_fails_while_it_runs_stores_and_writes_nothing(package, tmp_path, capsys):
    out = tmp_path / "never"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    status = main(["evaluate", "--method", f"{PACKAGE}.methods:broken", "--profile", "smoke",
                   "--forget-sets", "0", "--out", str(out), *sets,
                   "--set", "original.epochs=1"])
    err = capsys.readouterr().err
    assert status == 1
    assert "method 'broken'" in err and "returned a NoneType" in err and "No report" in err
    assert not out.exists()
    # The Original and the Retrain, which run before the method; the failed run stored nothing.
    assert len(list((tmp_path / "cache" / "models").glob("*.pt"))) == 2


def test_a_name_taken_by_a_builtin_is_refused(package, tmp_path):
    mod = tmp_path / "clash_mod.py"
    mod.write_text("def rl(model, split, cfg, ctx):\n    return model\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(outside.MethodError, match="name 'rl' is taken by a built-in method"):
            outside.load("clash_mod:rl")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("clash_mod", None)


def test_editing_an_outside_method_changes_its_store_key(package, tmp_path):
    from illusion.experiment import origin
    mod = tmp_path / "edited_mod.py"
    sys.path.insert(0, str(tmp_path))
    try:
        keys = []
        for body in ("return model", "return model  # edited"):
            mod.write_text(f"def edited(model, split, cfg, ctx):\n    {body}\n")
            sys.modules.pop("edited_mod", None)
            METHODS.pop("edited", None)
            outside.load("edited_mod:edited")
            keys.append(origin("edited"))
        assert keys[0]["origin"] == keys[1]["origin"] == "edited_mod:edited"
        assert keys[0]["code"] != keys[1]["code"]
        assert origin("rl") == {}  # built-in keys are unchanged
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_mod", None)
        METHODS.pop("edited", None)


def test_a_method_that_writes_into_its_split_is_refused_and_corrupts_nothing(package, tmp_path,
                                                                             capsys):
    from illusion.unlearn import InputChangedError
    exp = Experiment("smoke", TINY, methods=[f"{PACKAGE}.methods:zero_retain"])
    before = exp.split(0).retain_train.x.clone()
    with pytest.raises(InputChangedError, match=r"method 'zero_retain' changed what it was "
                                                r"lent: split\.retain_train.*Nothing was stored"):
        exp.unlearned("zero_retain", 0)
    assert not list((tmp_path / "cache" / "models").glob("*zero*"))
    stored = len(list((tmp_path / "cache" / "models").glob("*.pt")))
    assert stored == 1  # the Original only: the refused run stored nothing
    # The shared split is intact: the next method trains on the real images.
    assert torch.equal(exp.split(0).retain_train.x, before)
    assert exp.split(0).retain_train.x.abs().sum() > 0
    # Through the command line: exit 1, one line naming the method and the split, no report.
    out = tmp_path / "never"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    status = main(["evaluate", "--method", f"{PACKAGE}.methods:zero_retain", "--profile",
                   "smoke", "--forget-sets", "0", "--out", str(out), *sets])
    err = capsys.readouterr().err
    assert status == 1 and "split.retain_train" in err and "No report" in err, err
    assert not out.exists()


def test_a_model_returned_in_another_dtype_gets_a_one_line_error(package, tmp_path):
    exp = Experiment("smoke", TINY, methods=[f"{PACKAGE}.methods:as_float64"])
    with pytest.raises(outside.OutsideMethodError) as raised:
        exp.unlearned("as_float64", 0)
    message = str(raised.value)
    assert "\n" not in message
    assert re.search(r"method 'as_float64' .*returned '.*' as torch\.float64 on cpu .*given "
                     r"torch\.float32 on cpu", message), message


def test_a_classifier_edit_runs_in_full_only_and_says_why(package, store_dir, monkeypatch):
    monkeypatch.setenv("ILLUSION_CACHE", str(store_dir))
    report = evaluate_method(f"{PACKAGE}.methods:silence_bias", "smoke", ["0"], TINY)
    assert report.meta["variants"] == ["full"] and report.meta["failed"] == {}
    assert set(report.meta["not_applicable"]) == {"classifier_only", "cmf"}
    assert "recomputes from the class means" in report.meta["not_applicable"]["cmf"]
    assert "silence_bias" not in set(report.table3.loc[report.table3["variant"] == "cmf", "model"])
    assert "Not run: cmf" in report.summary()
    out = report.table1[(report.table1["model"] == "silence_bias")
                        & (report.table1["head"] == "output")]
    assert out.set_index("split")["accuracy"]["forget"] == 0.0


def test_a_logit_trick_does_not_pass_the_relearning_test(package, store_dir, monkeypatch):
    """Zero forget rows and -1e4 biases: output forget accuracy 0, the features untouched.
    Fine-tuning from that head gives nothing back; an attack no head edit stops (from a fresh
    head, or a prototype) does, so the report finds the class recoverable, above Retrain,
    under its strongest attack. (TINY's one-epoch models are at chance: this needs a model
    that learnt the class.)"""
    monkeypatch.setenv("ILLUSION_CACHE", str(store_dir))
    report = evaluate_method(f"{PACKAGE}.methods:zero_rows", "smoke", ["0"],
                             {"original.epochs": 8, "retrain.epochs": 8, "attack.steps": 10,
                              "attack.eval_every": 5, "probes.prototype_shots": [1, 5]})
    out = report.table1[(report.table1["model"] == "zero_rows")
                        & (report.table1["head"] == "output")]
    assert out.set_index("split")["accuracy"]["forget"] == 0.0
    auc = report.recovery_auc.set_index(["model", "attack"])["auc"]
    assert auc["zero_rows", "head_only"] == 0.0 and auc["zero_rows", "few_shot"] == 0.0
    best = report.strongest.set_index("model")
    assert best.loc["zero_rows", "attack"] not in ("head_only", "few_shot")
    assert best.loc["zero_rows", "auc"] > best.loc["retrain", "auc"]
    check = report.checks.set_index("check").loc["claim4_strongest_gain"]
    assert check["subject"] == "zero_rows" and check["value"] > 0
    assert set(report.prototype_attack["model"]) == {"original", "retrain", "zero_rows"}
    assert set(report.over_unlearning["perturbation"]) == {"pgd", "gaussian"}
    assert report.similarity["cka"].between(0, 1 + 1e-9).all()
    assert f"zero_rows (forget set 0): {best.loc['zero_rows', 'attack']}" in report.summary()


def test_a_failing_variant_leaves_the_rest_of_the_report(package, store_dir, monkeypatch,
                                                         tmp_path, capsys):
    monkeypatch.setenv("ILLUSION_CACHE", str(store_dir))
    out = tmp_path / "report"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    status = main(["evaluate", "--method", f"{PACKAGE}.methods:bias_then_retain", "--profile",
                   "smoke", "--forget-sets", "0", "--out", str(out), *sets])
    printed = capsys.readouterr()
    assert status == 1
    assert "the cmf variant failed" in printed.err and "bias_then_retain" in printed.err
    report = json.loads((out / "report.json").read_text())
    assert list(report["meta"]["failed"]) == ["cmf"]
    assert report["meta"]["variants"] == ["full", "classifier_only"]
    table3 = pd.read_csv(out / "table3.csv")
    assert "cmf" not in set(table3.loc[table3["model"] == "bias_then_retain", "variant"])
    assert "FAILED: cmf" in (out / "summary.txt").read_text()
