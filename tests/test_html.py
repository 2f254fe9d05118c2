"""Static checks of the rendered book (``_build/html``, from ``make book``): it reads offline and
shows no configuration dump unfolded. Skipped when the book has not been built."""

from html.parser import HTMLParser
from pathlib import Path

import pytest

from illusion import book

HTML = Path(__file__).resolve().parents[1] / "_build" / "html"
# A key of every profile's resolved configuration, found in nothing else the book prints.
DUMP_MARKER = '"train_per_class"'

pytestmark = pytest.mark.skipif(
    not (HTML / "index.html").is_file(),
    reason=f"{HTML} does not exist: build the book first (make book)")


def pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.relative_to(HTML).parts)


class Folds(HTMLParser):
    """Where the configuration dump appears (inside a <details> or not) and the summaries of
    the <details> elements."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # open <details>
        self.in_summary = False
        self.summaries, self.dump_folded = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.depth += 1
        elif tag == "summary":
            self.in_summary = True
            self.summaries.append("")

    def handle_endtag(self, tag):
        if tag == "details":
            self.depth = max(0, self.depth - 1)
        elif tag == "summary":
            self.in_summary = False

    def handle_data(self, data):
        if self.in_summary:
            self.summaries[-1] += data
        if DUMP_MARKER in data:
            self.dump_folded.append(self.depth > 0)


def test_no_page_loads_anything_from_the_network():
    online = {str(p.relative_to(HTML)): book.network_assets(p.read_text(encoding="utf-8"))
              for p in pages()}
    assert not {page: found for page, found in online.items() if found}


def test_math_is_rendered_by_the_books_own_mathjax():
    page = (HTML / "book" / "03_neural_collapse.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-mml-chtml.js" in page
    assert (HTML / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_thebe_is_not_loaded():
    for page in pages():
        assert "THEBE_JS_URL" not in page.read_text(encoding="utf-8"), page


CHAPTERS = [p.stem for p in book.chapters(HTML.parents[1] / "book")]


@pytest.mark.parametrize("name", CHAPTERS)
def test_opening_configuration_is_folded(name):
    page = HTML / "book" / f"{name}.html"
    folds = Folds()
    folds.feed(page.read_text(encoding="utf-8"))
    assert folds.dump_folded, f"{page}: no resolved configuration shown"
    # The opening's (a chapter may show it again on purpose: the reproducibility chapter's
    # "Configuration" section).
    assert folds.dump_folded[0], f"{page}: the resolved configuration is shown unfolded"
    assert "resolved configuration" in [s.strip() for s in folds.summaries]


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_opening_is_quiet(name):
    text = (HTML / "book" / f"{name}.html").read_text(encoding="utf-8")
    assert "TqdmWarning" not in text and "IProgress not found" not in text
    assert "# Parameters" not in text, "papermill's injected-parameters cell is shown"
