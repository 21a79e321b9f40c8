# VPA workspace. `make demo` and `make test` do all the set-up on a fresh machine (Python 3.11 + pip).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/vpa-*/pyproject.toml)))
PACKAGES := core $(patsubst %/pyproject.toml,%,$(wildcard conformance/pyproject.toml)) $(PLUGINS)
PROVIDER ?= memory

.PHONY: install demo test test-core conformance bench lint clean

install: $(STAMP)

# torch first, pinned: pip takes the CPU build of 2.13.0 from this machine's disk; an unpinned
# torch pulled in by sentence-transformers would be a multi-GB CUDA build.
$(STAMP): $(foreach p,$(PACKAGES),$(p)/pyproject.toml) requirements-dev.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -e "core[sentence-transformers,server,tracing,portability,redis,onnx]" \
		$(foreach p,$(filter-out core,$(PACKAGES)),-e $(p))
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py $(if $(filter-out memory,$(PROVIDER)),--provider $(PROVIDER))

# Core tests, the suite's own tests, then the conformance matrix: one run per store plugin.
test: install
	$(BIN)/python tools/test_matrix.py

test-core: install
	$(BIN)/python -m pytest tests -q

conformance: install
	$(BIN)/python tools/test_matrix.py --only $(PROVIDER)

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check core conformance plugins tests tools examples

clean:
	rm -rf $(VENV) .vpa
