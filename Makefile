# The two commands of the README: `make demo` (GUI; `make demo ARGS=--headless` for the
# headless training demo) and `make test`. Both set up .venv first (scripts/setup_env.sh).
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: env demo test sample-data

$(VENV)/.installed: pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh
	touch $@

env: $(VENV)/.installed

demo: env
	$(PY) -m poco_napari.demo $(ARGS)

test: env
	xvfb-run -a -s "-screen 0 1600x1000x24" $(PY) -m pytest -q -p no:xvfb

sample-data: env
	$(VENV)/bin/poco simulate --sample-data sample_data
