# Prism: the two entry points are `make demo` and `make test`; both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test eval bench clean system-deps

# Debian packages: espeak-ng synthesises the demo's and tests' speech; chromium runs the web
# chat's browser test (driven by Playwright).
system-deps:
	@{ command -v espeak-ng >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng chromium >/dev/null; \
	  else echo "please install espeak-ng and chromium (sudo apt-get install espeak-ng chromium)"; exit 1; fi; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: system-deps $(STAMP)
	$(BIN)/prism demo

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q

MOVIELENS ?= ../shared/data/movielens-100k-mm

# The full offline evaluation: ingest MovieLens-100K-MM (idempotent), then every protocol.
eval: system-deps $(STAMP)
	$(BIN)/prism ingest $(MOVIELENS)
	$(BIN)/prism eval --suite full

bench: system-deps $(STAMP)
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
