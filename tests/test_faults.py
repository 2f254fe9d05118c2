"""Finite or fail: a diverged run raises DivergedError (naming the run, the LR and the step)
and stores nothing; an evaluation refuses a model with NaN or infinite weights."""

import copy
import re

import pytest
import torch

from illusion.attacks import run_attacks
from illusion.config import ForgetSet, MethodConfig, SettingError, TrainConfig
from illusion.data import split_forget
from illusion.experiment import Experiment, Trained
from illusion.models import build_model
from illusion.store import Store
from illusion.train import DivergedError, fit
from illusion.unlearn import Context, unlearn

# A run that blows up is caught by whichever check first sees a non-finite number: the loss of
# the next step, or the weights at the next evaluation or at the end of the run. Which one
# depends on the step at which the weights overflow, and so on the CPU's kernels (AVX2 and
# AVX-512 machines differ here); both name the step and the LR.
def diverged(lr: float) -> str:
    lr = re.escape(f"{lr:g}")
    return (rf"diverged: (the loss became (nan|inf) at step \d+ \(lr {lr}\)|(at step \d+|after "
            rf"\d+ step\(s\)) \(lr {lr}\) the model has NaN or infinite values)")


TINY = {"data.train_per_class": 20, "data.test_per_class": 10, "original.epochs": 1,
        "buckets": {"single": [[0]], "multi": []}}


def _model(data):
    torch.manual_seed(0)
    return build_model("resnet18", data.num_classes, data.in_channels, width=4)


def _broken(model):
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.fc.weight.fill_(float("nan"))
    return broken


def test_a_diverged_training_run_raises_naming_lr_and_step(synthetic):
    recipe = TrainConfig(epochs=2, lr=1e6, batch_size=32, warmup_epochs=0, patience=None,
                         crop_padding=0, flip=False)
    with pytest.raises(DivergedError, match=r"original diverged: the loss became nan at step \d+ "
                                            r"\(lr 1e\+06\)"):
        fit(_model(synthetic), synthetic.train, synthetic.val, recipe, seed=0, desc="original")


def test_a_diverged_unlearning_run_raises(synthetic):
    split = split_forget(synthetic, ForgetSet((1,)))
    with pytest.raises(DivergedError, match=r"the loss became nan at step \d+ \(lr 1e\+06\)"):
        unlearn("rl", _model(synthetic), split, MethodConfig(2, 1e6, 32), Context(seed=0))


def test_a_gradient_method_with_no_epochs_refuses_to_return_the_unchanged_model(synthetic):
    split = split_forget(synthetic, ForgetSet((1,)))
    with pytest.raises(SettingError, match="took no optimiser step with epochs 0.*epochs >= 1"):
        unlearn("rl", _model(synthetic), split, MethodConfig(0, 1e-2, 32), Context(seed=0))


@pytest.mark.parametrize("attack, lr", [("retain_finetune", 1e6), ("head_only", 1e37)])
def test_a_diverged_attack_raises(synthetic, attack, lr):
    split = split_forget(synthetic, ForgetSet((1,)))
    with pytest.raises(DivergedError, match=f"relearning attack '{attack}' "
                                            + diverged(lr)):
        run_attacks(_model(synthetic), split, (attack,), steps=10, lr=lr, batch_size=32,
                    eval_every=5, train=synthetic.train)


def test_a_diverged_method_is_reported_and_nothing_is_stored(tmp_path):
    exp = Experiment("smoke", {**TINY, "methods.rl.lr": 1e6}, store=Store(tmp_path))
    original = exp.original()
    with pytest.raises(DivergedError, match=r"rl \(full, forget set 1-2\): (the run )?"
                                            + diverged(1e6) + ".*Nothing was stored"):
        exp.unlearned("rl", "1-2")
    assert [p.stem for p in (tmp_path / "models").glob("*.pt")] == [original.key]
    with pytest.raises(SettingError, match=r"rl \(full, forget set 0\): the method took no "
                                           r"optimiser step with epochs 0"):
        Experiment("smoke", {**TINY, "methods.rl.epochs": 0}, store=Store(tmp_path)).unlearned("rl", 0)
    assert [p.stem for p in (tmp_path / "models").glob("*.pt")] == [original.key]


def test_evaluations_refuse_a_model_with_non_finite_weights(tmp_path):
    exp = Experiment("smoke", TINY, store=Store(tmp_path))
    broken = Trained("rl", "full", ForgetSet((0,)), _broken(exp.original().model), {"kind": "x"})
    evaluations = [exp.features, exp.evaluate, exp.metrics, exp.layerwise, exp.relearning]
    for evaluation in evaluations:
        with pytest.raises(DivergedError, match=r"model rl \(full, forget set 0\) has NaN or "
                                                r"infinite values in fc.weight"):
            evaluation(broken)
    assert not (tmp_path / "evaluations").exists()
