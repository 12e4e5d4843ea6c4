# Two commands: `make run` starts everything, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup run test chaos fuzz lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# the console's browser tests drive Debian's Chromium (never a browser download), with a
# Chinese font so its pages in Chinese render (and their screenshots read) as people see them
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
BROWSER_PACKAGES := chromium fonts-wqy-microhei
$(CHROMIUM) $(CJK_FONT):
	@command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) (Debian: apt-get install $(BROWSER_PACKAGES))"; exit 1; }
	apt-get install -y -q $(BROWSER_PACKAGES) || { apt-get update -q && apt-get install -y -q $(BROWSER_PACKAGES); }

setup: $(STAMP)

run: setup
	$(PY) -m scripts.run

test: setup $(CHROMIUM) $(CJK_FONT)
	$(PY) -m pytest -q -p no:cacheprovider

# the fault-injection suite at size: 300 orders, a Temporal outage longer than the sandbox
# gateway's retry budget, the Temporal server frozen 20 s, PostgreSQL killed for 30 s (make
# test runs it small)
chaos: setup
	CHAOS_ORDERS=$${CHAOS_ORDERS:-300} CHAOS_OUTAGE_SECONDS=$${CHAOS_OUTAGE_SECONDS:-60} \
	CHAOS_FREEZE_SECONDS=$${CHAOS_FREEZE_SECONDS:-20} \
	CHAOS_DB_OUTAGE_SECONDS=$${CHAOS_DB_OUTAGE_SECONDS:-30} \
	CHAOS_REFUND_FAULT_SECONDS=$${CHAOS_REFUND_FAULT_SECONDS:-60} \
	CHAOS_CONCURRENCY=$${CHAOS_CONCURRENCY:-10} $(PY) -m pytest -q -p no:cacheprovider -s tests/chaos

# schemathesis with every check, as a buyer, a merchant and an admin, against the processes
# `make run` starts (make test runs a few examples of it); FUZZ_EXAMPLES per operation
fuzz: setup
	$(PY) -m scripts.fuzz --examples $${FUZZ_EXAMPLES:-100}

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: setup
	$(PY) -m bench.lifecycle --db sqlite
	$(PY) -m bench.lifecycle --db postgres
	$(PY) -m bench.lifecycle --db postgres --workers 2 --apis 2 --batches 4
	$(PY) -m bench.hot_sku --db postgres
	$(PY) -m bench.open_orders --db postgres
	$(PY) -m bench.search --db sqlite
	$(PY) -m bench.search --db postgres

clean:
	rm -rf .data build *.egg-info
