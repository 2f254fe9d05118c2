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
