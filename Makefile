# Two commands build and check everything from a fresh clone:
#   make book   install, fetch the data, execute every chapter on $(PROFILE), render the HTML
#               (SEED=N: on another seed, its tables under _build/results/$(PROFILE)-seedN)
#   make test   unit tests + nbval of every chapter on the smoke profile
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
SEED ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: book test install data clean

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

book: data
	$(PY) -m illusion.book execute --profile $(PROFILE) $(if $(SEED),--seed $(SEED))
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going -q
	$(PY) -m illusion.book check

test: install
	rm -rf _build/nbval
	$(PY) -m illusion.book prepare --profile smoke --out _build/nbval
	ILLUSION_CACHE=$(CURDIR)/_build/nbval/cache $(PY) -m pytest tests --nbval-lax _build/nbval

clean:
	rm -rf _build book/*.ipynb
