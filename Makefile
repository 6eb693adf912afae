# The two commands of the README: `make demo` and `make test`. Both set up everything first.
# Python 3.12 or later: its asyncio watches child processes with pidfds instead of a
# thread per child, which the worker spawns hundreds of per second.
PYTHON ?= $(shell for p in python3.13 python3.12 $(HOME)/.pyenv/versions/3.1[23]*/bin/python3.1[23]; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && echo $$p && break; done)
VENV ?= .venv
PY := $(VENV)/bin/python
# Airflow cannot share a venv with Faust (croniter), so the executor side gets its own.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_VERSION := 3.3.2
# The bench's peer, in a venv of its own: Celery's dependencies are not the worker's.
CELERY_VENV ?= .venv-celery

.PHONY: demo test unit lint bench kafka redis-server chromium clean

$(VENV)/installed: setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found; set PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,test]'
	touch $@

$(VENV)/bench-installed: $(VENV)/installed
	$(PY) -m pip install -q -e '.[worker,bench]'
	touch $@

$(AIRFLOW_VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -q 'apache-airflow==$(AIRFLOW_VERSION)' -e '.[executor]'
	touch $@

$(CELERY_VENV)/installed: Makefile
	$(PYTHON) -m venv $(CELERY_VENV)
	$(CELERY_VENV)/bin/python -m pip install -q 'celery[redis]>=5.5,<6'
	touch $@

redis-server:
	@command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; }

# The dashboard's browser test drives Debian's chromium: Playwright cannot download its own here.
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

kafka: $(VENV)/installed
	$(PY) scripts/local_kafka.py fetch

demo: $(VENV)/installed kafka
	$(PY) scripts/demo.py

# Lint and the fast tier first, while Airflow's venv is installed: they fail in a minute, before the
# broker and Airflow start. Then three processes, each file on one of them with its own broker;
# the slowest tests are listed at the end.
test: $(VENV)/installed
	$(MAKE) --no-print-directory -j 3 lint unit $(AIRFLOW_VENV)/installed kafka chromium
	AIRKAFKA_AIRFLOW_VENV=$(AIRFLOW_VENV) $(PY) -m pytest -n 3 --dist loadfile --durations=15 tests/integration

# The tests that need neither a broker nor Airflow.
unit: $(VENV)/installed
	$(PY) -m pytest -q -n 2 tests/unit

lint: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/bench-installed $(CELERY_VENV)/installed kafka redis-server
	AIRKAFKA_CELERY_VENV=$(CELERY_VENV) $(PY) bench/compare.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) $(CELERY_VENV) .cache *.egg-info
