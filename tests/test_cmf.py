"""The CMF head is nearest-class-mean by cosine, holds no parameters, and the CMF wrapper runs
registered methods unchanged."""

import pytest
import torch
from torch.nn import functional as F

from illusion import cmf
from illusion.config import DataConfig, ForgetSet, MethodConfig
from illusion.data import load_dataset, split_forget
from illusion.heads import class_means, extract, ncc_predict
from illusion.models import build_model
from illusion.unlearn import METHODS, Context, get_method, register, unlearn
from illusion.unlearn._loop import concat, image_batches, run_epochs

K = 4


def cosine_ncc(train_f, train_y, f, num_classes):
    """The code reading of CMF written out independently: predictions by cosine."""
    z = train_f.double() / train_f.double().norm(dim=1, keepdim=True)
    mu = z.mean(0)
    means = torch.stack([z[train_y == c].mean(0) for c in range(num_classes)])
    w = means - mu
    q = f.double() / f.double().norm(dim=1, keepdim=True) - mu
    cos = (q @ w.T) / (q.norm(dim=1, keepdim=True) * w.norm(dim=1))
    return cos.argmax(1)


def clustered(n_per_class=50, d=16, spread=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(K, d, generator=g)
    y = torch.arange(K).repeat_interleave(n_per_class)
    return centres[y] + spread * torch.randn(len(y), d, generator=g), y


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    data = load_dataset(DataConfig("synthetic", train_per_class=24, test_per_class=8,
                                   num_classes=K, noise=0.5))
    torch.manual_seed(0)  # the result must not depend on which tests ran before
    model = build_model("resnet18", K, 1, width=4)
    return data, model, split_forget(data, ForgetSet((1,)))


def test_head_is_cosine_ncc_on_its_own_features():
    f, y = clustered(spread=2.0)
    f = f.abs() * torch.linspace(0.5, 3, len(y))[:, None]  # unequal norms, overlapping classes
    f, y = f[10:], y[10:]                                   # and class 0 smaller than the rest
    head = cmf.class_mean_classifier(f, y, K)
    assert list(head.parameters()) == [] and head.out_features == K and head.in_features == 16
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(K))
    pred = head(f).argmax(1)
    assert torch.equal(pred, cosine_ncc(f, y, f, K))
    assert (pred != y).any()  # the classes overlap: agreement is not trivial
    # Well-separated clusters: CMF = nearest (Euclidean) class mean = the labels.
    f, y = clustered(spread=0.1, seed=1)
    pred = cmf.class_mean_classifier(f, y, K)(f).argmax(1)
    assert torch.equal(pred, ncc_predict(class_means(f, y, K), f)) and torch.equal(pred, y)


def test_readings_differ_except_for_equal_norms_and_balanced_classes():
    f, y = clustered(spread=2.0)
    f = f * torch.linspace(0.2, 5, len(y))[:, None]
    keep = torch.arange(len(y)) % 3 != 0  # unbalanced: drop a third of every class but class 0
    keep[y == 0] = True
    f, y = f[keep], y[keep]
    code, paper = (cmf.class_mean_classifier(f, y, K, r) for r in cmf.READINGS)
    assert code.reading == "code" and paper.reading == "paper"
    assert not torch.allclose(code.weight, paper.weight, atol=1e-3)
    assert not torch.allclose(code(f), paper(f), atol=1e-3)
    # Documented special case: every feature of the same norm, balanced classes.
    f, y = clustered(spread=2.0, seed=2)
    f = 7 * F.normalize(f, dim=1)
    code, paper = (cmf.class_mean_classifier(f, y, K, r) for r in cmf.READINGS)
    assert torch.allclose(code.weight, paper.weight, atol=1e-5)
    assert torch.allclose(code(f), paper(f), atol=1e-5)
    with pytest.raises(ValueError, match="'code', 'paper'"):
        cmf.class_mean_classifier(f, y, K, "other")
    with pytest.raises(ValueError, match=r"\[3\]"):
        cmf.class_mean_classifier(f[y != 3], y[y != 3], K)


def test_model_keeps_features_fc_convention_and_w_gets_no_gradient(setting):
    data, model, _ = setting
    m = cmf.attach(model, data.train)
    assert cmf.head_is_cmf(m) and not cmf.head_is_cmf(model) and m.fc.out_features == K
    assert all(not n.startswith("fc.") for n, _ in m.named_parameters())
    x = data.test.x[:10]
    with torch.no_grad():
        assert torch.allclose(m(x), m.fc(m.features(x)))
    before = {k: v.clone() for k, v in m.fc.state_dict().items()}
    encoder = m.conv1.weight.detach().clone()
    optimizer = torch.optim.SGD(m.parameters(), lr=0.5)
    m.train()
    F.cross_entropy(m(data.train.x[:32]), data.train.y[:32]).backward()
    optimizer.step()
    assert not torch.equal(encoder, m.conv1.weight)  # the encoder moved...
    for k, v in m.fc.state_dict().items():
        assert torch.equal(v, before[k])               # ...W did not, until recompute
    cmf.recompute(m, data.train)
    assert not torch.equal(m.fc.weight, before["weight"])
    assert m.training  # recompute keeps the mode


@pytest.fixture
def spy():
    """A method registered under a temporary name that records how it was called."""
    calls = []

    @register("_cmf_spy")
    def spy_method(model, split, cfg, ctx):
        model.fc.weight.zero_() if cmf.head_is_cmf(model) else None  # a recompute restores it
        def loss(model, batch, epoch):
            calls[-1]["rows"].append(model.fc.weight.norm(dim=1).min().item())
            return F.cross_entropy(model(batch[0]), batch[1])
        calls.append({"cmf": cmf.head_is_cmf(model), "rows": [],
                      "trained": {id(p) for p in ctx.parameters(model)},
                      "fc": {id(p) for p in model.fc.parameters()}})
        return run_epochs(model, cfg, ctx, lambda e: image_batches(split.retain_train, cfg, ctx), loss)
    yield spy_method, calls
    del METHODS["_cmf_spy"]


def test_wrapper_runs_the_registered_method_unchanged(setting, spy):
    data, model, split = setting
    spy_method, calls = spy
    registry = dict(METHODS)
    cfg = MethodConfig(epochs=2, lr=1e-3, batch_size=64)
    started = []
    ctx = lambda: Context(on_epoch_start=lambda m, e: started.append(e))  # noqa: E731
    unlearn("_cmf_spy", model, split, cfg, ctx())
    base = cmf.attach(model, data.train)
    out, seconds = cmf.run("_cmf_spy", base, split, cfg, ctx())
    assert METHODS == registry and get_method("_cmf_spy") is spy_method
    full, under_cmf = calls
    assert not full["cmf"] and full["fc"] <= full["trained"]
    assert under_cmf["cmf"] and not under_cmf["fc"]
    assert min(under_cmf["rows"]) == pytest.approx(1.0, abs=1e-4)  # recomputed at epoch start
    assert started == [0, 1, 0, 1]  # the caller's own hooks still run
    assert seconds > 0 and cmf.head_is_cmf(out) and not out.training
    assert torch.equal(base.fc.weight, cmf.attach(model, data.train).fc.weight)  # base untouched
    with pytest.raises(ValueError, match="CMF head"):
        cmf.run("_cmf_spy", model, split, cfg, Context())


def test_w_seen_at_each_epoch_end_is_recomputed_once_per_change(setting, monkeypatch):
    data, model, split = setting
    base = cmf.attach(model, data.train)
    recomputes, seen = [], []
    recompute = cmf.recompute
    monkeypatch.setattr(cmf, "recompute", lambda m, t: recomputes.append(1) or recompute(m, t))
    ctx = Context(on_epoch_end=lambda m, e: seen.append(m.fc.weight.clone()))
    out, _ = cmf.run("retain_ft", base, split, MethodConfig(epochs=3, lr=1e-2, batch_size=32), ctx)
    assert len(recomputes) == 4  # the start, then each epoch end (= the next start, the end)
    fresh = cmf.attach(out, concat(split.forget_train, split.retain_train)).fc.weight
    assert torch.equal(seen[-1], out.fc.weight) and torch.equal(out.fc.weight, fresh)
    assert not torch.equal(seen[0], seen[-1])  # a hook sees the W of its own epoch's features


@pytest.mark.parametrize("method", ["rl", "retain_ft"])
def test_run_output_tracks_the_features(setting, method):
    data, model, split = setting
    base = cmf.attach(model, data.train)
    cfg = MethodConfig(epochs=1, lr=1e-2, batch_size=32)
    out, _ = cmf.run(method, base, split, cfg, Context())
    moved = [not torch.equal(a, b) for a, b in zip(base.parameters(), out.parameters())]
    assert any(moved)
    train = concat(split.forget_train, split.retain_train)
    train_f, _ = extract(out, train)
    test_f, logits = extract(out, data.test, with_logits=True)
    # The forget class keeps its own row, and the output is the cosine NCC of the new features.
    assert out.fc.weight[1].norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(logits.argmax(1), cosine_ncc(train_f, train.y, test_f, K))


def test_prepare_and_state_dict_round_trip(setting):
    data, model, _ = setting
    cfg = MethodConfig(epochs=1, lr=1e-2, batch_size=32, options={"weight_decay": 1e-4})
    prepared = cmf.prepare(model, data.train, cfg, Context())
    assert not torch.equal(prepared.conv1.weight, model.conv1.weight)
    assert isinstance(model.fc, torch.nn.Linear)  # the input model is left as it was
    final = cmf.attach(prepared, data.train).fc  # W at the end = W of the final features
    assert torch.allclose(prepared.fc.weight, final.weight) and torch.allclose(prepared.fc.mu, final.mu)
    paper = cmf.attach(prepared, data.train, reading="paper", tau=2.0)
    for source in (prepared, paper):
        state = {k: v.detach().clone() for k, v in source.state_dict().items()}
        loaded = cmf.empty_cmf_model(model)
        loaded.load_state_dict(state)
        x = data.test.x[:16]
        with torch.no_grad():
            assert torch.equal(loaded.eval()(x), source.eval()(x))
        assert loaded.fc.reading == source.fc.reading
