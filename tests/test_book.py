import os

import pytest

from illusion import book


def test_chapters_are_listed_in_reading_order(tmp_path):
    for name in ("02_b.py", "01_a.py", "intro.md", "helper.py", "10_c.py"):
        (tmp_path / name).write_text("")
    assert [p.name for p in book.chapters(tmp_path)] == ["01_a.py", "02_b.py", "10_c.py"]


def test_unknown_chapter_names_valid_choices(tmp_path):
    (tmp_path / "01_a.py").write_text("")
    with pytest.raises(SystemExit, match="unknown chapter.*'01_b'.*01_a"):
        book._select(tmp_path, ["01_b"])


def test_check_fails_when_a_chapter_page_is_missing(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "01_a.py").write_text("")
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "index.html").write_text("")
    with pytest.raises(SystemExit, match="01_a.html"):
        book.check(tmp_path / "book", html)
    (html / "book" / "01_a.html").write_text("")
    book.check(tmp_path / "book", html)


def test_chapter_converts_to_a_notebook_with_a_parameters_cell(tmp_path):
    source = tmp_path / "01_a.py"
    source.write_text('# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nprint(profile)\n')
    import nbformat
    notebook = nbformat.read(book.to_notebook(source, tmp_path / "01_a.ipynb"), as_version=4)
    assert notebook.cells[0].metadata["tags"] == ["parameters"]
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_prepare_injects_the_overrides_and_refuses_bad_ones_before_writing(tmp_path):
    import json

    import nbformat
    source = tmp_path / "book" / "01_a.py"
    source.parent.mkdir()
    source.write_text('# %% tags=["parameters"]\nprofile = "default"\noverrides = {}\n\n'
                      '# %%\nprint(profile)\n')
    overrides = {"heads.sgd_epochs": 1, "data": {"name": "synthetic", "num_classes": 4}}
    (tmp_path / "tiny.json").write_text(json.dumps(overrides))
    book.main(["prepare", "--profile", "smoke", "--overrides", str(tmp_path / "tiny.json"),
               "--out", str(tmp_path / "nb")], book_dir=source.parent)
    cells = nbformat.read(tmp_path / "nb" / "01_a.ipynb", as_version=4).cells
    injected = next(c for c in cells if "injected-parameters" in c.metadata.get("tags", []))
    namespace = {}
    exec(injected.source, namespace)
    assert namespace["profile"] == "smoke" and namespace["overrides"] == overrides

    for text, message in [('{"heads.sgd_epochs": 0}', "sgd_epochs"),
                          ("[1]", "holds a JSON list, not an object"), ("{", "Expecting")]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(SystemExit) as stop:
            book.main(["prepare", "--profile", "smoke", "--overrides", str(tmp_path / "bad.json"),
                       "--out", str(tmp_path / "bad")], book_dir=source.parent)
        assert stop.value.code == 2
        assert not (tmp_path / "bad").exists()


def test_another_seed_runs_into_its_own_results_folder(tmp_path, monkeypatch):
    import papermill

    from illusion.config import resolve
    from illusion.results import run_name, save

    assert run_name(resolve("default")) == "default"
    assert run_name(resolve("default", {"seed": 1235})) == "default-seed1235"
    (tmp_path / "01_a.py").write_text('# %% tags=["parameters"]\nprofile = "default"\n')
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda *args, **kwargs: calls.append(kwargs["parameters"]))
    book.execute("smoke", tmp_path, seed=7)
    book.execute("smoke", tmp_path)
    assert calls == [{"profile": "smoke", "overrides": {"seed": 7}}, {"profile": "smoke"}]
    assert book.timings_path("smoke-seed7").is_file() and book.timings_path("smoke").is_file()
    import pandas as pd
    path = save(pd.DataFrame({"a": [1]}), resolve("smoke", {"seed": 7}), "01_a", "t")
    assert "smoke-seed7" in path


def test_sealed_chapters_read_the_store_they_are_given_and_the_seal_is_lifted_after(
        tmp_path, monkeypatch):
    import papermill

    from illusion.store import SEALED
    (tmp_path / "01_a.py").write_text('# %% tags=["parameters"]\nprofile = "default"\n')
    monkeypatch.setenv("ILLUSION_CACHE", str(tmp_path / "store"))
    monkeypatch.delenv(SEALED, raising=False)
    seen = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda *args, **kwargs: seen.append(os.environ.get(SEALED)))
    book.main(["execute", "--profile", "smoke", "--sealed"], book_dir=tmp_path)
    book.execute("smoke", tmp_path)
    assert seen == [str((tmp_path / "store").resolve()), None]
    assert SEALED not in os.environ


def test_start_prints_one_line_and_folds_the_configuration(capsys):
    from IPython.core.formatters import DisplayFormatter

    chapter = book.start("smoke", None, "01_setup")
    exp = chapter.exp
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert first == (f"profile 'smoke', dataset {exp.profile.data.name}, model "
                     f"{exp.profile.model.arch} (width {exp.profile.model.width}), seed "
                     f"{exp.profile.seed}, device {exp.device}")
    # Outside a kernel the folded configuration falls back to plain text.
    assert rest.startswith("resolved configuration:\n{") and '"train_per_class"' in rest
    configuration, rerun = rest.split("re-run this chapter:\n")
    assert "--profile smoke --chapter 01_setup" in rerun
    assert chapter.name == "01_setup" and chapter.asserts_checks is False
    shown = book.Collapsed("resolved configuration", exp.profile.describe())
    data, _ = DisplayFormatter().format(shown)
    assert data["text/html"].startswith('<details class="illusion-collapsed"><summary>'
                                        "resolved configuration</summary><pre>{")
    assert "&quot;train_per_class&quot;" in data["text/html"]
    assert data["text/plain"] == configuration.rstrip("\n")


def test_injected_parameters_cell_is_removed_from_the_page(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "default"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\n',
                                  metadata={"tags": ["injected-parameters"]})])
    path = tmp_path / "01_a.ipynb"
    nbformat.write(notebook, path)
    assert book.hide_injected_parameters(path) == 1
    assert book.hide_injected_parameters(path) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].metadata["tags"] == ["parameters"]
    assert cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]


def test_check_fails_when_a_page_loads_from_the_network(tmp_path):
    page = ('<html><head><script src="../_static/a.js"></script>'
            '<script defer src="https://cdn.example.org/mathjax.js"></script>'
            '<link rel="stylesheet" href="//fonts.example.org/f.css"></head>'
            '<body><a href="https://arxiv.org/abs/2604.08271">paper</a>'
            '<img src="data:image/png;base64,AAAA"></body></html>')
    assert book.network_assets(page) == [("script", "https://cdn.example.org/mathjax.js"),
                                         ("link", "//fonts.example.org/f.css")]
    (tmp_path / "book").mkdir()
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(page)
    with pytest.raises(SystemExit, match="index.html: <script> https://cdn.example.org"):
        book.check(tmp_path / "book", html)


def test_buttons_point_at_the_repository_only_when_it_is_known(tmp_path, monkeypatch):
    from illusion.book import book_config, repository

    source = tmp_path / "_config.yml"
    source.write_text("title: t\nhtml:\n  home_page_in_navbar: true\n")
    assert "repository" not in book_config(source, None)
    config = book_config(source, ("https://github.com/o/r", "main"))
    assert config["repository"] == {"url": "https://github.com/o/r", "branch": "main",
                                    "path_to_book": ""}
    assert config["html"] == {"home_page_in_navbar": True, "use_repository_button": True}
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    monkeypatch.setenv("ILLUSION_REPOSITORY", "git@github.com:o/r.git")
    monkeypatch.setenv("ILLUSION_BRANCH", "pages")
    assert repository() == ("https://github.com/o/r", "pages")
    monkeypatch.setenv("ILLUSION_REPOSITORY", "https://gitlab.com/o/r")
    assert repository() is None  # Binder and the button need GitHub


def test_rerun_commands_name_the_chapter_and_its_parameters():
    from illusion.book import rerun_commands

    plain = rerun_commands("05_cmf", "default")
    assert "-m illusion.book execute --profile default --chapter 05_cmf" in plain
    assert "papermill book/05_cmf.ipynb 05_cmf.out.ipynb --cwd book -p profile default" in plain
    seeded = rerun_commands("05_cmf", "default", {"seed": 1235})
    assert "--chapter 05_cmf --seed 1235" in seeded and '{"overrides": {"seed": 1235}}' in seeded
    changed = rerun_commands("01_setup", "smoke", {"original.epochs": 3})
    assert "illusion.book execute" not in changed  # its overrides only papermill can pass
    assert """-y '{"overrides": {"original.epochs": 3}}'""" in changed


def test_checks_are_asserted_only_on_a_profiles_own_settings():
    from illusion.book import asserts_checks
    from illusion.config import resolve

    assert asserts_checks(resolve("default"))
    assert asserts_checks(resolve("default", {"seed": 1235}))  # the spread's seeds
    assert not asserts_checks(resolve("default", {"original.epochs": 3}))  # another experiment
    assert not asserts_checks(resolve("smoke"))


def test_a_chapter_saves_its_tables_where_results_saves_them(tmp_path):
    from types import SimpleNamespace

    import pandas as pd

    from illusion.config import resolve
    from illusion.results import save

    table = pd.DataFrame({"model": ["rl"], "accuracy": [12.5]})
    for profile, run in ((resolve("smoke"), "smoke"), (resolve("smoke", {"seed": 7}), "smoke-seed7")):
        chapter = book.Chapter(SimpleNamespace(profile=profile), "02_misalignment", False)
        path = chapter.save(table, "table1")
        assert path == save(table, profile, "02_misalignment", "table1")
        assert path.endswith(f"/{run}/02_misalignment/table1.csv")
        pd.testing.assert_frame_equal(pd.read_csv(path), table)


def test_a_chapter_asserts_its_checks_only_where_they_are_asserted(capsys, monkeypatch):
    from types import SimpleNamespace

    import myst_nb
    import pandas as pd

    from illusion import claims

    wrong = pd.DataFrame({"check": ["c"], "subject": ["rl"], "value": [3.0], "op": ["<="],
                          "threshold": [1.0], "verdict": ["fails"], "expected": ["holds"]})
    exp = SimpleNamespace(profile=SimpleNamespace(name="default"))
    book.Chapter(exp, "01_setup", False).enforce(wrong)
    assert capsys.readouterr().out == ("checks not asserted: smoke profile or overridden "
                                       "settings\n")
    with pytest.raises(AssertionError, match="not the measured one"):
        book.Chapter(exp, "01_setup", True).enforce(wrong)
    book.Chapter(exp, "01_setup", True).enforce(wrong.assign(verdict="holds"))
    assert capsys.readouterr().out == "checks passed\n"

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value: glued.append((name, value)))
    monkeypatch.setattr(claims, "banner", lambda decided, profile, what: (len(decided), profile, what))
    book.Chapter(exp, "01_setup", True).show_verdict(wrong, "Claim 1")
    assert glued == [("verdict", (1, "default", "Claim 1"))]
