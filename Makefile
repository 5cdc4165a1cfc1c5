# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := runs/demo
PYTEST_ARGS ?=

.PHONY: install demo test bench leaderboard clean

install: $(STAMP)

# torch and torchvision first, by name, so pip picks the build for this machine; then the project.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch torchvision
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# Offline quickstart: train vanilla and RepFair-GAN on digits-bicolor, score both, print the leaderboard.
demo: install
	$(BIN)/fairbench tasks
	$(BIN)/fairbench run --method vanilla --task digits-bicolor --out $(DEMO)
	$(BIN)/fairbench run --method repfair --task digits-bicolor --out $(DEMO)
	$(BIN)/fairbench score $(DEMO)/digits-bicolor/vanilla/seed0/checkpoint.pt --out $(DEMO)/results/vanilla.json
	$(BIN)/fairbench score $(DEMO)/digits-bicolor/repfair/seed0/checkpoint.pt --out $(DEMO)/results/repfair.json
	$(BIN)/fairbench leaderboard --results $(DEMO)/results --out $(DEMO)

# pytest exits 5 when a selection (PYTEST_ARGS=-k ...) is empty; that is not a failure.
test: install
	$(BIN)/pytest tests $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: install
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/score.py

# Everything derived from leaderboard/results: report charts, leaderboard.md, .csv and .html.
leaderboard: install
	FAIRBENCH=$(BIN)/fairbench PYTHON=$(BIN)/python leaderboard/regenerate.sh

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
