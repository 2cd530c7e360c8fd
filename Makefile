# The two commands of the course:
#   make lab    set up .venv (if needed) and open the course in JupyterLab
#   make test   set up .venv (if needed) and run the whole test suite
# Both reuse .venv, with nnlib and the course's grader (course/, nnlib-course) installed
# in editable mode; it is re-installed only when pyproject.toml or course/pyproject.toml
# changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?=
# pytest processes per run (pytest-xdist): "auto" is one per core; 0 runs the tests in
# pytest's own process (e.g. for pdb: make test WORKERS=0 PYTEST_ARGS="-x --pdb").
WORKERS ?= auto
# The tests that run the cpu kernels, run a third time on their bounds-checked debug build.
DEBUG_TESTS := $(addprefix tests/,test_kernels.py test_activations.py test_training_ops.py \
  test_model.py test_training_step.py test_public_checks.py test_gemm_cuda.py \
  test_losses_cuda.py test_properties.py test_batchnorm.py test_conv.py test_compiled.py)

# jupyter refuses to run as root unless told; containers and CI often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test lint format info clean-venv

lab: $(VENV)/.installed-course
	@echo "Starting JupyterLab in $(CURDIR): open the URL it prints (Ctrl-C stops it)."
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(ARGS)

test: $(VENV)/.installed-course-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not cuda" -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)
	@echo "--- CUDA kernels under the CUDA simulator (its own process: the simulator must be on before numba is imported)"
	NUMBA_ENABLE_CUDASIM=1 $(BIN)/python -m pytest -m cuda -n $(WORKERS) $(PYTEST_ARGS)
	@echo "--- cpu kernels bounds-checked (NNLIB_DEBUG_KERNELS=1: serial, boundscheck=True, uncached; its own process: nnlib reads it at import)"
	NNLIB_DEBUG_KERNELS=1 $(BIN)/python -m pytest -m "not cuda and not slow" -n $(WORKERS) $(DEBUG_TESTS) $(PYTEST_ARGS)

lint: $(VENV)/.installed-course-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-course-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Grade the exercise notebooks: all of exercises/, or one with
#   make grade NB=exercises/01_activations.ipynb
# Prints a score table and writes results/<notebook>.json; never changes the notebook.
NB ?=
.PHONY: grade
grade: $(VENV)/.installed-course
	$(BIN)/python -m nncourse grade $(NB)

info: $(VENV)/.installed-course
	$(BIN)/python -m nnlib info

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "nnlib needs Python 3.10 or newer; '$(PYTHON)' is $$($(PYTHON) --version). Run e.g. 'make test PYTHON=python3.11'."; exit 1; }
	$(PYTHON) -m venv $(VENV)

# One stamp per set of nnlib's extras: installing nnlib (with those extras) and the
# course's grader is skipped while neither pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml course/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  -e ".[$(subst -,$(comma),$*)]" -e ./course
	@touch $@

comma := ,

clean-venv:
	rm -rf $(VENV)
