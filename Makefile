# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test install install-dev lint clean-results

# The venv is rebuilt when the pins change. Every package comes at the version constraints.txt locks
# (tools/lock/light_env.py writes it; `python tools/lock/light_env.py --venv .venv` compares a venv with it).
# torch is locked to the CPU build; on a GPU box install the matching CUDA wheel of the same version first
# (README: "GPU boxes"). --no-compile: Python writes bytecode on first import, for the modules a run uses;
# compiling all of torch, ray and transformers up front was about 80 of the 130 s an install took here.
LOCK := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile -c $(LOCK)
define make_venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) -e '.$(1)'
endef

$(BIN)/.installed: pyproject.toml $(LOCK)
	$(call make_venv,)
	touch $@

# One pip run for the project and its test tools (the project alone first would resolve everything twice).
$(BIN)/.installed-dev: pyproject.toml $(LOCK)
	$(call make_venv,[dev])
	touch $(BIN)/.installed $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

demo: $(BIN)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --resources gpu=1

# One process: two pytest-xdist workers (and the demo built beside them) made it slower on two cores: 30 min,
# each Ray and torch job about three times slower (benchmarks/test_suite_time.sh at commit 4a5444c).
test: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -ra

lint: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

clean-results:
	rm -rf results .snakemake
