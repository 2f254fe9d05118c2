# Two commands build and check everything from a fresh clone:
#   make book   install, fetch the data and MathJax (npm, for offline math), execute every
#               chapter on $(PROFILE), render the HTML, check it (statically, then every page
#               in headless Chromium: tests/test_browser.py, screenshots in _build/screens)
#               (SEED=N: on another seed, its tables under _build/results/$(PROFILE)-seedN)
#   make test   unit tests + nbval of every chapter on the smoke profile shrunk to 4 synthetic
#               classes (tests/tiny.json), reading the store `illusion run` filled for them
#               (sealed: a chapter that computes fails) + the chapters on the
#               paper profiles, on stand-in data (tests/test_paper_chapters.py), on every
#               core (pytest-xdist: one single-threaded worker per core; a module, class or
#               notebook stays on one worker)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
SEED ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# make test's chapters under nbval read this store, filled first by `illusion run` and sealed
NBVAL_STORE := $(CURDIR)/_build/nbval/cache

# MathJax for offline math: the npm package, pinned and checked, unpacked where _config.yml's
# html_static_path finds it (its CHTML output, fonts, TeX extensions, menu and speech).
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX := _build/static/mathjax
MATHJAX_TGZ := _build/npm/mathjax-$(MATHJAX_VERSION).tgz

.PHONY: book test install data mathjax browser clean

install: $(STAMP)

# torch==2.14.1 and torchvision==0.29.1 resolve from the machine's local wheel cache.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $@

# Fashion-MNIST: files already in the data folder, else the Debian package (installed here
# when running as root on Debian), else torchvision's download.
data: install
	@$(PY) -c "from illusion.data import fetch_fashion_mnist as f; f(download=False)" 2>/dev/null \
	 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	      && { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
	           || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; }; } \
	 || true
	$(PY) -c "from illusion.data import fetch_fashion_mnist as f; print('fashion-mnist:', f())"

mathjax: $(MATHJAX)/.version-$(MATHJAX_VERSION)

# npm's own client when present, else the same tarball straight from the npm registry.
$(MATHJAX)/.version-$(MATHJAX_VERSION):
	mkdir -p $(dir $(MATHJAX_TGZ))
	test -f $(MATHJAX_TGZ) \
	 || (cd $(dir $(MATHJAX_TGZ)) && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null) \
	 || curl -fsSL -o $(MATHJAX_TGZ) \
	      https://registry.npmjs.org/mathjax/-/mathjax-$(MATHJAX_VERSION).tgz
	echo "$(MATHJAX_SHA256)  $(MATHJAX_TGZ)" | sha256sum -c --quiet \
	 || { rm -f $(MATHJAX_TGZ); echo "mathjax-$(MATHJAX_VERSION).tgz: wrong SHA-256" >&2; exit 1; }
	rm -rf $(MATHJAX) && mkdir -p $(MATHJAX)
	tar -xzf $(MATHJAX_TGZ) -C $(MATHJAX) --strip-components=2 --wildcards \
	    --exclude='*svg*' --exclude='*-full*' --exclude='node-main.js' 'package/es5/*'
	tar -xzf $(MATHJAX_TGZ) -C $(MATHJAX) --strip-components=1 package/LICENSE
	touch $@

# Chromium and its WebDriver for the browser test of the rendered book: the Debian packages,
# installed here when running as root on Debian; without them tests/test_browser.py skips.
browser:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } \
	 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	      && export DEBIAN_FRONTEND=noninteractive \
	      && { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
	           || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }; }; } \
	 || echo "browser: Chromium not installed (needs root and apt-get); the browser test skips"

# The models and tables first, in one single-threaded process per core (illusion run); then
# the chapters, which only read the store (sealed: what the plan missed is an error), as many
# side by side.
book: data mathjax browser
	$(VENV)/bin/illusion run --profile $(PROFILE) --executor processes $(if $(SEED),--set seed=$(SEED))
	$(PY) -m illusion.book execute --profile $(PROFILE) --jobs $(JOBS) --sealed $(if $(SEED),--seed $(SEED))
	$(PY) -m illusion.book render
	$(PY) -m illusion.book check
	$(PY) -m pytest tests/test_browser.py

test: install
	rm -rf _build/nbval
	$(PY) -m illusion.book prepare --profile smoke --overrides tests/tiny.json --out _build/nbval
	ILLUSION_CACHE=$(NBVAL_STORE) $(VENV)/bin/illusion run --profile smoke \
	    --overrides tests/tiny.json --executor processes >/dev/null
	ILLUSION_CACHE=$(NBVAL_STORE) ILLUSION_SEALED_STORE=$(NBVAL_STORE) OMP_NUM_THREADS=1 \
	    $(PY) -m pytest tests --nbval-lax _build/nbval -n auto --dist loadscope --no-loadscope-reorder --durations=25

clean:
	rm -rf _build book/*.ipynb
