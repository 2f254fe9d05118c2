import pytest
import torch

from illusion import heads
from illusion.config import SettingError
from illusion.experiment import Experiment
from illusion.store import Store

TINY = {"data.train_per_class": 20, "data.test_per_class": 10, "original.epochs": 1,
        "retrain.epochs": 1, "buckets": {"single": [[0]], "multi": []}}


def test_same_seed_gives_identical_numbers(tmp_path):
    a = Experiment("smoke", TINY, store=Store(tmp_path / "a"))
    b = Experiment("smoke", TINY, store=Store(tmp_path / "b"))
    ta, tb = a.evaluate(a.original(), 0), b.evaluate(b.original(), 0)
    assert ta[["head", "split", "accuracy"]].equals(tb[["head", "split", "accuracy"]])
    for (k, va), vb in zip(a.original().model.state_dict().items(), b.original().model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_models_are_stored_and_reused(tmp_path):
    store = Store(tmp_path)
    first = Experiment("smoke", TINY, store=store).retrain(0)
    again = Experiment("smoke", TINY, store=Store(tmp_path)).retrain(0)
    assert first.key == again.key
    assert first.record["seconds"] == again.record["seconds"]  # loaded, not retrained
    assert len(list((tmp_path / "models").glob("*.pt"))) == 1


def test_retrain_never_sees_the_forget_class(tmp_path):
    exp = Experiment("smoke", TINY, store=Store(tmp_path))
    retrain = exp.retrain(0)
    table = exp.evaluate(retrain).set_index(["head", "split"])["accuracy"]
    assert table[("output", "forget")] <= 10.0  # it can hardly predict a class it never saw


def test_retrain_keeps_its_last_epoch_and_cmf_heads_fit_in_cmf_geometry(tmp_path):
    exp = Experiment("smoke", {**TINY, "retrain.epochs": 2}, store=Store(tmp_path))
    history = exp.retrain(0).record["history"]
    assert history["best_epoch"] == 2 and all(v != v for v in history["val_accuracy"])  # NaN
    prepared = exp.cmf_original()
    own, raw = exp.evaluate(prepared, 0), exp.evaluate(prepared, 0, geometry="raw")
    # Same output head, other features for LP and NCC.
    assert own[own["head"] == "output"]["accuracy"].tolist() == raw[raw["head"] == "output"]["accuracy"].tolist()
    z = exp.features(prepared, "model").train
    torch.testing.assert_close(z.norm(dim=1), torch.ones(len(z)))  # ẑ is unit-norm
    assert not torch.allclose(exp.features(prepared, "raw").train.norm(dim=1), torch.ones(len(z)))


@pytest.mark.parametrize("forget_set, message", [
    (12, r"class\(es\) \[12\] out of range; 'mnist5k' has classes 0..9"),
    ("0-1-2-3-4-5-6-7-8-9", "forgets every class of 'mnist5k'"),
    ("-1", "cannot read forget set '-1'"),
])
def test_bad_forget_sets_fail_before_any_training(tmp_path, forget_set, message):
    exp = Experiment("smoke", TINY, store=Store(tmp_path))
    for compute in (exp.retrain, lambda fs: exp.unlearned("rl", fs)):
        with pytest.raises(SettingError, match=message):
            compute(forget_set)
    assert not (tmp_path / "models").exists()  # not even the Original was trained


def test_profile_forget_sets_are_checked_against_the_dataset():
    exp = Experiment("smoke", {**TINY, "buckets": {"single": [[10]]}})
    with pytest.raises(SettingError, match=r"'buckets.single'.*\[10\] out of range.*0..9"):
        exp.data


def test_curve_steps_are_counted_from_the_run_ga_iterating_the_forget_set_only(tmp_path):
    exp = Experiment("smoke", {**TINY, "methods.ga.epochs": 2, "methods.ga.batch_size": 8,
                               "methods.rl.batch_size": 8}, store=Store(tmp_path))
    split = exp.split(0)
    forget, both = len(split.forget_train), len(split.forget_train) + len(split.retain_train)
    steps = {m: exp.unlearned(m, 0).record["steps"] for m in ("ga", "rl", "svd", "prune")}
    assert steps["ga"] == 2 * -(-forget // 8)          # D_f only, two epochs
    assert steps["rl"] == -(-both // 8)                # D_f and D_r, one epoch
    assert steps["svd"] == 1 and steps["prune"] == 0
    curve = exp.unlearning_curve("ga", 0, points=3)  # its count taken from the stored run
    assert sorted(curve["step"].unique()) == list(range(0, steps["ga"] + 1, steps["ga"] // 3))


def test_feature_heads_are_fitted_once_per_features(tmp_path, monkeypatch):
    exp = Experiment("smoke", {**TINY, "buckets": {"single": [[0], [1]], "multi": []}},
                     store=Store(tmp_path))
    fits = []
    fit = heads.LinearProbe.fit
    monkeypatch.setattr(heads.LinearProbe, "fit", lambda self, x, y: fits.append(1) or fit(self, x, y))
    original = exp.evaluate(exp.original(), 0)
    assert not exp.evaluate(exp.original(), 1).equals(original)  # the same fit, other splits
    # Classifier-only, SVD: the Original's backbone, hence its features and its probe.
    for method, variant in [("rl", "classifier_only"), ("svd", "full")]:
        table = exp.evaluate(exp.unlearned(method, 0, variant), 0)
        assert list(table["head"]) == ["output", "output", "lp", "lp", "ncc", "ncc"]
        shared = table["head"] != "output"
        assert table.loc[shared, "accuracy"].tolist() == original.loc[shared, "accuracy"].tolist()
    assert fits == [1]
    fresh = Experiment(exp.profile, store=Store(tmp_path / "fresh"))
    fresh._models = exp._models  # the same models, nothing evaluated yet: fitted afresh
    mine, again = (e.evaluate(exp.unlearned("svd", 0), 0).drop(columns="seconds") for e in (exp, fresh))
    assert mine.equals(again)
    rl = exp.evaluate(exp.unlearned("rl", 0), 0)  # its own backbone: its own probe
    assert len(fits) == 3 and list(rl["head"]) == list(original["head"])
