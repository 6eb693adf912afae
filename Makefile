# The two commands of the README: `make demo` and `make test`. Both set up everything first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench kafka clean

$(VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,test]'
	touch $@

kafka:
	$(PYTHON) scripts/local_kafka.py fetch

demo: $(VENV)/installed kafka
	$(PY) scripts/demo.py

test: $(VENV)/installed kafka
	$(PY) -m pytest

bench: $(VENV)/installed kafka
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) .cache *.egg-info
