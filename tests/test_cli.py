"""``illusion audit``: one real audit on the smoke profile, checked against the library's own
evaluation, and every bad-input path (exit status 2, a message naming the problem)."""

import json
import math

import pandas as pd
import pytest
import torch

from illusion.cli import AUDIT_METRICS, AuditError, load_checkpoint, main
from illusion.experiment import Experiment
from illusion.models import build_model
from illusion.store import Store

# torch.jit.script/save announce their deprecation; the TorchScript path is still supported.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A smoke Original trained through Experiment (one epoch), saved three ways, plus a
    width-2 untrained model as the reference and a 5-class model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread avoids contention on a shared CPU
    root = tmp_path_factory.mktemp("audit")
    exp = Experiment("smoke", overrides={"original.epochs": 1}, store=Store(root / "store"))
    original = exp.original()
    paths = {"payload": exp.store.path("models", exp.original_spec(), ".pt"),
             "state_dict": root / "original.pt", "script": root / "original_ts.pt",
             "reference": root / "reference.pt", "five": root / "five.pt"}
    torch.save(original.model.state_dict(), paths["state_dict"])
    torch.jit.save(torch.jit.script(original.model), paths["script"])
    torch.manual_seed(0)
    torch.save(build_model("resnet18", 10, 1, 2).state_dict(), paths["reference"])
    torch.save(build_model("resnet18", 5, 1, 2).state_dict(), paths["five"])
    yield exp, original, paths, root
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def loaded_once(files, monkeypatch):
    """Reuse the Experiment's smoke data (the audit resolves the same DataConfig) instead of
    reading MNIST-5k again in every test; other configurations load as usual."""
    import illusion.cli

    exp, real = files[0], illusion.cli.load_dataset
    monkeypatch.setattr(illusion.cli, "load_dataset", lambda cfg, device="cpu": (
        exp.data if cfg == exp.profile.data else real(cfg, device)))


def audit(*args) -> int:
    return main(["audit", "--profile", "smoke", "--dataset", "mnist5k", "--quiet", *map(str, args)])


FINE_TUNING = ["retain_finetune", "few_shot", "head_only"]  # from the model's own head
FRESH = ["few_shot_fresh", "head_only_fresh"]                # from a reset head


def test_audit_end_to_end_matches_the_library(files, capsys):
    exp, original, paths, root = files
    out = root / "report"
    assert audit("--checkpoint", paths["payload"], "--retrain", paths["reference"],
                 "--original", paths["state_dict"], "--forget", 0, "--out", out,
                 "--attack-steps", 4) == 0
    printed = capsys.readouterr().out
    assert "Accuracy (%)" in printed and "head_only" in printed and "mia_efficacy" in printed
    assert "few_shot_fresh" in printed and "head_only_fresh" in printed
    assert "prototype (cosine, α=1)" in printed and "Strongest attack" in printed
    assert "OU@ε" in printed and "needs --original" not in printed and "CKA" in printed
    names = ["report.json", "heads.csv", "geometry.csv", "alignment.csv", "relearning.csv",
             "prototype.csv", "recovery.csv", "strongest.csv", "over_unlearning.csv",
             "similarity.csv"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["width"] == 4 and report["meta"]["checkpoint_kind"] == "state_dict"
    assert report["meta"]["original"] == str(paths["state_dict"])
    assert report["meta"]["probes"]["prototype_shots"] == list(exp.profile.probes.prototype_shots)

    # Heads of the audited checkpoint equal Experiment.evaluate on the same model and data.
    heads = pd.read_csv(out / "heads.csv")
    mine = heads[heads["model"] == "checkpoint"].set_index(["head", "split"])["accuracy"]
    library = exp.evaluate(original, 0).set_index(["head", "split"])["accuracy"]
    for key in library.index:
        assert mine[key] == pytest.approx(library[key]), key
    assert set(heads["model"]) == {"checkpoint", "retrain"}  # the Original is only a reference

    # Every attack of the library, the fresh-head ones included; step 0 of an attack from the
    # model's own head is the model's own output accuracy.
    curves = pd.read_csv(out / "relearning.csv")
    assert sorted(curves["attack"].unique()) == sorted(FINE_TUNING + FRESH)
    for model, group in curves[(curves["step"] == 0) & curves["attack"].isin(FINE_TUNING)
                               ].groupby("model"):
        output = heads[(heads["model"] == model) & (heads["head"] == "output")]
        output = output.set_index("split")["accuracy"]
        assert group["forget_accuracy"].tolist() == pytest.approx([output["forget"]] * 3)
        assert group["retain_accuracy"].tolist() == pytest.approx([output["retain"]] * 3)
    assert curves["step"].max() == 4

    geometry = pd.read_csv(out / "geometry.csv")
    assert {"nc1", "nc3", "nc4", "cos_forget", "cos_retain", "mia_efficacy"} <= set(geometry["metric"])
    mia = geometry[geometry["metric"] == "mia_efficacy"]["value"]
    assert ((mia >= 0) & (mia <= 100)).all()
    # MIA and alignment of the audited checkpoint equal Experiment.metrics on the same model.
    mine = geometry[geometry["model"] == "checkpoint"].set_index("metric")["value"]
    library = exp.metrics(original, 0).set_index("metric")["value"]
    for metric, name in AUDIT_METRICS.items():
        assert mine[name] == pytest.approx(library[metric]), metric
    alignment = pd.read_csv(out / "alignment.csv")
    assert len(alignment) == 2 * 10 and alignment["forget"].sum() == 2  # class 0, both models

    # The prototype attack with the profile's budgets, and its recovery beside the AUCs.
    probes = exp.profile.probes
    prototype = pd.read_csv(out / "prototype.csv")
    configurations = 2 * len(probes.prototype_alphas)  # cosine and l2
    assert len(prototype) == 2 * configurations * len(probes.prototype_shots)
    assert set(prototype["shots"]) == set(probes.prototype_shots)
    recovery = pd.read_csv(out / "recovery.csv")
    assert list(recovery.columns) == ["model", "attack", "auc", "keeps_retain"]
    assert len(recovery) == 2 * (5 + configurations)
    assert recovery[recovery["attack"].isin(FINE_TUNING + FRESH)]["keeps_retain"].all()
    best = pd.read_csv(out / "strongest.csv")
    assert list(best.columns) == ["model", "attack", "auc"] and len(best) == 2
    for model, attack, auc in best.itertuples(index=False):
        mine = recovery[(recovery["model"] == model) & recovery["keeps_retain"]]
        assert attack in set(mine["attack"]) and auc == pytest.approx(mine["auc"].max())

    # OU@ε of every model, the Original's own included; finite, and at most ln 2.
    ou = pd.read_csv(out / "over_unlearning.csv")
    assert sorted(zip(ou["model"], ou["perturbation"])) == sorted(
        (m, k) for m in ("checkpoint", "retrain", "original") for k in ("pgd", "gaussian"))
    assert ou["value"].map(math.isfinite).all() and (ou["value"] >= 0).all()
    assert (ou["value"] <= math.log(2) + 1e-9).all()
    values = ou.set_index(["model", "perturbation"])["value"]
    for kind in ("pgd", "gaussian"):  # the checkpoint is the Original, saved another way
        assert values[("checkpoint", kind)] == pytest.approx(values[("original", kind)])

    # CKA with every reference given; the checkpoint is the Original, so 1 with it.
    cka = pd.read_csv(out / "similarity.csv")
    assert sorted(zip(cka["model"], cka["reference"], cka["split"])) == sorted(
        [(m, r, s) for m, r in (("checkpoint", "original"), ("checkpoint", "retrain"),
                                ("retrain", "original")) for s in ("retain", "forget")])
    assert ((cka["cka"] >= -1e-9) & (cka["cka"] <= 1 + 1e-9)).all()
    itself = cka[(cka["model"] == "checkpoint") & (cka["reference"] == "original")]
    assert itself["cka"].tolist() == pytest.approx([1.0, 1.0])


def test_audit_measures_as_the_book_does(files):
    """A stored model audited on its own profile, with no option, gives its book rows
    exactly: the heads of Table 1, the relearning curves with the profile's budget, and
    chapter 7's prototype attack and OU@ε with the profile's probes."""
    from illusion.cli import audit as run_audit
    exp, original, paths, root = files
    report = run_audit(paths["payload"], "mnist5k", 0, profile="smoke", progress=False,
                       original=paths["payload"])
    book = exp.evaluate(original, 0)
    keys = ["head", "split", "accuracy"]
    assert report.heads[keys].reset_index(drop=True).equals(book[keys].reset_index(drop=True))
    budget = exp.profile.attack
    assert (report.meta["attack_steps"], report.meta["attack_lr"], report.meta["shots"]) == (
        budget.steps, budget.lr, budget.shots)
    columns = ["attack", "step", "forget_accuracy", "retain_accuracy"]
    for attacks in (tuple(FINE_TUNING), ("head_only_fresh",)):  # as chapters 6 and 7 run them
        curves = exp.relearning(original, 0, attacks=attacks)[columns].reset_index(drop=True)
        mine = report.relearning[report.relearning["attack"].isin(attacks)]
        assert mine[columns].reset_index(drop=True).equals(curves), attacks
    columns = ["form", "alpha", "shots", "forget_accuracy", "retain_accuracy", "retain_before"]
    assert report.prototype[columns].reset_index(drop=True).equals(
        exp.prototype_attack(original, 0)[columns].reset_index(drop=True))
    ou = report.over_unlearning.set_index(["model", "perturbation"])["value"]
    for kind, value in exp.over_unlearning(original, 0).set_index("perturbation")["value"].items():
        assert ou[("checkpoint", kind)] == pytest.approx(value, abs=1e-12)
        assert ou[("original", kind)] == pytest.approx(value, abs=1e-12)
    assert report.meta["original"] == str(paths["payload"])


def test_a_classifier_edit_does_not_fool_the_audit(tmp_path, capsys):
    """Zeroed forget rows and biases of -1e4: the output forgets class 0 and no fine-tuning
    from that head gives it back, but the prototype or fresh-head attacks do. The model is a
    smoke Original trained on the synthetic data the audit reads (no crop: a 2-pixel shift
    scrambles its 12x12 patterns), where a few seconds make one that knows its classes."""
    exp = Experiment("smoke", overrides={"data.name": "synthetic", "original.epochs": 8,
                                         "original.lr": 0.1, "original.crop_padding": 0},
                     store=Store(tmp_path / "store"))
    state = {k: v.clone() for k, v in exp.original().model.state_dict().items()}
    state["fc.weight"][0] = 0
    state["fc.bias"][0] = -1e4
    torch.save(state, tmp_path / "edited.pt")
    out = tmp_path / "report"
    assert main(["audit", "--profile", "smoke", "--dataset", "synthetic", "--quiet",
                 "--checkpoint", str(tmp_path / "edited.pt"), "--forget", "0",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "OU@ε: needs --original" in printed and "CKA: needs --original or --retrain" in printed
    heads = pd.read_csv(out / "heads.csv").set_index(["head", "split"])["accuracy"]
    assert heads[("output", "forget")] == 0 and heads[("ncc", "forget")] > 0
    recovery = pd.read_csv(out / "recovery.csv").set_index("attack")["auc"]
    assert recovery[FINE_TUNING].max() == 0  # a -1e4 bias no few SGD steps undo
    best = pd.read_csv(out / "strongest.csv")
    assert len(best) == 1 and best["attack"][0] in recovery.index
    assert best["attack"][0] in FRESH or best["attack"][0].startswith("prototype")
    assert best["auc"][0] > 0 and f"checkpoint: {best['attack'][0]}" in printed
    for table in ("over_unlearning", "similarity"):  # no reference given: written, empty
        assert pd.read_csv(out / f"{table}.csv").empty
    assert json.loads((out / "report.json").read_text())["meta"]["original"] is None


def test_torchscript_and_config_file(files, tmp_path, capsys):
    exp, original, paths, root = files
    model, kind = load_checkpoint(paths["script"])
    assert kind == "torchscript"
    x = exp.data.test.x[:8]
    with torch.no_grad():
        assert torch.allclose(model.fc(model.features(x)), original.model(x), atol=1e-5)
    # The same keys in a JSON file; relative paths are relative to the file.
    (tmp_path / "ckpt.pt").write_bytes(paths["script"].read_bytes())
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"checkpoint": "ckpt.pt", "dataset": "mnist5k", "forget": "0-3",
                                  "profile": "smoke", "out": "result", "attack-steps": 0,
                                  "original": "ckpt.pt"}))
    assert main(["audit", "--config", str(config), "--quiet"]) == 0
    report = json.loads((tmp_path / "result" / "report.json").read_text())
    assert report["meta"]["checkpoint_kind"] == "torchscript"
    assert report["meta"]["forget_set"] == "0-3" and report["relearning"] == []
    assert report["meta"]["original"] == str(tmp_path / "ckpt.pt")
    # Training-free, the prototype attack runs without a fine-tuning budget; TorchScript
    # models give OU@ε (the same for the checkpoint and the Original: the same file) and CKA.
    assert report["prototype"] and {r["model"] for r in report["recovery"]} == {"checkpoint"}
    assert {r["model"] for r in report["strongest"]} <= {"checkpoint"}
    assert "Strongest attack (recovery, %): checkpoint: " in capsys.readouterr().out
    ou = pd.DataFrame(report["over_unlearning"]).pivot(index="perturbation", columns="model",
                                                       values="value")
    assert ou["checkpoint"].tolist() == pytest.approx(ou["original"].tolist())
    assert [r["cka"] for r in report["similarity"]] == pytest.approx([1.0, 1.0])
    from_script = pd.DataFrame(report["heads"]).set_index(["head", "split"])["accuracy"]
    assert from_script[("output", "retain")] == pytest.approx(
        exp.evaluate(original, "0-3").set_index(["head", "split"])["accuracy"][("output", "retain")])


def _fails(capsys, *args, argv=None) -> str:
    code = main(argv) if argv is not None else audit(*args)
    assert code == 2
    return capsys.readouterr().err


def test_missing_and_unreadable_files(files, tmp_path, capsys):
    _, _, paths, _ = files
    err = _fails(capsys, "--checkpoint", tmp_path / "nope.pt", "--forget", 0)
    assert "checkpoint file not found" in err and "nope.pt" in err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    err = _fails(capsys, "--checkpoint", garbage, "--forget", 0)
    assert "cannot read checkpoint" in err and "state dict" in err and "TorchScript" in err
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_a_dict)
    assert "not a state dict" in _fails(capsys, "--checkpoint", not_a_dict, "--forget", 0)
    err = _fails(capsys, argv=["audit", "--config", str(tmp_path / "none.json")])
    assert "config file not found" in err


def test_wrong_architecture_names_the_keys(files, tmp_path, capsys):
    _, original, paths, _ = files
    # torchvision-style names: 'layer1.0.conv1.weight' instead of 'stages.0.0.conv1.weight'.
    renamed = {k.replace("stages.0", "layer1"): v for k, v in original.model.state_dict().items()}
    torch.save(renamed, tmp_path / "renamed.pt")
    err = _fails(capsys, "--checkpoint", tmp_path / "renamed.pt", "--forget", 0)
    assert "does not match architecture 'resnet18'" in err
    assert "missing keys 'stages.0.0.conv1.weight'" in err and "unexpected keys 'layer1" in err
    assert "['resnet10', 'resnet18', 'resnet50']" in err
    err = _fails(capsys, "--checkpoint", paths["state_dict"], "--arch", "resnet50", "--forget", 0)
    assert "does not match architecture 'resnet50'" in err and "conv3" in err
    err = _fails(capsys, "--checkpoint", paths["state_dict"], "--width", 8, "--forget", 0)
    assert "width 8" in err and "4 output channels" in err
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "linear.pt")
    assert "not a state dict of a supported architecture" in _fails(
        capsys, "--checkpoint", tmp_path / "linear.pt", "--forget", 0)


def test_class_count_dataset_and_forget_range(files, tmp_path, capsys):
    _, _, paths, _ = files
    err = _fails(capsys, "--checkpoint", paths["five"], "--forget", 0)
    assert "5 output classes" in err and "'mnist5k' has 10" in err
    err = _fails(capsys, "--checkpoint", paths["reference"], "--forget", 12)
    assert "out of range" in err and "0..9" in err
    err = _fails(capsys, "--checkpoint", paths["reference"], "--forget", "six")
    assert "cannot read forget set" in err
    # Unknown dataset on the command line (argparse lists the choices) and in a config file.
    err = _fails(capsys, argv=["audit", "--checkpoint", str(paths["reference"]), "--dataset",
                               "imagenet", "--forget", "0"])
    assert "invalid choice: 'imagenet'" in err and "fashion-mnist" in err
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"checkpoint": str(paths["reference"]), "dataset": "imagenet",
                                  "forget": 0}))
    err = _fails(capsys, argv=["audit", "--config", str(config)])
    assert "unknown dataset 'imagenet'" in err and "mnist5k" in err
    config.write_text(json.dumps({"checkpoint": str(paths["reference"]), "data": "mnist5k"}))
    err = _fails(capsys, argv=["audit", "--config", str(config)])
    assert "unknown key 'data'" in err and "dataset" in err
    err = _fails(capsys, argv=["audit", "--checkpoint", str(paths["reference"])])
    assert "missing --dataset, --forget" in err


def test_load_checkpoint_raises_audit_error(tmp_path):
    with pytest.raises(AuditError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    assert issubclass(AuditError, ValueError)


def test_cmf_state_dict_loads_with_its_head(files, tmp_path):
    cmf = pytest.importorskip("illusion.cmf")
    exp, original, _, _ = files
    model = cmf.attach(original.model, exp.data.train)
    torch.save(model.state_dict(), tmp_path / "cmf.pt")
    loaded, kind = load_checkpoint(tmp_path / "cmf.pt")
    assert kind == "state_dict" and cmf.head_is_cmf(loaded)
    x = exp.data.test.x[:8]
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)


def test_bad_arguments_fail_before_any_computation(files, tmp_path, capsys, monkeypatch):
    import illusion.heads

    import illusion.over_unlearning

    def no_computation(*args, **kwargs):
        raise AssertionError("the audit computed before checking its arguments")
    monkeypatch.setattr(illusion.heads, "features", no_computation)
    monkeypatch.setattr(illusion.over_unlearning, "perturb", no_computation)
    _, original, paths, _ = files
    existing = tmp_path / "report.txt"
    existing.write_text("keep me")
    text = tmp_path / "notes.pt"
    text.write_text("hello, I am a text file")
    broken = {k: v.clone() for k, v in original.model.state_dict().items()}
    broken["fc.weight"].fill_(float("nan"))
    torch.save(broken, tmp_path / "nan.pt")
    good = ["--checkpoint", paths["reference"], "--forget", 0]
    cases = [
        (good + ["--attack-lr", "nan"], "--attack-lr must be a finite number > 0; got nan"),
        (good + ["--attack-lr", "-0.1"], "--attack-lr must be a finite number > 0; got -0.1"),
        (good + ["--out", existing], f"--out {existing}: {existing} is a file, not a folder"),
        (good + ["--seed", "-3"], r"--seed must be an integer in [0, 2**32); got -3"),
        (["--checkpoint", tmp_path, "--forget", 0], f"checkpoint {tmp_path} is a folder"),
        (["--checkpoint", text, "--forget", 0],
         "not a file written by torch.save: it starts with b'hello, I am a te'"),
        (["--checkpoint", tmp_path / "nan.pt", "--forget", 0],
         f"checkpoint {tmp_path / 'nan.pt'} has NaN or infinite values in fc.weight"),
        (["--checkpoint", paths["reference"], "--forget", "0-1-2-3-4-5-6-7-8-9"],
         "forget set 0-1-2-3-4-5-6-7-8-9 forgets every class of dataset 'mnist5k'"),
        (["--checkpoint", paths["reference"], "--forget", "3-"], "cannot read forget set '3-'"),
        (good + ["--original", tmp_path / "absent.pt"],
         f"checkpoint file not found: {tmp_path / 'absent.pt'}"),
        (good + ["--original", text], "not a file written by torch.save"),
        (good + ["--original", tmp_path / "nan.pt"],
         f"checkpoint {tmp_path / 'nan.pt'} has NaN or infinite values in fc.weight"),
        (good + ["--original", paths["five"]], f"{paths['five']} has 5 output classes"),
    ]
    for args, message in cases:
        err = _fails(capsys, *args)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert existing.read_text() == "keep me"


def test_a_diverged_attack_exits_2(files, tmp_path, capsys):
    _, _, paths, _ = files
    err = _fails(capsys, "--checkpoint", paths["state_dict"], "--forget", 0, "--attack-steps", 2,
                 "--attack-lr", 1e30, "--out", tmp_path / "report")
    assert "relearning attack 'retain_finetune' diverged" in err and "lr 1e+30" in err
