"""``illusion audit`` and ``illusion evaluate`` with ``--model timm:NAME`` / ``torchvision:NAME``:
checkpoints of the libraries' own models (their own keys, or the store's ``body.*``/``fc.*``)
audited in full on the smoke profile, keys that do not match refused in one line that names
them and the architectures tried, and an evaluation on another architecture than the
profile's."""

import json

import pandas as pd
import pytest
import timm
import torch
import torchvision
from torch.nn import functional as F

from illusion.cli import AuditError, AuditReport, load_checkpoint, main
from illusion.config import get_profile
from illusion.data import load_dataset
from illusion.evaluation import MethodReport
from illusion.models import Adapted

REPORT = sorted(["report.json", *(f"{table}.csv" for table in AuditReport.TABLES)])
VIT = "timm:vit_tiny_patch16_224"
VIT_FLAGS = ["--model", VIT, "--model-option", "depth=2", "--input-size", "32"]


def _sgd_steps(model, data, prepare, steps=4):
    """A few SGD steps on the smoke training images, as a user trains the library's model."""
    torch.manual_seed(0)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        i = torch.randint(len(data.train.y), (64,))
        loss = F.cross_entropy(model(prepare(data.train.x[i])), data.train.y[i])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def grey_to_rgb(x):
    return x.expand(-1, 3, -1, -1)  # torchvision's Grayscale(3)


def to_32(x):
    return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke data (MNIST-5k, 1x28x28), a torchvision ResNet-18 and a two-block timm ViT for
    32-pixel grey images, each trained a few steps and saved with its library's own keys."""
    root = tmp_path_factory.mktemp("models")
    data = load_dataset(get_profile("smoke").data)
    torch.manual_seed(0)
    resnet = _sgd_steps(torchvision.models.resnet18(num_classes=10), data, grey_to_rgb)
    vit = _sgd_steps(timm.create_model("vit_tiny_patch16_224", num_classes=10, in_chans=1,
                                       img_size=32, depth=2), data, to_32)
    paths = {"resnet": root / "resnet18.pt", "vit": root / "vit.pt"}
    torch.save(resnet.state_dict(), paths["resnet"])
    torch.save(vit.state_dict(), paths["vit"])
    return data, {"resnet": resnet, "vit": vit}, paths, root


@pytest.fixture(autouse=True)
def loaded_once(smoke, monkeypatch):
    """The audit reads the smoke data of the fixture instead of reading MNIST-5k again."""
    import illusion.cli

    data, real = smoke[0], illusion.cli.load_dataset
    monkeypatch.setattr(illusion.cli, "load_dataset", lambda cfg, device="cpu": (
        data if cfg == get_profile("smoke").data else real(cfg, device)))


def audit(*args) -> int:
    return main(["audit", "--profile", "smoke", "--dataset", "mnist5k", "--quiet", "--forget", "0",
                 *map(str, args)])


def output_accuracy(model, prepare, data) -> dict[str, float]:
    """The native model's own test accuracy (%) on the forget class 0 and the others."""
    with torch.no_grad():
        correct = model(prepare(data.test.x)).argmax(1) == data.test.y
    forget = data.test.y == 0
    return {"forget": 100 * correct[forget].float().mean().item(),
            "retain": 100 * correct[~forget].float().mean().item()}


def test_audit_of_a_torchvision_resnet(smoke, tmp_path, capsys):
    data, models, paths, _ = smoke
    out = tmp_path / "report"
    assert audit("--model", "torchvision:resnet18", "--checkpoint", paths["resnet"],
                 "--attack-steps", 1, "--out", out) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Audit of {paths['resnet']} (torchvision:resnet18, 10 classes)")
    assert "Strongest attack" in printed and "OU@ε: needs --original" in printed
    assert sorted(p.name for p in out.iterdir()) == REPORT
    meta = json.loads((out / "report.json").read_text())["meta"]
    assert meta["arch"] == "torchvision:resnet18" and meta["checkpoint_kind"] == "state_dict"
    assert meta["width"] is None and meta["model_options"] == {}
    # The audited model is the saved one: its output head scores what the native model does
    # on the same grey images repeated over three channels.
    heads = pd.read_csv(out / "heads.csv")
    output = heads[heads["head"] == "output"].set_index("split")["accuracy"]
    for split, accuracy in output_accuracy(models["resnet"], grey_to_rgb, data).items():
        assert output[split] == pytest.approx(accuracy), split
    assert {"lp", "ncc"} <= set(heads["head"])
    curves = pd.read_csv(out / "relearning.csv")
    assert {"retain_finetune", "few_shot", "head_only", "few_shot_fresh",
            "head_only_fresh"} == set(curves["attack"]) and curves["step"].max() == 1
    assert not pd.read_csv(out / "prototype.csv").empty
    assert not pd.read_csv(out / "strongest.csv").empty


def test_audit_of_a_timm_vit_and_its_store_payload(smoke, tmp_path, capsys):
    """The native state dict and the store's payload of the adapted model (``body.*``,
    ``fc.*``) load into the same model; --model-option and --input-size build it."""
    data, models, paths, _ = smoke
    adapted, kind = load_checkpoint(paths["vit"], VIT, input_size=32, options={"depth": 2})
    assert isinstance(adapted, Adapted) and kind == "state_dict" and adapted.in_channels == 1
    payload = tmp_path / "payload.pt"
    torch.save({"state_dict": adapted.state_dict(), "record": {}, "_key": "x"}, payload)
    x = data.test.x[:16]
    with torch.no_grad():
        assert torch.equal(adapted(x), models["vit"](to_32(x)))
    out = tmp_path / "report"
    assert audit(*VIT_FLAGS, "--checkpoint", paths["vit"], "--retrain", payload,
                 "--original", paths["vit"], "--attack-steps", 1, "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"({VIT}, 32 px, depth=2, 10 classes)" in printed
    assert sorted(p.name for p in out.iterdir()) == REPORT
    meta = json.loads((out / "report.json").read_text())["meta"]
    assert (meta["arch"], meta["input_size"], meta["model_options"]) == (VIT, 32, {"depth": 2})
    heads = pd.read_csv(out / "heads.csv")
    by_model = {m: g.set_index(["head", "split"])["accuracy"] for m, g in heads.groupby("model")}
    assert by_model["checkpoint"].equals(by_model["retrain"])  # the same weights, two layouts
    output = by_model["checkpoint"]["output"]
    for split, accuracy in output_accuracy(models["vit"], to_32, data).items():
        assert output[split] == pytest.approx(accuracy), split
    ou = pd.read_csv(out / "over_unlearning.csv")
    assert set(ou["model"]) == {"checkpoint", "retrain", "original"}
    cka = pd.read_csv(out / "similarity.csv")  # every model is the Original
    assert cka["cka"].tolist() == pytest.approx([1.0] * 6)


def test_native_keys_of_a_sequential_classifier_load(tmp_path):
    """torchvision's MobileNet keeps its classifier in ``classifier.3``; 7 classes are read
    from it, and the adapted model gives the native outputs."""
    torch.manual_seed(0)
    native = torchvision.models.mobilenet_v3_small(num_classes=7).eval()
    torch.save({f"module.{k}": v for k, v in native.state_dict().items()}, tmp_path / "m.pt")
    model, _ = load_checkpoint(tmp_path / "m.pt", "torchvision:mobilenet_v3_small")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert model.fc.out_features == 7 and torch.equal(model(x), native(grey_to_rgb(x)))


def _fails(capsys, *args, out) -> str:
    assert audit(*args, "--out", out) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
    return err


def test_keys_that_do_not_match_are_named_with_the_architectures_tried(smoke, tmp_path, capsys):
    _, _, paths, _ = smoke
    out = tmp_path / "never"
    err = _fails(capsys, "--checkpoint", paths["resnet"], "--model", VIT, out=out)
    assert f"does not match {VIT}" in err and f"tried {VIT})" in err
    assert "missing keys 'cls_token', 'pos_embed'" in err
    assert "unexpected keys 'conv1.weight', 'bn1.weight'" in err
    assert "pass that" in err and "--model torchvision:resnet18" in err
    # Without --model: our three ResNets, and which --model the keys look like.
    err = _fails(capsys, "--checkpoint", paths["resnet"], out=out)
    assert "tried illusion resnet10/resnet18/resnet50" in err
    assert "unexpected keys 'layer1.0.conv1.weight'" in err
    assert "shape mismatches (file vs model) 'conv1.weight (64, 3, 7, 7) vs (64, 3, 3, 3)'" in err
    assert err.rstrip().endswith("look like those of --model torchvision:resnet18: pass that")
    err = _fails(capsys, "--checkpoint", paths["vit"], out=out)
    assert "not a state dict of a supported architecture" in err
    assert "tried illusion resnet10/resnet18/resnet50" in err
    assert f"--model {VIT} --model-option depth=2 --input-size 32: pass that" in err
    # The right model, built for another image size and depth.
    err = _fails(capsys, "--checkpoint", paths["vit"], "--model", VIT, out=out)
    assert "missing keys 'blocks.2.norm1.weight'" in err
    assert "'pos_embed (1, 5, 192) vs (1, 197, 192)'" in err
    assert "a ViT's pos_embed fixes its image size: pass --input-size" in err
    # --retrain and --original are loaded with the same --model.
    err = _fails(capsys, *VIT_FLAGS, "--checkpoint", paths["vit"], "--original", paths["resnet"],
                 out=out)
    assert f"{paths['resnet']} does not match {VIT}" in err


def test_bad_model_flags(smoke, tmp_path, capsys):
    _, _, paths, _ = smoke
    out = tmp_path / "never"
    vit = ["--checkpoint", paths["vit"]]
    cases = [
        (vit + ["--model", "timm:no_such_model"], "unknown timm model 'no_such_model'"),
        (vit + ["--model", "resnet99"], "unknown architecture 'resnet99'; valid choices: "),
        (vit + VIT_FLAGS + ["--model-option", "dept=2"],
         "unexpected keyword argument 'dept'"),
        (vit + VIT_FLAGS + ["--model-option", "num_classes=3"],
         "--model-option num_classes: read from the checkpoint"),
        (vit + VIT_FLAGS + ["--model-option", "depth"], "--model-option 'depth': write KEY=VALUE"),
        (vit + VIT_FLAGS + ["--width", "8"], f"--width applies to our ResNets, not {VIT}"),
        (vit + ["--input-size", "32"], "--input-size applies to a 'timm:NAME' or "
                                       "'torchvision:NAME' --model, not our ResNets"),
        (vit + ["--model", "resnet18", "--model-option", "depth=2"],
         "--model-option depth applies to a 'timm:NAME' or 'torchvision:NAME' --model, not resnet18"),
        (vit + ["--model", VIT, "--arch", "resnet18"], "--arch resnet18 and --model"),
        (vit + ["--model", VIT, "--input-size", "0"], "--input-size must be an integer >= 1"),
        (["--checkpoint", tmp_path / "absent.pt", *VIT_FLAGS], "checkpoint file not found"),
    ]
    for args, message in cases:
        assert message in _fails(capsys, *args, out=out), args
    # The same keys in a config file reach the loader.
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"checkpoint": str(paths["resnet"]), "dataset": "mnist5k",
                                  "forget": 0, "profile": "smoke", "model": VIT,
                                  "input-size": 32, "model_options": {"depth": 2},
                                  "out": str(out)}))
    assert main(["audit", "--config", str(config)]) == 2
    assert f"tried {VIT} --model-option depth=2 --input-size 32)" in capsys.readouterr().err
    config.write_text(json.dumps({"checkpoint": str(paths["vit"]), "dataset": "mnist5k",
                                  "forget": 0, "model": VIT, "model_options": ["depth=2"]}))
    assert main(["audit", "--config", str(config)]) == 2
    assert "model options must be a mapping" in capsys.readouterr().err
    with pytest.raises(AuditError, match="cannot build timm:no_such_model"):
        load_checkpoint(paths["vit"], "timm:no_such_model")


# A shrunken smoke evaluation (tests/test_outside.py's sizes).
TINY = {"data.train_per_class": 30, "data.test_per_class": 10, "original.epochs": 1,
        "retrain.epochs": 1, "attack.steps": 2, "attack.eval_every": 1,
        "heads.lbfgs_max_iter": 20, "probes.prototype_shots": [1, 5]}


def test_evaluate_on_another_architecture(tmp_path, capsys):
    """``illusion evaluate`` trains its own models: --model, --input-size and --model-option
    choose their architecture instead of the profile's (as --set model.* would)."""
    out = tmp_path / "report"
    settings = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    status = main(["evaluate", "--method", "retain_ft", "--profile", "smoke", "--forget-sets",
                   "0", "--out", str(out), *settings, *VIT_FLAGS])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert {p.name for p in out.iterdir()} == {"report.json", "summary.txt",
                                               *(f"{t}.csv" for t in MethodReport.TABLES)}
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "models").glob("*.json")]
    trained = [r["model"] for r in records if r["kind"] in ("original", "retrain")]
    assert len(trained) == 2 and all(m["arch"] == VIT and m["input_size"] == 32
                                     and m["options"] == {"depth": 2} for m in trained)


@pytest.mark.parametrize("args, message", [
    (["--model", "timm:no_such_model"], "unknown timm model 'no_such_model'"),
    (["--model", "resnet99"], "--model: unknown architecture 'resnet99'"),
    (["--input-size", "32"], "--input-size applies to a 'timm:NAME' or 'torchvision:NAME' "
                             "--model, not resnet18 (the profile's)"),
    (VIT_FLAGS + ["--model-option", "dept=2"], "unexpected keyword argument 'dept'"),
    (VIT_FLAGS + ["--model-option", "in_chans=3"], "--model-option in_chans: set by the data"),
    (["--model", VIT, "--set", "model.arch=resnet10"],
     f"--model {VIT} and --set model.arch=resnet10 disagree"),
])
def test_evaluate_refuses_a_bad_model_before_anything_runs(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["evaluate", "--method", "retain_ft", "--profile", "smoke", "--out", str(out),
                 *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "cache").exists()
