"""Classifier-only unlearning and the training-free prune, on a tiny ResNet and synthetic data."""

import copy

import pytest
import torch

from illusion import classifier_only
from illusion.classifier_only import (SPLIT_PARTS, FeatureModel, classifier_context,
                                      freeze_all_but_classifier, run)
from illusion.config import DataConfig, ForgetSet, MethodConfig, TrainConfig, get_profile
from illusion.data import ForgetSplit, load_dataset, split_forget
from illusion.heads import extract
from illusion.models import build_model
from illusion.train import accuracy, fit
from illusion.unlearn import METHODS, Context, get_method, register, unlearn

RL = MethodConfig(epochs=4, lr=0.05, batch_size=32)


@pytest.fixture(scope="module")
def setup():
    data = load_dataset(DataConfig("synthetic", train_per_class=40, test_per_class=15,
                                   num_classes=4, noise=1.0))
    torch.manual_seed(0)
    model = build_model("resnet18", data.num_classes, data.in_channels, width=4)
    recipe = TrainConfig(epochs=4, lr=0.05, batch_size=32, warmup_epochs=0, patience=None,
                         crop_padding=0, flip=False)
    model, _ = fit(model, data.train, data.val, recipe, seed=0)
    return data, model.eval(), split_forget(data, ForgetSet((1,)))


def changed_tensors(before, after) -> set[str]:
    a, b = before.state_dict(), after.state_dict()
    assert a.keys() == b.keys()
    return {k for k in a if not torch.equal(a[k], b[k])}


@pytest.mark.parametrize("protocol", classifier_only.PROTOCOLS)
def test_only_fc_changes_and_features_are_the_originals(setup, protocol):
    data, original, split = setup
    ctx = Context(crop_padding=2, flip=True)  # the authors' protocol augments the images
    model, seconds = run("rl", original, split, RL, ctx, protocol=protocol)
    assert seconds > 0
    # BatchNorm running statistics included: nothing but the classifier moves.
    assert changed_tensors(original, model) == {"fc.weight", "fc.bias"}
    assert all(p.requires_grad for p in model.parameters())
    # LP and NCC see exactly the Original's features.
    assert torch.equal(extract(original, data.test)[0], extract(model, data.test)[0])
    assert torch.equal(extract(original, data.train)[0], extract(model, data.train)[0])


def test_cached_protocol_matches_the_eval_mode_image_run(setup):
    data, original, split = setup
    fast, _ = run("rl", original, split, RL, Context(seed=7), protocol="cached")
    # The same run on images: backbone frozen in eval mode, no augmentation.
    frozen = freeze_all_but_classifier(copy.deepcopy(original))
    slow, _ = unlearn("rl", frozen, split, RL, classifier_context(Context(seed=7), "cached"))
    assert not torch.equal(fast.fc.weight, original.fc.weight)
    torch.testing.assert_close(fast.fc.weight, slow.fc.weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fast.fc.bias, slow.fc.bias, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert torch.equal(fast(data.test.x).argmax(1), slow(data.test.x).argmax(1))


def test_classifier_only_rl_forgets_and_keeps_retain(setup):
    data, original, split = setup
    before_forget = accuracy(original, split.forget_test)
    before_retain = accuracy(original, split.retain_test)
    assert before_forget >= 80  # the Original knows the forget class
    model, _ = run("rl", original, split, RL, Context())
    assert accuracy(model, split.forget_test) <= 20
    assert accuracy(model, split.retain_test) >= before_retain - 15


def test_hooks_receive_the_full_model(setup):
    data, original, split = setup
    seen = {p: [] for p in classifier_only.PROTOCOLS}
    for protocol in classifier_only.PROTOCOLS:
        def on_step(model, step, log=seen[protocol]):
            with torch.no_grad():  # a full model: images go through the backbone
                log.append((step, model(data.test.x[:2]).shape, model.fc.weight.clone()))
        run("rl", original, split, RL, Context(on_step=on_step), protocol=protocol)
    assert [s[:2] for s in seen["cached"]] == [s[:2] for s in seen["authors"]]
    steps_per_epoch = -(-(len(split.forget_train) + len(split.retain_train)) // RL.batch_size)
    assert len(seen["cached"]) == RL.epochs * steps_per_epoch
    assert seen["cached"][-1][1] == (2, data.num_classes)
    assert not torch.equal(seen["cached"][0][2], seen["cached"][-1][2])  # the classifier being learnt


def test_authors_protocol_trains_with_batch_statistics(setup):
    data, original, split = setup
    modes = []

    def on_step(model, step):
        bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        modes.append({(m.training, m.track_running_stats) for m in bn})
    model, _ = run("rl", original, split, RL, Context(on_step=on_step), protocol="authors")
    assert modes and all(m == {(True, False)} for m in modes)
    # Afterwards a normal model again: running statistics tracked, and the Original's.
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.track_running_stats for m in bn)
    assert changed_tensors(original, model) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("protocol", classifier_only.PROTOCOLS)
def test_classifier_only_salun_keeps_every_classifier_weight(setup, protocol, monkeypatch):
    # The authors rank all of the network's weights: the frozen ones rank with gradient 0, so
    # the classifier, far smaller than half the network, is kept whole.
    from illusion.unlearn import salun as salun_module

    _, original, split = setup
    masks = []
    real = salun_module.saliency_mask
    monkeypatch.setattr(salun_module, "saliency_mask",
                        lambda *a, **k: masks.append(real(*a, **k)) or masks[-1])
    run("salun", original, split, MethodConfig(1, 0.05, 32, {"sparsity": 0.5}), protocol=protocol)
    assert len(masks) == 1 and set(masks[0]) == {"fc.weight", "fc.bias"}
    assert all(bool(m.all()) for m in masks[0].values())


def test_image_only_methods_refuse_the_cache(setup):
    _, original, split = setup
    assert "unsir" in classifier_only.IMAGE_ONLY
    # A method declares that it needs images where it is registered.
    register("_images", image_only=True)(lambda *args: get_method("retain_ft")(*args))
    try:
        assert "_images" in classifier_only.IMAGE_ONLY
        assert classifier_only.protocol_of("_images", RL) == "authors"
        with pytest.raises(ValueError, match="needs images"):
            run("_images", original, split, RL, protocol="cached")
    finally:
        del METHODS["_images"]
    with pytest.raises(ValueError, match="unknown classifier-only protocol"):
        run("rl", original, split, RL, protocol="nosuch")
    model, _ = run("retain_ft", original, split, MethodConfig(epochs=1, lr=0.05, batch_size=64))
    assert changed_tensors(original, model) == {"fc.weight", "fc.bias"}
    with pytest.raises(ValueError, match="unknown unlearning method"):
        run("no_such_method", original, split, RL)


def test_feature_model_follows_the_convention():
    fc = torch.nn.Linear(3, 2)
    head = FeatureModel(fc)
    x = torch.randn(5, 3)
    assert torch.equal(head.features(x), x) and torch.equal(head(x), fc(x))
    assert head.num_classes == 2


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_changes_only_fc(setup, name):
    _, original, split = setup
    profile = get_profile("smoke")
    cfg = profile.method(name) if name in profile.methods else RL
    model, _ = run(name, original, split, cfg, Context())
    assert changed_tensors(original, model) <= {"fc.weight", "fc.bias"}


def test_prune_zeroes_only_the_forget_rows(setup):
    data, original, _ = setup
    split = split_forget(data, ForgetSet((1, 3)))
    model, _ = unlearn("prune", original, split, MethodConfig(epochs=0))
    rows = torch.tensor([1, 3])
    keep = torch.tensor([0, 2])
    assert torch.count_nonzero(model.fc.weight[rows]) == 0
    assert torch.count_nonzero(model.fc.bias[rows]) == 0
    assert torch.equal(model.fc.weight[keep], original.fc.weight[keep])
    assert torch.equal(model.fc.bias[keep], original.fc.bias[keep])
    assert changed_tensors(original, model) == {"fc.weight", "fc.bias"}
    with torch.no_grad():
        logits = model(data.test.x)
    assert torch.count_nonzero(logits[:, rows]) == 0  # the forget logit is 0 for every input
    with pytest.raises(ValueError, match="not rows"):
        outside = ForgetSplit(ForgetSet((7,)), *(getattr(split, p) for p in SPLIT_PARTS))
        unlearn("prune", original, outside, MethodConfig(epochs=0))
