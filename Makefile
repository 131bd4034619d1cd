# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install the locked dependencies, run the end-to-end quickstart
#   make test   - the same environment plus system packages the tests need, then the whole suite
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed-$(shell cat uv.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: bench-site bench-load demo test install system-deps lint clean bench peers screenshots

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --frozen --all-extras --inexact --quiet
	@rm -f $(VENV)/.installed-*
	@touch $@

# PostgreSQL (the metastore's scale-out engine) for the tests that run the catalog on it, and Debian's
# chromium with its chromedriver for the browser tests.
system-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
	  echo "postgresql: present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "postgresql: installing with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
	  echo "postgresql: missing and cannot install it (not root); the PostgreSQL tests will be skipped"; \
	fi
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "chromium: present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium: installing with apt-get (the browser tests of the review pages)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	  echo "chromium: missing and cannot install it (not root); the browser tests will be skipped"; \
	fi

demo: install
	$(VENV)/bin/python examples/quickstart.py

test: install system-deps
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest -q

# The benchmarks (JSON on stdout), with the peers they compare against installed in their own locked
# environment (.venv-peers), so a peer's dependencies never change the versions Brickyard runs with.
PEERS := .venv-peers
peers: $(PEERS)/.installed-$(shell cksum < bench/peers.txt | cut -d' ' -f1)

$(PEERS)/.installed-%: bench/peers.txt | install
	@test -x $(PEERS)/bin/python || $(VENV)/bin/uv venv --quiet --python $(PYTHON) $(PEERS)
	VIRTUAL_ENV=$(PEERS) $(VENV)/bin/uv pip install --quiet --require-hashes -r bench/peers.txt
	@rm -f $(PEERS)/.installed-*
	@touch $@

bench: install peers bench-site bench-load
	$(VENV)/bin/brickyard bench vectorsearch --peer-python $(PEERS)/bin/python
	$(VENV)/bin/brickyard bench ingest
	$(VENV)/bin/brickyard bench retrieval --site /usr/share/doc/python3.11/html

# The documentation site the ingest and docs-retrieval benchmarks read (Debian's python3.11-doc).
bench-site:
	@if [ -d /usr/share/doc/python3.11/html ]; then echo "python3.11-doc: present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-doc >/dev/null; \
	else echo "python3.11-doc: missing; install it or pass --site to the benchmarks"; fi

# wrk, the C load generator the REST scale-out comparison uses (a Python client would take the CPU it measures).
bench-load:
	@if command -v wrk >/dev/null 2>&1; then echo "wrk: present"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	else echo "wrk: missing; the REST scale-out comparison falls back to a Python client"; fi

# The screenshots docs/ui.md and the README show, taken by the Chromium test of the pages.
screenshots: install system-deps
	$(VENV)/bin/python -m pytest -q tests/ui/test_browser.py
	mkdir -p docs/img
	cp reports/ui/table-sample.png docs/img/ui-table.png
	cp reports/ui/playground.png docs/img/ui-playground.png
	cp reports/ui/trace.png docs/img/ui-trace.png
	cp reports/ui/sql-editor.png docs/img/ui-sql.png

lint: install
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .demo
