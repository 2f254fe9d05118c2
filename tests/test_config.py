import pytest

from illusion.config import (BUDGET_METHODS, PROFILES, ForgetSet, SettingError, get_profile,
                             paper_cmf_epochs, resolve, validate)


def test_unknown_profile_names_valid_choices():
    with pytest.raises(ValueError, match="unknown profile 'nope'.*default.*smoke"):
        get_profile("nope")


def test_every_profile_resolves_and_serialises():
    for name in PROFILES:
        profile = get_profile(name)
        assert profile.forget_sets, name
        assert profile.to_dict()["name"] == profile.name


def test_paper_profiles_hold_the_papers_buckets():
    c10 = get_profile("paper")
    assert [fs.classes for fs in c10.buckets["single"]] == [(c,) for c in range(10)]
    assert [fs.name for fs in c10.buckets["multi"]] == ["0-1-2", "3-4-5", "6-7-8", "0-5-9", "2-4-8"]
    c100 = get_profile("paper-cifar100")
    assert all(len(fs.classes) == 10 for fs in c100.buckets["multi"])
    tiny = get_profile("paper-tinyimagenet")
    assert tiny.buckets["multi"][1].classes == tuple(range(20, 40))
    assert tiny.model.arch == "resnet50"
    assert c10.method("rl").lr == 1e-4 and c100.method("rl").lr == 3e-3


def test_overrides_apply_and_unknown_keys_name_valid_fields():
    p = resolve("smoke", {"original.epochs": 7, "methods.rl.lr": 0.5,
                          "buckets": {"single": [[3]], "multi": []}})
    assert p.original.epochs == 7 and p.method("rl").lr == 0.5
    assert p.forget_sets == (ForgetSet((3,)),)
    assert resolve("smoke", {"original": {"epochs": 4}}).original.epochs == 4
    with pytest.raises(ValueError, match="unknown setting 'original.epoch'.*epochs"):
        resolve("smoke", {"original.epoch": 3})
    with pytest.raises(ValueError, match="'nope' is not one of"):
        resolve("smoke", {"methods.nope.lr": 3})


def test_forget_set_parsing():
    assert ForgetSet.parse("6").classes == (6,)
    assert ForgetSet.parse("6-2-4").name == "2-4-6"
    assert ForgetSet.parse([4, 2]).name == "2-4"
    with pytest.raises(ValueError, match="cannot read forget set 'x'"):
        ForgetSet.parse("x")


def test_unknown_method_names_valid_choices():
    with pytest.raises(ValueError, match="no settings for method 'nope'.*rl"):
        get_profile("smoke").method("nope")


def test_attacked_forget_sets_follow_the_attack_budget():
    default = get_profile("default")
    assert default.attacked_forget_sets == default.buckets["single"][:default.attack.forget_sets]
    every = resolve("default", {"attack.forget_sets": None})
    assert every.attacked_forget_sets == every.buckets["single"]


def test_variant_method_names_are_the_methods_a_variant_runs():
    profile = get_profile("default")
    assert profile.variant_method_names("full") == list(profile.methods)
    # CMF: the methods with CMF settings; "prepare" is a step, not a method.
    assert profile.variant_method_names("cmf") == ["rl", "salun", "neggrad_plus", "scrub", "unsir"]
    assert profile.variant_method_names("no such variant") == []


def test_cmf_settings_clip_rl_salun_and_neggrad_plus_only():
    # The authors clip the gradient norm under CMF for RL, SalUn and NegGrad+ only, and
    # NegGrad+ + CMF clips the whole step rather than its ascent part.
    for name in ("default", "paper", "paper-cifar100", "paper-tinyimagenet"):
        cmf = get_profile(name).variant_methods["cmf"]
        assert {m for m, c in cmf.items() if c.option("clip") is not None} == {"rl", "salun", "neggrad_plus"}
        assert cmf["neggrad_plus"].option("forget_clip") is None
        assert cmf["salun"].option("lr_decay_epochs") == [3] and cmf["salun"].option("lr_decay_factor") == 0.2
        assert get_profile(name).method("neggrad_plus").option("forget_clip") == 1.0


def test_every_registered_method_has_a_settings_row_and_profiles_follow_the_rows():
    from illusion import config
    from illusion.unlearn import METHODS
    assert [row.name for row in config.METHOD_ROWS] == list(METHODS)
    for name in PROFILES:
        assert list(get_profile(name).methods) == [row.name for row in config.METHOD_ROWS]
    # A laptop profile's common settings apply to every method but what its row fixes.
    smoke = get_profile("smoke")
    assert (smoke.method("rl").epochs, smoke.method("rl").lr, smoke.method("rl").batch_size) == (1, 0.01, 64)
    assert (smoke.method("scrub").lr, smoke.method("scrub").batch_size) == (0.01, 64)
    assert (smoke.method("svd").epochs, smoke.method("svd").lr, smoke.method("svd").batch_size) == (0, 0.0, 900)
    # Rows share no mutable option between profiles.
    get_profile("default").method("scrub").options["lr_decay_epochs"].append(99)
    assert get_profile("default").method("scrub").option("lr_decay_epochs") == [3, 5, 9]


@pytest.fixture
def fresh_method(monkeypatch):
    """A method registered under a temporary name, with a full-model settings row but no
    classifier-only LR in any profile."""
    from illusion import config
    from illusion.unlearn import METHODS, get_method, register
    register("_fresh", baseline=True)(lambda *args: get_method("retain_ft")(*args))
    row = config.MethodRow("_fresh", epochs=2, batch_size=32, paper_lrs=(1e-3, 2e-3, 3e-3),
                           laptop_lr=5e-3)
    monkeypatch.setattr(config, "METHOD_ROWS", config.METHOD_ROWS + (row,))
    yield "_fresh"
    del METHODS["_fresh"]


def test_a_new_method_without_a_classifier_only_lr_gets_the_documented_default(fresh_method):
    from illusion.config import CLASSIFIER_ONLY_LR
    from illusion.experiment import check_method_options
    default = get_profile("default")
    assert default.method(fresh_method).lr == 5e-3
    cfg = default.method(fresh_method, "classifier_only")
    assert (cfg.lr, cfg.epochs) == (CLASSIFIER_ONLY_LR, 5)
    paper = get_profile("paper-cifar100")  # no LR in the authors' script: the full-model LR
    cfg = paper.method(fresh_method, "classifier_only")
    assert (cfg.lr, cfg.option("protocol")) == (2e-3, "authors")
    for name in PROFILES:
        check_method_options(resolve(name))


def test_paper_profiles_follow_the_authors_scripts():
    paper = get_profile("paper")
    assert paper.retrain.keep == "last" and paper.retrain.patience is None
    assert paper.original.keep == "best"
    assert paper.method("svd").options["alpha_r"] == 100.0 and paper.method("svd").options["alpha_f"] == 3.0
    assert paper.method("unsir").option("impair_lr") == 1e-4 and paper.method("unsir").option("noise_steps") == 40
    assert {m: paper.method(m, "classifier_only").lr for m in ("rl", "salun", "neggrad_plus", "unsir")} == \
        {"rl": 1e-2, "salun": 1e-2, "neggrad_plus": 1e-3, "unsir": 2e-3}
    assert all(c.option("protocol") == "authors" for c in paper.variant_methods["classifier_only"].values())
    assert paper.heads.augment_train and paper.heads.lp == "sgd"
    tiny = get_profile("paper-tinyimagenet")
    assert (tiny.retrain.lr, tiny.retrain.epochs, tiny.retrain.weight_decay) == (0.05, 300, 1e-4)
    assert (tiny.heads.sgd_schedule, tiny.heads.sgd_patience) == ("cosine", 40)


def test_every_profile_validates():
    for name in PROFILES:
        assert validate(get_profile(name)) == get_profile(name), name


@pytest.mark.parametrize("overrides, message", [
    ({"original.epochs": "five"}, "'original.epochs' must be an integer >= 1; got 'five'"),
    ({"original.epochs": 0}, "'original.epochs' must be an integer >= 1; got 0"),
    ({"retrain.epochs": -1}, "'retrain.epochs' must be an integer >= 1; got -1"),
    ({"original.epochs": True}, "'original.epochs' must be an integer >= 1; got True"),
    ({"original.epochs": 2.0}, "'original.epochs' must be an integer >= 1; got 2.0"),
    ({"original.batch_size": 0}, "'original.batch_size' must be an integer >= 1; got 0"),
    ({"original.batch_size": -5}, "'original.batch_size' must be an integer >= 1; got -5"),
    ({"seed": "abc"}, r"'seed' must be an integer in \[0, 2\*\*32\); got 'abc'"),
    ({"original.lr": float("nan")}, "'original.lr' must be a finite number > 0; got nan"),
    ({"original.lr": float("inf")}, "'original.lr' must be a finite number > 0; got inf"),
    ({"methods.rl.epochs": -1}, "'methods.rl.epochs' must be an integer >= 0; got -1"),
    ({"variant_methods.cmf.rl.lr": -1e-3}, "'variant_methods.cmf.rl.lr' must be a finite number >= 0"),
    ({"heads.lp": "nosuch"}, r"'heads.lp' must be a string in \['lbfgs', 'sgd'\]; got 'nosuch'"),
    ({"device": "gpu"}, "'device' must be a string like 'auto', 'cpu', 'cuda'"),
    ({"data.train_per_class": "x"}, "'data.train_per_class' must be an integer >= 1 or None"),
    ({"attack.forget_sets": 0}, "'attack.forget_sets' must be an integer >= 1 or None; got 0"),
    ({"heads": 5}, "'heads' must be a HeadConfig; got 5"),
])
def test_settings_are_checked_for_type_and_range(overrides, message):
    with pytest.raises(SettingError, match=message):
        resolve("smoke", overrides)


def test_overrides_given_as_a_json_string_are_read_or_refused_by_name():
    # papermill's -p passes a string where a mapping is expected.
    assert resolve("smoke", '{"original.epochs": 3}').original.epochs == 3
    with pytest.raises(SettingError, match="overrides 'epochs=3' is a string but not JSON"):
        resolve("smoke", "epochs=3")
    with pytest.raises(SettingError, match="overrides must be a mapping.*list"):
        resolve("smoke", [("original.epochs", 3)])


@pytest.mark.parametrize("spec", ["-1", "3-", "2--4", "", "6a", [2.7], [True], True, 2.5, -1])
def test_forget_sets_are_read_strictly(spec):
    with pytest.raises(SettingError, match="forget set"):
        ForgetSet.parse(spec)


def test_bad_forget_sets_in_a_bucket_name_the_bucket():
    with pytest.raises(SettingError, match="'buckets.single'.*cannot read forget set '-1'"):
        resolve("smoke", {"buckets.single": ["-1"]})


def test_forget_set_classes_are_checked_against_the_dataset():
    assert ForgetSet.parse("2-4").check_classes(10) == ForgetSet((2, 4))
    with pytest.raises(SettingError, match=r"class\(es\) \[12\] out of range.*0..9"):
        ForgetSet.parse("3-12").check_classes(10)
    with pytest.raises(SettingError, match="forgets every class.*leave at least one of 0..3"):
        ForgetSet.parse(range(4)).check_classes(4)


@pytest.mark.parametrize("overrides, message", [
    ({"methods.salun.options": {"sparsty": 0.5}}, r"methods.salun.options.*\['sparsty'\].*sparsity"),
    ({"variant_methods.cmf.rl.options": {"clip": 1.0, "clipp": 2}}, r"variant_methods.cmf.rl.*clipp"),
    ({"variant_methods.cmf.prepare.options": {"tau": 1.0, "readng": "code"}}, r"prepare.*readng"),
    ({"variant_methods.classifier_only.rl.options": {"protocl": "authors"}}, r"protocl.*protocol"),
])
def test_method_options_are_checked_against_what_each_method_reads(overrides, message):
    from illusion.experiment import Experiment

    with pytest.raises(ValueError, match=message):
        Experiment("smoke", overrides)
    for name in PROFILES:  # every built-in profile passes
        Experiment(name)


def test_paper_cmf_epochs_compare_a_budget_of_its_own_with_the_papers():
    default = get_profile("default")
    epochs = paper_cmf_epochs(default)
    assert set(epochs) == set(BUDGET_METHODS) <= set(default.variant_method_names("cmf"))
    assert epochs == {m: get_profile("paper").method(m, "cmf").epochs for m in epochs}
    assert any(e > default.method(m, "cmf").epochs for m, e in epochs.items())
    # A paper recipe runs at the paper's budget already: nothing to compare.
    for name in ("paper", "paper-cifar100", "paper-tinyimagenet"):
        assert get_profile(name).paper_recipe and paper_cmf_epochs(get_profile(name)) == {}
    assert not default.paper_recipe
