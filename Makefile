# Two entry points do all set-up: `make demo` and `make test`. Both create .venv idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_ENV = HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install demo demo-fast demo-seeds test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,faiss,demo,serve,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(TEST_ENV) $(PY) examples/toy_reproduction.py --out results $(DEMO_ARGS)

# The README's results block: three seeds (about an hour on 2 cores), aggregated with intervals.
demo-seeds: $(STAMP)
	$(TEST_ENV) $(PY) examples/toy_reproduction.py --out results --seeds 0,1,2 --update-readme $(DEMO_ARGS)

demo-fast: $(STAMP)
	$(TEST_ENV) $(PY) examples/toy_reproduction.py --out results --fast $(DEMO_ARGS)

test: $(STAMP)
	@home=$$(mktemp -d); trap 'rm -rf "$$home"' EXIT; \
	$(TEST_ENV) HF_HOME=$$home $(PY) -m ruff check . && \
	$(TEST_ENV) HF_HOME=$$home $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(TEST_ENV) $(PY) -m benchmarks $(BENCH)

clean:
	rm -rf $(VENV) results .pytest_cache
