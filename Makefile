# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test install install-dev lint clean-results

# The venv is rebuilt when the pins change. Every package comes at the version constraints.txt locks
# (tools/lock/light_env.py writes it; `python tools/lock/light_env.py --venv .venv` compares a venv with it).
# pip installs the tools and torch: it knows where torch's CPU build lies (the project's machines carry the
# wheel and configure pip with it; elsewhere PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu). uv
# then installs everything else from the same lock, torch already satisfied: 70 s instead of pip's 125 s on the
# 2-core box (docs/testing.md). On a GPU box install the matching CUDA wheel first (docs/reference.md,
# "Environments").
# The bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on this project's machines)
# nothing would ever write it, and every process would compile torch, ray and transformers at each import (a
# test suite ran 2x slower).
LOCK := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c $(LOCK)
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c $(LOCK)
define make_venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools uv torch
	$(UV_INSTALL) -e '.$(1)'
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

# Two pytest-xdist workers, whole modules each (a module's pipeline fixture runs once), in collection order
# (tests/conftest.py puts the modules that need the session's demo build last). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

lint: $(BIN)/.installed-dev
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

clean-results:
	rm -rf results .snakemake
