# `make run` and `make test` set up .venv on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: run run-moons test test-claims test-fast bench readme-figures clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

# The main job: rerun every lesson of docs/lessons.md; ends with every lesson's claims (k of N seeds, interval).
run: $(STAMP)
	$(BIN)/dlbasics lesson all

# The single-config job `make run` used to be: train the L7 moons MLP, then test its last checkpoint.
run-moons: $(STAMP)
	$(BIN)/dlbasics fit --config configs/moons_mlp.yaml --trainer.enable_progress_bar false
	$(BIN)/dlbasics test --config configs/moons_mlp.yaml --trainer.enable_progress_bar false \
		--ckpt_path "$$(ls -td lightning_logs/moons_mlp/version_*/checkpoints/last.ckpt | head -n 1)"

# Every test, the slow ones included, except the lessons' claims at their published seeds (test-claims).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not claims"

# The lessons rerun at their published settings and seeds: every claim must hold (about 25 minutes on 2 cores).
# CI runs it after `make test`.
test-claims: $(STAMP)
	$(BIN)/python -m pytest -q -m claims

# Only the fast tests, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Benchmarks (not tests): raw PyTorch loops vs the dlbasics lesson runs, interleaved; writes benchmarks/RESULTS.md;
# then the small lessons at 5 seeds against 1 seed, side by side (printed). Takes about 25 minutes on 2 cores; run
# it on an otherwise idle machine.
bench: $(STAMP)
	$(BIN)/python -m benchmarks
	$(BIN)/python -m benchmarks.lesson_seeds

# The README's figures (docs/figures/*.png), redrawn from the L2 and L4 lessons as the code draws them today.
readme-figures: $(STAMP)
	$(BIN)/python docs/readme_figures.py

clean:
	rm -rf lightning_logs .pytest_cache
