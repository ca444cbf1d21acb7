# Two commands set up everything on a fresh Debian/Ubuntu machine:
#   make demo   run the main job on the embedded local cloud
#   make test   lint, secret scan and the whole test suite
# Both create .venv on first use and re-install only when pyproject.toml or
# constraints.txt change (a no-op re-run takes seconds).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
INPUTS := pyproject.toml constraints.txt
# Parts of the test suite that need system packages (scripts/system-deps.sh): installed
# when run as root, otherwise those tests skip and say what to install.
TEST_SYSTEM_PARTS ?= image packer radio-tools
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: python-version demo test lint secret-scan pytest system-deps bench hooks clean help

help:
	@echo "make demo   - run spotcube on the embedded local cloud (results in ./spotcube-demo)"
	@echo "make test   - lint, secret scan and the full test suite"
	@echo "make lint   - ruff, ruff format --check, mypy, yamllint, ansible-lint (the project's"
	@echo "              roles and those images/*.yaml name), packer fmt"
	@echo "make bench  - benchmarks in bench/ (prints ratios; see docs/benchmarks.md)"
	@echo "make hooks  - install the pre-commit secret scanner into .git/hooks"

# Checked before anything is installed: pip's resolver would otherwise fail on an old
# Python with a ResolutionImpossible that never names the version (pyproject: >=3.11).
PYTHON_CHECK := import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)

python-version:
	@$(PYTHON) -c '$(PYTHON_CHECK)' 2>/dev/null || { \
	  echo "spotcube needs Python 3.11 or newer; PYTHON=$(PYTHON) is $$( ($(PYTHON) --version 2>/dev/null || echo 'not runnable') | head -n 1). Install python3.11+ and run: make PYTHON=python3.11 $(MAKECMDGOALS)"; \
	  exit 1; }

# A venv whose install failed is removed, so the next run (say with another PYTHON) starts
# clean instead of failing the same way until `make clean`. The marker files are written
# only after a successful install.
$(BIN)/python: | python-version
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(VENV)/.installed-demo: $(INPUTS) | python-version $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[local]' || { rm -rf $(VENV); \
	  echo "install failed: .venv removed; fix the error above and run make again"; exit 1; }
	touch $@

$(VENV)/.installed-dev: $(INPUTS) | python-version $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[local,infra,dev,pipelines]' || { rm -rf $(VENV); \
	  echo "install failed: .venv removed; fix the error above and run make again"; exit 1; }
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/spotcube demo $(DEMO_ARGS)

system-deps:
	@bash scripts/system-deps.sh $(TEST_SYSTEM_PARTS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	cd ansible && PATH="$(CURDIR)/$(BIN):$$PATH" ansible-lint --profile production --offline
	@# The roles a variant file names under roles: (a group's own) live outside ansible/.
	@for config in images/*.yaml; do $(BIN)/spotcube bake --image-config "$$config" --lint || exit 1; done
	@if command -v packer >/dev/null; then packer fmt -check -diff packer/ && echo "packer fmt: clean"; \
	 else echo "packer fmt: skipped, packer not installed (run: sudo bash scripts/system-deps.sh packer)"; fi

secret-scan: $(VENV)/.installed-dev
	bash scripts/scan-secrets.sh

# pytest exits 5 when it collected no test; make treats every non-zero status as failure,
# so an empty run cannot pass.
pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: system-deps lint secret-scan pytest

bench: $(VENV)/.installed-dev
	@bash scripts/system-deps.sh wsclean
	$(BIN)/python bench/spotsim.py
	$(BIN)/python bench/checkpoint.py
	$(BIN)/python bench/imaging.py

hooks: $(VENV)/.installed-dev
	$(BIN)/pre-commit install

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info spotcube-demo
