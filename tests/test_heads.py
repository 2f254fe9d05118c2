import pytest
import torch

from illusion.config import ForgetSet, HeadConfig
from illusion.heads import (Features, class_means, evaluate_features, linear_probe_lbfgs,
                            linear_probe_sgd, ncc_predict)


def clusters(n=50, noise=0.3, seed=0):
    """Four Gaussian clusters at the corners of a square: every head can get 100%."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 3], [-3, 3], [-3, -3], [3, -3]])
    y = torch.arange(4).repeat_interleave(n)
    return centres[y] + noise * torch.randn(len(y), 2, generator=g), y, centres


def test_ncc_recovers_known_means():
    x, y, centres = clusters()
    means = class_means(x, y, 4)
    assert torch.allclose(means, centres, atol=0.15)
    assert torch.equal(ncc_predict(means, x), y)


def test_both_probes_separate_clusters():
    x, y, _ = clusters(noise=0.2)
    for probe in (linear_probe_lbfgs(x, y, 4), linear_probe_sgd(x, y, 4, epochs=20)):
        assert (probe(x).argmax(1) == y).float().mean() == 1.0


def test_heads_report_retain_and_forget_separately():
    x, y, _ = clusters()
    # A classifier that never predicts class 2: output forget accuracy 0, features intact.
    logits = torch.nn.functional.one_hot(y, 4).float()
    logits[y == 2] = torch.nn.functional.one_hot(torch.tensor(1), 4).float()
    feats = Features(x, y, logits, x, y, logits, 4)
    table = evaluate_features(feats, ForgetSet((2,)), HeadConfig()).set_index(["head", "split"])
    assert table.loc[("output", "forget"), "accuracy"] == 0.0
    assert table.loc[("output", "retain"), "accuracy"] == 100.0
    assert table.loc[("lp", "forget"), "accuracy"] == 100.0
    assert table.loc[("ncc", "forget"), "accuracy"] == 100.0


def test_unknown_probe_names_valid_choices():
    x, y, _ = clusters(n=5)
    feats = Features(x, y, x, x, y, x, 4)
    with pytest.raises(ValueError, match="'ridge'.*lbfgs.*sgd"):
        evaluate_features(feats, ForgetSet((0,)), HeadConfig(lp="ridge"))


def autograd_sgd_probe(x, y, k, epochs, lr=0.01, batch_size=128, seed=1234,
                       schedule="constant", patience=None):
    """The paper's probe protocol with torch.optim.SGD and autograd, as it was written before
    the steps were written out: the reference the fast probe must reproduce. Also returns the
    number of epochs it ran."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    n_val = max(1, len(order) // 10)
    val_idx, fit_idx = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], k)
    optimizer = torch.optim.SGD(probe.parameters(), lr=lr, momentum=0.9)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
                 if schedule == "cosine" else None)
    best, best_state, best_epoch, ran = -1.0, None, 0, 0
    for epoch in range(epochs):
        ran += 1
        perm = fit_idx[torch.randperm(len(fit_idx), generator=generator)]
        for start in range(0, len(perm), batch_size):
            idx = perm[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(probe(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_acc = (probe(x[val_idx]).argmax(1) == y[val_idx]).float().mean().item()
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {n: v.clone() for n, v in probe.state_dict().items()}
        if patience is not None and epoch - best_epoch >= patience:
            break
        if scheduler is not None:
            scheduler.step()
    probe.load_state_dict(best_state)
    return probe, ran


@pytest.mark.parametrize("schedule, patience, epochs", [("constant", None, 12),
                                                        ("cosine", 2, 40)])
def test_the_written_out_sgd_probe_takes_torch_optims_steps(schedule, patience, epochs):
    g = torch.Generator().manual_seed(3)
    y = torch.arange(5).repeat_interleave(90)
    x = torch.randn(5, 16, generator=g)[y] + 1.5 * torch.randn(len(y), 16, generator=g)
    fast = linear_probe_sgd(x, y, 5, epochs=epochs, batch_size=32, schedule=schedule,
                            patience=patience)
    slow, ran = autograd_sgd_probe(x, y, 5, epochs, batch_size=32, schedule=schedule,
                                   patience=patience)
    if patience is not None:
        assert ran < epochs  # the early stop is exercised
    torch.testing.assert_close(fast.weight, slow.weight, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast.bias, slow.bias, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="valid choices"):
        linear_probe_sgd(x, y, 5, schedule="nosuch")


def test_cmf_models_are_measured_in_their_head_geometry():
    from illusion import cmf
    from illusion.heads import head_geometry

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g) + 2, torch.arange(4).repeat(10)
    linear = torch.nn.Module()
    linear.fc = torch.nn.Linear(6, 4)
    feats = Features(x, y, x[:, :4], x, y, x[:, :4], 4)
    assert head_geometry(linear, feats) is feats  # a linear head: the features themselves
    cmf_model = torch.nn.Module()
    cmf_model.fc = cmf.class_mean_classifier(x, y, 4)
    z = head_geometry(cmf_model, feats)
    expected = torch.nn.functional.normalize(
        torch.nn.functional.normalize(x.double(), dim=1) - cmf_model.fc.mu, dim=1).float()
    torch.testing.assert_close(z.train, expected) and torch.testing.assert_close(z.test, expected)
    assert torch.equal(z.train_logits, feats.train_logits)  # the output head is unchanged


def test_a_new_head_is_one_registered_class():
    from illusion.heads import HEADS, Head, register, representation_heads

    @register
    class FarthestMean(Head):  # wrong on every well-separated cluster
        name = "farthest"

        def fit(self, x, y):
            self.means_ = class_means(x, y, self.num_classes)
            return self

        def predict(self, x):
            return torch.cdist(x, self.means_).argmax(1)

    try:
        x, y, _ = clusters()
        feats = Features(x, y, x, x, y, x, 4)
        table = evaluate_features(feats, ForgetSet((2,)), HeadConfig())
        assert table["head"].unique().tolist() == ["output", "lp", "ncc", "farthest"]
        assert (table.loc[table["head"] == "farthest", "accuracy"] == 0).all()
        assert representation_heads() == ("lp", "ncc", "farthest")
    finally:
        del HEADS["farthest"]


def autograd_lbfgs_probe(x, y, k, max_iter, l2):
    """The L-BFGS probe with autograd's gradient, as it was written before the gradient was
    written out: the minimum the fast probe must reach."""
    mean, std = x.double().mean(0), x.double().std(0).clamp_min(1e-6)
    z = (x.double() - mean) / std
    probe = torch.nn.Linear(z.shape[1], k).double()
    torch.nn.init.zeros_(probe.weight); torch.nn.init.zeros_(probe.bias)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=max_iter,
                                  tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(z), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    weight = probe.weight.detach() / std
    return weight.float(), (probe.bias.detach() - weight @ mean).float()


def test_the_written_out_lbfgs_probe_reaches_autograds_minimum():
    g = torch.Generator().manual_seed(5)
    y = torch.arange(6).repeat_interleave(60)
    x = 3 + torch.randn(6, 12, generator=g)[y] + 2 * torch.randn(len(y), 12, generator=g)
    fast = linear_probe_lbfgs(x, y, 6, max_iter=300, l2=1e-3)
    weight, bias = autograd_lbfgs_probe(x, y, 6, 300, 1e-3)
    torch.testing.assert_close(fast.weight, weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast.bias, bias, atol=1e-4, rtol=1e-4)
    assert torch.equal(fast(x).argmax(1), (x @ weight.T + bias).argmax(1))


def test_evaluating_restores_every_module_own_mode():
    from illusion.device import evaluating

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    model[1].eval()  # a caller holding BatchNorm in eval mode while the rest trains
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model[0].training and not model[1].training


def test_one_thread_restores_the_thread_count_even_on_an_error():
    from illusion.device import one_thread

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("a failing loop")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
