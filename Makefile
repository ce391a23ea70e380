# Two entry points (see README.md): `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 resolves to the local CPU build; without the pin pip pulls a CUDA build (several GB).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Nothing in the demo or the tests may download weights or data.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install browser demo test test-fast bench clean

$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	touch $@

install: $(BIN)/.installed

## Headless Chromium for the Space's browser test (tests/test_space.py): the Debian packages, installed as root on a
## fresh machine; elsewhere the test is skipped, and this says so. The browser is never downloaded at test time.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	else \
		echo "chromium/chromium-driver missing and not root with apt-get: the Space browser test will be skipped"; \
	fi

## Pretrain the `small` preset on the embedded PTB-XL sample, then linear-probe and zero-shot evaluation.
demo: install
	$(BIN)/accelerate launch train_merit.py

## The whole offline test suite (CPU, tiny configs; one thread per process: tiny models gain nothing from more,
## and a busy core would stall every parallel section).
test: install browser
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests

## The suite without the end-to-end tests marked slow.
test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m "not slow"

## Benchmarks (numbers go to the terminal; see benchmarks/README.md).
bench: install
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_datasets.py
	$(BIN)/python benchmarks/bench_space.py

clean:
	rm -rf $(VENV) outputs .pytest_cache *.egg-info
