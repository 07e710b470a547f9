# The two entry points of the README. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install

$(BIN)/repertory: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, at a CPU build's version: chromadb's offline embedding model (dev extra) needs
	# it, and left to the resolver pip would take a CUDA build of several GB.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/repertory

install: $(BIN)/repertory

demo: install
	$(BIN)/repertory demo

test: install
	bash .ci/ensure-redis
	bash .ci/ensure-chromium
	# Two workers: the Ray tests mostly wait (actor start-up, model delays), so two overlap well
	# (worksteal: an idle worker takes tests queued on the other, so no long file is left to one);
	# every worker starts its own local Ray, and tests share nothing global (namespaces, prefixes).
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal

bench: install
	$(BIN)/repertory bench all
