# Feast feature store for movie recommendation: the two README commands are `make course` and `make test`.
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
NOTEBOOKS := notebooks
EXECUTED := build/executed
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# The enterprise profile needs Redis and PostgreSQL before data is loaded or definitions applied;
# scaleout needs PostgreSQL (its registry) and the Redis Cluster.
PROFILE_SERVICES := $(if $(filter enterprise,$(COURSE_PROFILE)),services)$(if $(filter scaleout,$(COURSE_PROFILE)),services-cluster)
# Korean edition (한국어판, course_lib/edition.py): `make course COURSE_LANG=ko` runs notebooks_ko/.
COURSE_LANG ?= en
$(if $(filter-out en ko,$(COURSE_LANG)),$(error COURSE_LANG must be en or ko, not "$(COURSE_LANG)"))
EDITION := $(if $(filter ko,$(COURSE_LANG)),notebooks_ko,$(NOTEBOOKS))
# A class without internet (docs/instructor_guide.md): `make wheelhouse` puts every locked package in wheelhouse/
# while online; on the class machines `make venv WHEELHOUSE=wheelhouse` then installs from that folder only.
WHEELHOUSE ?=
WHEELHOUSE_LOCK ?= requirements.lock
PIP_SOURCE := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE))

.PHONY: bench venv dev lock wheelhouse lint services services-cluster services-cluster-down data apply course lab test exercises translations clean

venv: $(STAMP)

# Every package at its locked version (requirements.lock), then the course itself without resolving
# anything; again only when the lock or pyproject.toml changes. The kernelspec makes Jupyter's
# `python3` run this venv. Nothing beyond Python, venv and pip is needed.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_SOURCE) -r requirements.lock
	$(BIN)/pip install $(PIP_SOURCE) --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

# The `dev` extra (pytest, pytest-timeout, nbval, ruff, mypy, uv), locked with the same versions of everything else.
dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/pip install $(PIP_SOURCE) -r requirements-dev.lock
	touch $@

# Regenerate both locks from pyproject.toml (one resolution for Python 3.10-3.12; the dev lock is
# constrained to the runtime lock). Run after changing a dependency, then commit the locks.
lock: $(DEV_STAMP)
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.10 --custom-compile-command "make lock" \
		-o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra dev --constraint requirements.lock --universal \
		--python-version 3.10 --custom-compile-command "make lock" -o requirements-dev.lock -q

# Every package of $(WHEELHOUSE_LOCK) as a wheel (a package published only as source is built here), plus the
# build backend that the editable install of the course needs, for this machine's OS and Python version.
# Run it online on a machine like the class machines; copy wheelhouse/ with the course. The test tools as
# well: `make wheelhouse WHEELHOUSE_LOCK=requirements-dev.lock` (then `make dev WHEELHOUSE=wheelhouse`).
wheelhouse:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip wheel --wheel-dir $(or $(WHEELHOUSE),wheelhouse) -r $(WHEELHOUSE_LOCK) "setuptools>=68"

# Lint and types: ruff (configured in pyproject.toml) and mypy on the package.
lint: $(DEV_STAMP)
	$(BIN)/ruff check course_lib feature_repo tests
	$(BIN)/mypy

services:
	bash .ci/services.sh

# The scaleout profile's 3-master Redis Cluster at FEAST_REDIS_CLUSTER_NODES (its registry is in PostgreSQL).
services-cluster: services $(STAMP)
	bash .ci/cluster.sh up

# Stops only the cluster processes (or the compose service) that services-cluster started.
services-cluster-down: $(STAMP)
	bash .ci/cluster.sh down

data: $(STAMP) $(PROFILE_SERVICES)
	$(BIN)/course data

apply: data
	$(BIN)/course apply

course: apply
	$(PY) -m course_lib.notebooks --out $(EXECUTED)$(if $(filter ko,$(COURSE_LANG)),/ko) $(EDITION)

# Learner copies of the notebooks in exercises/: solutions stubbed, outputs cleared
# (tests/test_exercises.py fails when they are out of date; `make test` collects only tests/ and notebooks/).
# Also regenerates the Korean notebooks and learner copies (notebooks_ko/, exercises_ko/) from the English ones.
exercises: $(STAMP)
	$(PY) -m course_lib.exercises --out exercises $(NOTEBOOKS)
	$(PY) -m course_lib.translations generate

# Korean edition: regenerate notebooks_ko/ and exercises_ko/, then print what is left to translate
# (fails when a notebook or document that translations/ko/manifest.yml requires complete is not).
translations: $(STAMP)
	$(PY) -m course_lib.translations generate
	$(PY) -m course_lib.translations status

# The full benchmark (50k users, 1M events; several minutes); results and plots go to bench/
bench: $(STAMP) services
	$(BIN)/course bench --profile enterprise --size full --json bench/results.json --plots bench

# JupyterLab on the repository, both editions: notebooks/ and notebooks_ko/ (solutions), exercises/ and
# exercises_ko/ (learner copies). The Korean UI: Settings > Language > 한국어 (대한민국).
# Jupyter refuses to run as root without --allow-root (containers, cloud machines).
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) --notebook-dir=.

# Lint and types, then unit and integration tests (all profiles; scaleout's need the cluster) plus nbval over
# every notebook, in one pytest run.
test: lint services services-cluster apply
	$(BIN)/pytest tests $(wildcard $(NOTEBOOKS)) $(NBVAL) --durations=30

clean:
	rm -rf var build
