"""Unlearning methods on a tiny ResNet and a tiny separable synthetic data set: every method
runs through the registry and moves the model the way it should."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from illusion.config import DataConfig, ForgetSet, MethodConfig, TrainConfig
from illusion.data import load_dataset, split_forget
from illusion.models import build_model
from illusion.train import accuracy, fit
import illusion.unlearn as registry
from illusion.config import SettingError
from illusion.unlearn import METHODS, Context, get_method, register, traits, unlearn
from illusion.unlearn import salun as salun_module
from illusion.unlearn.unsir import error_maximising_noise

K, FORGET = 4, 1

# Small settings for every method (tiny data, batches of 32).
SETTINGS = {
    "retain_ft": MethodConfig(1, 1e-2, 32),
    "rl": MethodConfig(2, 1e-2, 32),
    "ga": MethodConfig(1, 1e-2, 32),
    "l1_sparse": MethodConfig(1, 1e-2, 32, {"alpha": 0.05}),
    "neggrad_plus": MethodConfig(2, 2e-2, 32, {"forget_clip": 1.0}),
    "salun": MethodConfig(2, 1e-2, 32, {"sparsity": 0.5}),
    "scrub": MethodConfig(2, 5e-3, 32, {"temperature": 4.0, "max_epochs": 1, "alpha": 0.001,
                                         "gamma": 0.99, "lr_decay_epochs": [1]}),
    "unsir": MethodConfig(2, 1e-3, 32, {"noise_lr": 0.1, "noise_steps": 4,
                                         "retain_per_class": 20, "noise_repeats": 2}),
    # The paper's Tiny-ImageNet alphas; a retain batch of 60 (20 per retain class).
    "svd": MethodConfig(0, 0.0, 60, {"alpha_r": 30.0, "alpha_f": 10.0}),
}
EXPECTED = {"ga", "l1_sparse", "neggrad_plus", "retain_ft", "rl", "salun", "scrub", "svd", "unsir"}


@pytest.fixture(scope="module")
def trained():
    data = load_dataset(DataConfig("synthetic", train_per_class=40, test_per_class=20,
                                   num_classes=K, noise=1.0))
    torch.manual_seed(0)  # the result must not depend on which tests ran before
    model = build_model("resnet18", K, 1, width=4)
    recipe = TrainConfig(epochs=4, lr=0.05, batch_size=32, warmup_epochs=1, patience=None,
                         crop_padding=0, flip=False)
    model, _ = fit(model, data.train, data.val, recipe, seed=0, desc="tiny")
    model.zero_grad(set_to_none=True)  # so tests can see whether a method writes gradients
    split = split_forget(data, ForgetSet((FORGET,)))
    # The starting point the tests rely on: the forget class well learnt (chance is 25%; 16 of
    # its 20 test images; the exact count moves by an image with the layout and thread count).
    assert accuracy(model, split.forget_test) >= 80
    return model.eval(), split


def run(name, model, split, cfg=None, ctx=None):
    unlearned, seconds = unlearn(name, model, split, cfg or SETTINGS[name], ctx or Context(seed=0))
    assert seconds >= 0
    return unlearned


@torch.no_grad()
def forget_ce(model, split) -> float:
    model.eval()
    return nn.functional.cross_entropy(model(split.forget_train.x), split.forget_train.y).item()


def parameters_differ(a: nn.Module, b: nn.Module) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def l1(model: nn.Module) -> float:
    return sum(p.abs().sum().item() for p in model.parameters())


# ---------------------------------------------------------------------------------- registry


def test_registry_lists_every_method_and_rejects_unknown_names(trained):
    assert EXPECTED <= set(METHODS)
    with pytest.raises(ValueError, match="valid choices") as error:
        get_method("gradient_descent_please")
    assert "gradient_descent_please" in str(error.value) and "'salun'" in str(error.value)
    model, split = trained
    with pytest.raises(ValueError, match="unknown unlearning method"):
        unlearn("nope", model, split, MethodConfig())


def test_method_lists_are_derived_from_the_traits_declared_at_registration():
    from illusion import classifier_only
    assert registry.BASELINES == ("retain_ft", "rl", "salun", "neggrad_plus", "scrub", "unsir",
                                  "svd", "ga", "l1_sparse")  # the book's order
    assert registry.CLASSIFIER_EDITS == ("svd", "prune")
    assert classifier_only.IMAGE_ONLY == {"unsir", "spotter"}
    assert registry.having("defence") == ("spotter",) and "spotter" not in registry.BASELINES
    assert traits("svd").edits_classifier and traits("svd").baseline
    assert not traits("prune").baseline and traits("unsir").image_only
    assert registry.OPTIONS["salun"] == ("sparsity",) and registry.OPTIONS["rl"] == ()
    with pytest.raises(ValueError, match="unknown method trait 'nope'.*baseline"):
        registry.having("nope")


@pytest.fixture
def newcomer():
    """A method registered under a temporary name, with every trait, removed afterwards."""
    @register("_newcomer", baseline=True, edits_classifier=True, image_only=True,
              options=("strength",))
    def newcomer(model, split, cfg, ctx):
        return model
    yield newcomer
    del METHODS["_newcomer"]


def test_a_newly_registered_method_joins_every_derived_list(newcomer):
    from illusion import classifier_only
    assert registry.BASELINES[-1] == "_newcomer" and "_newcomer" in registry.CLASSIFIER_EDITS
    assert "_newcomer" in classifier_only.IMAGE_ONLY
    assert newcomer.traits == traits("_newcomer") and registry.OPTIONS["_newcomer"] == ("strength",)
    registry.check_options("_newcomer", MethodConfig(options={"strength": 1, "clip": 1.0}), "m")
    with pytest.raises(SettingError, match="unknown option.*'strenght'.*valid choices.*'strength'"):
        registry.check_options("_newcomer", MethodConfig(options={"strenght": 1}), "m")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_method_runs_calls_hooks_and_leaves_the_input_model_alone(trained, name):
    model, split = trained
    before = copy.deepcopy(model.state_dict())
    calls = {"start": 0, "end": 0, "step": 0}
    ctx = Context(seed=0,
                  on_epoch_start=lambda m, i: calls.__setitem__("start", calls["start"] + 1),
                  on_epoch_end=lambda m, i: calls.__setitem__("end", calls["end"] + 1),
                  on_step=lambda m, i: calls.__setitem__("step", calls["step"] + 1))
    unlearned = run(name, model, split, ctx=ctx)
    assert parameters_differ(unlearned, model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    epochs = max(1, SETTINGS[name].epochs)
    if name == "unsir":  # its loop runs the impair epochs, then as many repair epochs
        epochs *= 2
    assert calls["start"] == calls["end"] == epochs and calls["step"] >= epochs
    assert accuracy(unlearned, split.retain_test) >= 60  # no method wrecks the retain classes


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_methods_train_only_what_the_context_says(trained, name):
    # The classifier-only setting: only model.fc trains, BatchNorm in eval mode.
    model, split = trained
    ctx = Context(seed=0, parameters=lambda m: list(m.fc.parameters()),
                  train_mode=lambda m: m.eval())
    unlearned = run(name, model, split, ctx=ctx)
    new, old = unlearned.state_dict(), model.state_dict()
    backbone = [k for k in old if not k.startswith("fc.")]
    assert all(torch.equal(new[k], old[k]) for k in backbone)
    assert not torch.equal(new["fc.weight"], old["fc.weight"])


# ------------------------------------------------------------------------ directions of change


@pytest.mark.parametrize("name", ["ga", "neggrad_plus"])
def test_ascent_methods_raise_the_forget_loss(trained, name):
    model, split = trained
    assert forget_ce(run(name, model, split), split) > 2 * forget_ce(model, split)


def test_random_label_drops_output_forget_accuracy(trained):
    model, split = trained
    unlearned = run("rl", model, split)
    assert accuracy(unlearned, split.forget_test) <= 20
    assert accuracy(unlearned, split.retain_test) >= accuracy(model, split.retain_test) - 10


def test_svd_lowers_the_forget_class_and_keeps_retain_accuracy(trained):
    model, split = trained

    @torch.no_grad()
    def forget_logit(m):
        return m.eval()(split.forget_test.x)[:, FORGET].mean().item()

    unlearned = run("svd", model, split)
    assert accuracy(unlearned, split.retain_test) >= accuracy(model, split.retain_test) - 5
    assert accuracy(unlearned, split.forget_test) <= accuracy(model, split.forget_test) - 30
    assert forget_logit(unlearned) < forget_logit(model) - 1
    # Only the last layer's weight changes; the bias and the backbone stay.
    new, old = unlearned.state_dict(), model.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in old if k != "fc.weight")


def test_svd_refuses_a_context_that_does_not_train_the_classifier(trained):
    model, split = trained
    ctx = Context(seed=0, parameters=lambda m: [p for n, p in m.named_parameters()
                                                if not n.startswith("fc.")])
    with pytest.raises(ValueError, match="fc.weight"):
        run("svd", model, split, ctx=ctx)


def test_l1_sparse_shrinks_the_l1_norm_more_than_retain_finetuning(trained):
    model, split = trained
    settings = SETTINGS["l1_sparse"]
    plain = run("retain_ft", model, split, MethodConfig(settings.epochs, settings.lr,
                                                        settings.batch_size))
    sparse = run("l1_sparse", model, split)
    assert l1(sparse) < l1(plain) - 0.01 * l1(model)


def test_scrub_moves_the_student_away_from_the_teacher_on_the_forget_set(trained):
    from illusion.unlearn.scrub import distill_kl

    model, split = trained
    model.eval()

    def forget_kl(max_epochs: int) -> float:
        cfg = MethodConfig(2, 5e-3, 16, {"temperature": 4.0, "max_epochs": max_epochs,
                                         "alpha": 0.001, "gamma": 0.99, "lr_decay_epochs": []})
        student = run("scrub", model, split, cfg).eval()
        with torch.no_grad():
            return distill_kl(student(split.forget_train.x), model(split.forget_train.x), 4.0).item()
    # The max-steps on D_f are what push the student away from the teacher there.
    assert forget_kl(2) > 1.5 * forget_kl(0)


def test_unsir_noise_maximises_the_forget_class_error(trained):
    model, split = trained
    shape = (16, *split.forget_train.x.shape[1:])
    start = error_maximising_noise(model, shape, FORGET, 0, 0.1, torch.Generator().manual_seed(0))
    learned = error_maximising_noise(model, shape, FORGET, 20, 0.1,
                                     torch.Generator().manual_seed(0))
    target = torch.full((16,), FORGET)
    with torch.no_grad():
        ce = lambda x: nn.functional.cross_entropy(model.eval()(x), target).item()  # noqa: E731
        assert ce(learned) > ce(start) + 1
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------------------------- SalUn


def test_salun_mask_keeps_the_largest_forget_gradients_and_leaves_the_model_alone(trained):
    model, split = trained
    model = copy.deepcopy(model).train()
    before = copy.deepcopy(model.state_dict())
    for sparsity in (0.5, 0.2):
        mask = salun_module.saliency_mask(model, split, sparsity, Context(seed=0), batch_size=16)
        # The model is untouched: weights, BN statistics, gradients, mode.
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        assert all(p.grad is None for p in model.parameters()) and model.training
        # Brute force: full-batch CE gradient on D_f in eval mode, one global ranking.
        reference = copy.deepcopy(model).eval()
        nn.functional.cross_entropy(reference(split.forget_train.x), split.forget_train.y,
                                    reduction="sum").backward()
        names = [n for n, _ in model.named_parameters()]
        assert set(mask) == set(names)
        grads = torch.cat([p.grad.abs().flatten() for p in reference.parameters()])
        kept = torch.cat([mask[n].flatten() for n in names]).bool()
        assert kept.sum().item() == round(sparsity * grads.numel())
        values = torch.unique(torch.cat([m.flatten() for m in mask.values()]))
        assert set(values.tolist()) <= {0.0, 1.0}
        # Every kept gradient is at least as large as every dropped one (up to float summation
        # order: batches of 16 vs one full batch).
        assert grads[kept].min() >= grads[~kept].max() * (1 - 1e-4)


def test_salun_updates_only_salient_weights_and_forgets(trained):
    model, split = trained
    cfg = MethodConfig(2, 1e-2, 32, {"sparsity": 0.5, "weight_decay": 0.0})
    mask = salun_module.saliency_mask(copy.deepcopy(model), split, 0.5, Context(seed=0), 32)
    unlearned = run("salun", model, split, cfg)
    new, old = dict(unlearned.named_parameters()), dict(model.named_parameters())
    frozen = torch.cat([(new[n] - old[n])[m == 0].flatten() for n, m in mask.items()])
    moved = torch.cat([(new[n] - old[n])[m == 1].flatten() for n, m in mask.items()])
    assert torch.all(frozen == 0) and moved.abs().max() > 0
    assert accuracy(unlearned, split.forget_test) <= 20


def test_salun_rejects_a_sparsity_outside_0_1(trained):
    model, split = trained
    with pytest.raises(ValueError, match="sparsity"):
        salun_module.saliency_mask(model, split, 1.5, Context(seed=0))


# ------------------------------------------------------------- the authors' protocol, pinned


def test_unsir_impairs_then_repairs_with_a_fresh_adam_at_each_phase_lr(trained, monkeypatch):
    from illusion.unlearn import unsir as unsir_module

    model, split = trained
    steps, noise_steps = [], []

    class RecordingAdam(torch.optim.Adam):
        def step(self, closure=None):
            super().step(closure)
            first = self.param_groups[0]["params"][0]
            if isinstance(first, nn.Parameter):  # the model's optimiser, not the noise's
                steps.append((self.param_groups[0]["lr"], int(self.state[first]["step"])))

    def noise(*args, **kwargs):
        noise_steps.append(args[3])
        return error_maximising_noise(*args, **kwargs)

    monkeypatch.setattr(unsir_module.torch.optim, "Adam", RecordingAdam)
    monkeypatch.setattr(unsir_module, "error_maximising_noise", noise)
    cfg = MethodConfig(2, 1e-3, 32, {"retain_per_class": 20, "noise_repeats": 2,
                                     "impair_lr": 5e-3})
    run("unsir", model, split, cfg)
    assert noise_steps == [40]  # the authors' 5 x 8 noise steps by default
    retain = 20 * (K - 1)
    impair_batches = -(-(2 * 32 + retain) // 32)
    repair_batches = -(-retain // 32)
    impair = [(5e-3, i) for i in range(1, 2 * impair_batches + 1)]
    repair = [(1e-3, i) for i in range(1, 2 * repair_batches + 1)]  # the step count restarts
    assert steps == impair + repair


def test_unsir_impair_lr_defaults_to_twice_the_repair_lr(trained, monkeypatch):
    from illusion.unlearn import unsir as unsir_module

    model, split = trained
    lrs = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, closure=None):
            super().step(closure)
            if isinstance(self.param_groups[0]["params"][0], nn.Parameter):
                lrs.append(self.param_groups[0]["lr"])

    monkeypatch.setattr(unsir_module.torch.optim, "Adam", RecordingAdam)
    run("unsir", model, split, MethodConfig(1, 1e-3, 32, {"retain_per_class": 20,
                                                          "noise_repeats": 1, "noise_steps": 1}))
    assert lrs[0] == 2e-3 and lrs[-1] == 1e-3


def test_neggrad_plus_clips_only_the_ascent_gradient(trained):
    model, split = trained
    big = len(split.retain_train) + len(split.forget_train)  # one batch each: a known step
    cfg = MethodConfig(1, 1e-3, big, {"forget_clip": 1.0, "forget_weight": 1.0})
    reference = copy.deepcopy(model).train()
    params = list(reference.parameters())
    ce = nn.functional.cross_entropy
    ascent = torch.autograd.grad(-ce(reference(split.forget_train.x), split.forget_train.y), params)
    descent = torch.autograd.grad(ce(reference(split.retain_train.x), split.retain_train.y), params)
    ascent_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in ascent]))
    assert ascent_norm > 1.5  # so the clip matters
    expected = [a / (ascent_norm + 1e-6) + d for a, d in zip(ascent, descent)]
    seen = []
    run("neggrad_plus", model, split, cfg,
        Context(seed=0, on_step=lambda m, i: seen.append([p.grad.clone() for p in m.parameters()])))
    assert len(seen) == 1
    for got, want in zip(seen[0], expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # Clipping the sum instead (the CMF variant) gives another step.
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a + d)
                                                  for a, d in zip(ascent, descent)]))
    assert total > 1.5


def test_scrub_uses_plain_momentum(trained, monkeypatch):
    from illusion.unlearn import scrub as scrub_module

    model, split = trained
    made = []
    real = scrub_module.sgd
    monkeypatch.setattr(scrub_module, "sgd", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    run("scrub", model, split)
    assert [o.param_groups[0]["nesterov"] for o in made] == [False]


def test_lr_decay_and_clip_are_options_of_every_gradient_method(trained):
    model, split = trained
    lrs, norms = [], []

    def on_step(m, i):
        norms.append(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in m.parameters() if p.grad is not None])).item())

    cfg = MethodConfig(3, 1e-2, 32, {"clip": 0.1, "lr_decay_epochs": [1, 2], "lr_decay_factor": 0.2})
    from illusion.unlearn._loop import decayed_lr
    assert [decayed_lr(cfg, e) for e in range(3)] == pytest.approx([1e-2, 2e-3, 4e-4])
    run("rl", model, split, cfg, Context(seed=0, on_step=on_step))
    assert max(norms) <= 0.1 + 1e-6
