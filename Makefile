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

.PHONY: demo test lint secret-scan pytest system-deps bench hooks clean help

help:
	@echo "make demo   - run spotcube on the embedded local cloud (results in ./spotcube-demo)"
	@echo "make test   - lint, secret scan and the full test suite"
	@echo "make lint   - ruff, ruff format --check, mypy, yamllint, ansible-lint (the project's"
	@echo "              roles and those images/*.yaml name), packer fmt"
	@echo "make bench  - benchmarks in bench/ (prints ratios; see docs/benchmarks.md)"
	@echo "make hooks  - install the pre-commit secret scanner into .git/hooks"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-demo: $(INPUTS) | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[local]'
	touch $@

$(VENV)/.installed-dev: $(INPUTS) | $(BIN)/python
	$(PIP) install -c constraints.txt -e '.[local,infra,dev,pipelines]'
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
