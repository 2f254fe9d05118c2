"""The rendered book (``_build/html``, from ``make book``) in a real browser: every page opened
in headless Chromium, served over a local HTTP server, with the network closed to anything else.

Per page: every image has loaded; MathJax has finished and left no raw TeX delimiters in the
visible text, and no TeX error; every local link resolves to a file (and its anchor, if any,
to an element of that file); the browser console shows no error; no cell output shows a Python
traceback, a ``...Warning:`` line or a progress bar. Full-page screenshots of each page at
desktop (1280 px) and phone (400 px) width go to ``_build/screens/``.

Skipped when the book has not been built, or when Chromium or its driver is missing (Debian:
``apt-get install chromium chromium-driver``; ``make browser`` does it when run as root).
``ILLUSION_CHROMIUM`` and ``ILLUSION_CHROMEDRIVER`` name other binaries.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENS = ROOT / "_build" / "screens"
WIDTHS = {"desktop": (1280, 900), "phone": (400, 860)}
# Longest a page may take to load its images and typeset its math.
PAGE_TIMEOUT_S = 60


def _binary(env: str, *candidates: str) -> str | None:
    """The executable named by ``$env``, else the first of ``candidates`` found (a name is
    looked up on the PATH)."""
    for name in [os.environ[env]] if os.environ.get(env) else candidates:
        found = shutil.which(name)  # a path: itself, if executable
        if found:
            return found
    return None


# Debian's /usr/bin/chromium is a shell wrapper around /usr/lib/chromium/chromium.
CHROMIUM = _binary("ILLUSION_CHROMIUM", "/usr/lib/chromium/chromium", "chromium",
                   "chromium-browser", "google-chrome")
CHROMEDRIVER = _binary("ILLUSION_CHROMEDRIVER", "chromedriver", "/usr/lib/chromium/chromedriver")

pytestmark = [
    pytest.mark.skipif(not (HTML / "index.html").is_file(),
                       reason=f"{HTML} does not exist: build the book first (make book)"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium or chromedriver not found: apt-get install chromium "
                              "chromium-driver (make browser), or set ILLUSION_CHROMIUM and "
                              "ILLUSION_CHROMEDRIVER"),
]

REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"', re.I)


def html_pages() -> list[Path]:
    if not HTML.is_dir():
        return []
    return sorted(p for p in HTML.rglob("*.html")
                  if not {"_static", "_sources"} & set(p.relative_to(HTML).parts))


def is_redirect(page: Path) -> bool:
    return bool(REDIRECT.search(page.read_text(encoding="utf-8", errors="replace")[:2000]))


PAGES = [str(p.relative_to(HTML)) for p in html_pages() if not is_redirect(p)]
REDIRECTS = [str(p.relative_to(HTML)) for p in html_pages() if is_redirect(p)]

# A cell output that shows one of these went wrong or is noisy: a Python traceback, a warning
# as Python's warnings module prints it (``file.py:12: UserWarning: ...``) or a bare
# ``Warning:`` line, a text progress bar (tqdm's ``45%|####  | 9/20 [00:01<00:02, 5.2it/s]``) or
# the text stand-in of a widget progress bar.
SHOWN_PROBLEMS = {
    "traceback": re.compile(r"Traceback \(most recent call last\)"),
    "warning": re.compile(r"(?m)(?:\b[A-Z]\w*Warning|^\s*Warning):"),
    "progress bar": re.compile(r"\d+%\|.*\||[\u2588\u258f\u258e\u258d\u258c\u258b\u258a\u2589]{3}"
                               r"|\d+(?:\.\d+)?(?:it/s|s/it)\]|IProgress not found"
                               r"|(?:HBox|FloatProgress|IntProgress)\(")
}
# The browser asks for /favicon.ico by itself (the book declares no icon); its 404 is no error of
# the book's.
BROWSER_OWN = re.compile(r"/favicon\.ico - Failed to load resource")
RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


# --- what the browser runs on each page ------------------------------------------------------

WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
const limit = Date.now() + arguments[0] * 1000;
const images = Array.from(document.images);
images.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
const loaded = Promise.all(images.map(i => i.complete ? null : new Promise(r => {
  i.addEventListener('load', r); i.addEventListener('error', r);
})));
const math = new Promise(resolve => {
  (function poll() {
    if (!document.querySelector('script[src*="mathjax"]')) return resolve('no mathjax');
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise)
      return mj.startup.promise.then(() => resolve('typeset'), e => resolve('failed: ' + e));
    if (Date.now() > limit) return resolve('MathJax did not start');
    setTimeout(poll, 50);
  })();
});
Promise.all([loaded, math, document.fonts.ready]).then(([_, m]) => done(m));
"""

BROKEN_IMAGES = """
return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => i.getAttribute('src'));
"""

# Text a reader sees outside code and rendered math: the text nodes of rendered elements.
VISIBLE_PROSE = """
const skip = 'script, style, noscript, template, pre, code, textarea, mjx-container, .MathJax';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const parts = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const el = node.parentElement;
  if (!el || el.closest(skip) || !node.textContent.trim()) continue;
  if (el.getClientRects().length === 0) continue;  // not rendered (display: none, ...)
  parts.push(node.textContent);
}
return parts.join(' ');
"""

MATH_ERRORS = """
return Array.from(document.querySelectorAll('mjx-merror'))
  .map(e => e.getAttribute('data-mjx-error') || e.textContent);
"""

LINKS = """
return Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href]);
"""

# Every figure of a cell output: its own width and the width it is shown at (CSS pixels).
FIGURES = """
return Array.from(document.querySelectorAll('.cell_output img'))
  .map(i => [i.getAttribute('src'), i.naturalWidth, i.getBoundingClientRect().width]);
"""

TABLES = """
return document.querySelectorAll('.cell_output table').length;
"""

OUTPUTS = """
return Array.from(document.querySelectorAll('.cell_output')).map(e => e.textContent);
"""


@dataclass
class Visit:
    page: str
    mathjax: str = ""
    broken_images: list = field(default_factory=list)
    raw_math: list = field(default_factory=list)
    math_errors: list = field(default_factory=list)
    broken_links: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    shown_problems: list = field(default_factory=list)
    screenshots: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    tables: int = 0


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                     "--disable-extensions", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--mute-audio",
                     "--force-device-scale-factor=1", "--window-size=1280,900",
                     # The book reads offline: any host but the local server is unreachable, so
                     # a page that fetches from the network logs a console error.
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The chromedriver given here is used as it is (Selenium Manager downloads nothing).
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(PAGE_TIMEOUT_S)
    browser.set_script_timeout(PAGE_TIMEOUT_S + 10)
    yield browser
    browser.quit()


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(unquote(m.group(1))
                     for m in re.finditer(r'\b(?:id|name)\s*=\s*"([^"]*)"', text))


def local_file(url: str, base: str) -> Path:
    path = unquote(urlsplit(url).path)
    rel = path[len(urlsplit(base).path):] if path.startswith(urlsplit(base).path) else path
    target = HTML / rel.lstrip("/")
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


def broken_links(links, base: str) -> list[str]:
    broken = []
    for raw, absolute in links:
        raw = raw.strip()
        if not raw or SCHEME.match(raw) or raw.startswith("//"):
            continue
        target = local_file(absolute, base)
        fragment = unquote(urlsplit(absolute).fragment)
        if not target.is_file():
            broken.append(f"{raw} (no file {target.relative_to(HTML)})")
        elif fragment and target.suffix == ".html" and fragment not in anchors(target):
            broken.append(f"{raw} (no #{fragment} in {target.relative_to(HTML)})")
    return sorted(set(broken))


def screenshot(browser, name: str, width: int, height: int) -> Path:
    """A full-page PNG at ``width`` CSS pixels (the phone width emulates a mobile viewport)."""
    import base64

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 800})
    browser.execute_script("return new Promise(r => requestAnimationFrame(() => "
                           "requestAnimationFrame(r)))")
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": max(width, size["width"]),
                 "height": min(size["height"], 60_000), "scale": 1}})
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def unique(items) -> list:
    return list(dict.fromkeys(items))


_visits: dict[str, Visit] = {}


def visit(browser, base: str, page: str) -> Visit:
    """Open ``page`` once; every test of that page reads what this found."""
    if page in _visits:
        return _visits[page]
    result = _visits[page] = Visit(page)
    browser.get_log("browser")  # drop what an earlier page left
    desktop = WIDTHS["desktop"]
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": desktop[0], "height": desktop[1], "deviceScaleFactor": 1, "mobile": False})
    browser.get(base + page)
    result.mathjax = browser.execute_async_script(WAIT_FOR_PAGE, PAGE_TIMEOUT_S)
    result.broken_images = browser.execute_script(BROKEN_IMAGES)
    prose = browser.execute_script(VISIBLE_PROSE)
    result.raw_math = unique(f"{m.group()} in ...{prose[max(0, m.start() - 40):m.end() + 40]}..."
                             for m in RAW_MATH.finditer(prose))
    result.math_errors = browser.execute_script(MATH_ERRORS)
    result.broken_links = broken_links(browser.execute_script(LINKS), base)
    result.figures = browser.execute_script(FIGURES)
    result.tables = browser.execute_script(TABLES)
    result.shown_problems = unique(
        f"{kinds[0]}: {line.strip()[:200]}"
        for text in browser.execute_script(OUTPUTS) for line in text.splitlines()
        if (kinds := [kind for kind, pattern in SHOWN_PROBLEMS.items() if pattern.search(line)]))
    stem = page.removesuffix(".html").replace("/", "__")
    for label, (width, height) in WIDTHS.items():
        result.screenshots.append(screenshot(browser, f"{stem}-{label}.png", width, height))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    result.console_errors = [entry["message"] for entry in browser.get_log("browser")
                             if entry["level"] == "SEVERE"
                             and not BROWSER_OWN.search(entry["message"])]
    return result


@pytest.fixture(scope="module")
def opened(driver, server):
    return lambda page: visit(driver, server, page)


def check(found: list, what: str):
    if found:
        pytest.fail(f"{what}:\n  " + "\n  ".join(map(str, found)), pytrace=False)


def test_the_book_has_pages():
    assert PAGES, f"no HTML page under {HTML}"
    assert any(p.startswith("book/") for p in PAGES), "no chapter page"


@pytest.mark.parametrize("page", REDIRECTS)
def test_redirect_targets_exist(page):
    text = (HTML / page).read_text(encoding="utf-8")
    target = re.search(r'url=([^"\'>\s]+)', text, re.I).group(1)
    assert (HTML / page).parent.joinpath(unquote(target.split("#")[0])).is_file(), target


@pytest.mark.parametrize("page", PAGES)
def test_images_load(opened, page):
    check(opened(page).broken_images, "images that did not load")


@pytest.mark.parametrize("page", PAGES)
def test_math_is_rendered(opened, page):
    found = opened(page)
    assert found.mathjax in ("typeset", "no mathjax"), f"{page}: MathJax {found.mathjax}"
    check(found.raw_math, "raw TeX delimiters left in the visible text")
    check(found.math_errors, "TeX errors")


@pytest.mark.parametrize("page", PAGES)
def test_local_links_resolve(opened, page):
    check(opened(page).broken_links, "local links to nothing")


@pytest.mark.parametrize("page", PAGES)
def test_console_has_no_errors(opened, page):
    check(opened(page).console_errors, "errors in the browser console")


@pytest.mark.parametrize("page", PAGES)
def test_outputs_show_no_traceback_warning_or_progress_bar(opened, page):
    check(opened(page).shown_problems, "cell outputs that show a problem")


def notebook_outputs(page: str) -> tuple[int, int]:
    """The figures (PNG outputs) and HTML tables the executed notebook behind ``page`` holds;
    (0, 0) for a page that is no notebook."""
    import json

    notebook = ROOT / Path(page).with_suffix(".ipynb")
    if not notebook.is_file():
        return 0, 0
    outputs = [out.get("data", {}) for cell in json.loads(notebook.read_text())["cells"]
               if cell["cell_type"] == "code"
               and "remove-output" not in cell.get("metadata", {}).get("tags", [])
               for out in cell.get("outputs", [])]
    return (sum("image/png" in data for data in outputs),
            sum("<table" in "".join(data.get("text/html", "")) for data in outputs))


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_and_table_of_the_chapter_is_shown(opened, page):
    figures, tables = notebook_outputs(page)
    found = opened(page)
    assert len(found.figures) == figures, f"{page}: {len(found.figures)} of {figures} figures"
    assert found.tables >= tables, f"{page}: {found.tables} of {tables} tables"


# A figure drawn wider than the column is shrunk with its text: seaborn's "notebook" context
# draws 11-12 pt labels, so a figure shown at less than 1/1.3 of its size has text under 9 pt.
MAX_SHRINK = 1.3


@pytest.mark.parametrize("page", PAGES)
def test_figures_are_drawn_for_the_column(opened, page):
    check([f"{src}: {natural} px shown at {shown:.0f} px ({natural / shown:.2f}x)"
           for src, natural, shown in opened(page).figures
           if shown > 0 and natural / shown > MAX_SHRINK], "figures shrunk to unreadable text")


@pytest.mark.parametrize("page", PAGES)
def test_screenshots_are_taken(opened, page):
    for path in opened(page).screenshots:
        assert path.is_file() and path.stat().st_size > 1000, path
