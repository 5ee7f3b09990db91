# ulnet: two commands on a fresh machine.
#   make run    set up .venv and run ulnet on the bundled sample capture
#   make test   set up .venv with the test extras and run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ULNET  := $(VENV)/bin/ulnet
SAMPLE := samples/sample.pcap
RULES  := samples/sample.rules

.PHONY: run test setup setup-test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

# compile every kernel once, on every core (numba caches them; a no-op when warm)
setup: $(VENV)/.installed
	$(ULNET) warm
setup-test: $(VENV)/.installed-test
	$(ULNET) warm

run: setup
	@echo "== ulnet peek $(SAMPLE)"
	$(ULNET) peek $(SAMPLE)
	@echo "== ulnet flows $(SAMPLE)"
	$(ULNET) flows --format jsonl $(SAMPLE)
	@echo "== ulnet stats $(SAMPLE)"
	$(ULNET) stats $(SAMPLE)
	@echo "== ulnet run --rules $(RULES) (policy enforced offline; output in build/)"
	@mkdir -p build
	$(ULNET) check -v $(RULES)
	$(ULNET) run --rules $(RULES) --in lan=$(SAMPLE) --out wan=build/sample-policy.pcap
	@echo "== counters"
	$(ULNET) peek --stats $(SAMPLE) > /dev/null

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup-test
	$(PY) bench/bench_decode.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
