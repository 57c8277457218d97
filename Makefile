# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test install install-dev lint clean-results

# The venv is rebuilt when the pins change. Every package comes at the version constraints.txt locks
# (tools/lock/light_env.py writes it; `python tools/lock/light_env.py --venv .venv` compares a venv with it).
# torch is locked to the CPU build; on a GPU box install the matching CUDA wheel of the same version first
# (README: "GPU boxes").
LOCK := constraints.txt
$(BIN)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) pip setuptools
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed pyproject.toml $(LOCK)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
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
