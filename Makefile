# Feast feature store for movie recommendation: the two README commands are `make course` and `make test`.
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
NOTEBOOKS := notebooks
EXECUTED := build/executed
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# The enterprise profile needs Redis and PostgreSQL before data is loaded or definitions applied.
PROFILE_SERVICES := $(if $(filter enterprise,$(COURSE_PROFILE)),services)

.PHONY: venv services data apply course lab test clean

venv: $(STAMP)

# Re-run only when pyproject.toml changes; the kernelspec makes Jupyter's `python3` run this venv.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e .
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

services:
	bash .ci/services.sh

data: $(STAMP) $(PROFILE_SERVICES)
	$(BIN)/course data

apply: data
	$(BIN)/course apply

course: apply
	$(PY) -m course_lib.notebooks --out $(EXECUTED) $(NOTEBOOKS)

lab: $(STAMP)
	$(BIN)/jupyter lab $(NOTEBOOKS)/

# Unit and integration tests (both profiles) plus nbval over every notebook, in one pytest run.
test: services apply
	$(BIN)/pytest tests $(wildcard $(NOTEBOOKS)) $(NBVAL)

clean:
	rm -rf var build
