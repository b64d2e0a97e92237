# The two commands of the README: `make demo` (set up and run the main job) and
# `make test` (set up and run the tests). Both create .venv and install into it.
PYTHON ?= $(shell for p in python3.12 $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) python3.13 python3.11 python3; do \
	$$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 14)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "pyude needs Python 3.11-3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pyude fit examples/michaelis_menten/problem.yaml --out out/michaelis_menten

# Two worker processes (the suite is mostly single-threaded XLA compilation). A test whose
# worker process dies (CI once saw a native abort, "Fatal Python error: Aborted", that no
# local run reproduced) is run once more in a fresh worker; an ordinary failure is never
# rerun: --only-rerun matches no error message, and crashes bypass that filter.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --reruns 1 --only-rerun 'pyude: rerun crashed workers only'


bench: $(STAMP)
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) out
