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

.PHONY: install demo test test-fast bench clean

$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	touch $@

# METEOR's WordNet (no PyPI package ships it): Debian's wordnet packages, unpacked into the venv's NLTK data folder,
# which NLTK searches by default (metrics/report_generation/install_wordnet.sh; runs `apt-get update` if needed).
WORDNET := $(VENV)/nltk_data/corpora/wordnet/lexnames

$(WORDNET): metrics/report_generation/install_wordnet.sh metrics/report_generation/wordnet/lexnames | $(BIN)/.installed
	bash metrics/report_generation/install_wordnet.sh $(VENV)/nltk_data

install: $(BIN)/.installed $(WORDNET)

## Pretrain the `small` preset on the embedded PTB-XL sample, then linear-probe and zero-shot evaluation.
demo: install
	$(BIN)/accelerate launch train_merit.py

## The whole offline test suite (CPU, tiny configs; one thread per process: tiny models gain nothing from more,
## and a busy core would stall every parallel section).
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests

## The suite without the end-to-end tests marked slow.
test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m "not slow"

## Benchmarks (numbers go to the terminal; see benchmarks/README.md).
bench: install
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_datasets.py

clean:
	rm -rf $(VENV) outputs .pytest_cache *.egg-info
