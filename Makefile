# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test install install-dev lint clean-results

# The venv is rebuilt when the pins change. torch is pinned to the CPU build in pyproject.toml; on a GPU
# box install the matching CUDA wheel of the same version first (README: "GPU boxes").
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

demo: $(BIN)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --resources gpu=1

test: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -ra

lint: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

clean-results:
	rm -rf results .snakemake
