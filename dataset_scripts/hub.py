"""Exporting prepared ECG datasets to Parquet and to the Hugging Face Hub, one config at a time.

The Parquet files keep the `datasets` features in their schema metadata, so `signal` comes back as
`Array2D((leads, time), "int16")` (fixed-length datasets; variable-length ones keep
`List(List(int16))`) and `labels` as `List(ClassLabel)` with the canonical class list:

```python
>>> from dataset_scripts.ptbxl import load_ptbxl
>>> from dataset_scripts.hub import export_to_parquet, push_to_hub
>>> dataset = load_ptbxl("data/ptbxl-sample", task="superdiagnostic")
>>> export_to_parquet(dataset, "exports/ptbxl", config_name="superdiagnostic")   # local files
>>> push_to_hub(dataset, "my-org/ptb-xl", config_name="superdiagnostic",
...             dataset_card="dataset_scripts/ptbxl/README.md")                 # needs a token
```
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets


def export_to_parquet(
    dataset: datasets.DatasetDict, output_dir: str | os.PathLike, config_name: str, batch_size: int = 256
) -> dict[str, Path]:
    """Writes each split to `output_dir/<config_name>/<split>-00000-of-00001.parquet`.

    That is the layout `push_to_hub(config_name=...)` uses on the Hub, so the folder can also be
    uploaded as is and loaded with `load_dataset("parquet", data_dir=...)`.

    Args:
        dataset (`datasets.DatasetDict`): a prepared dataset (e.g. from `load_ptbxl`).
        output_dir (`str` or `os.PathLike`): the export root.
        config_name (`str`): the config (sub-folder) name, e.g. the PTB-XL task.
        batch_size (`int`, *optional*, defaults to 256): rows per Parquet row group.

    Returns:
        `dict[str, Path]`: split -> written file.
    """
    if not config_name or "/" in config_name:
        raise ValueError(f"config_name must be a non-empty folder name, got {config_name!r}")
    target = Path(output_dir) / config_name
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, part in dataset.items():
        paths[split] = target / f"{split}-00000-of-00001.parquet"
        part.to_parquet(paths[split], batch_size=batch_size)
    return paths


def push_to_hub(
    dataset: datasets.DatasetDict,
    repo_id: str,
    config_name: str,
    dataset_card: str | os.PathLike | None = None,
    private: bool | None = None,
    token: str | None = None,
    max_shard_size: str = "500MB",
) -> None:
    """Pushes one config of a prepared dataset to a Hub dataset repository as Parquet.

    Call it once per config (e.g. per PTB-XL task); `datasets` records each config in the card's
    YAML `configs` section so `load_dataset(repo_id, config_name)` finds it.

    Args:
        dataset (`datasets.DatasetDict`): a prepared dataset.
        repo_id (`str`): e.g. `"my-org/ptb-xl"`; created if missing.
        config_name (`str`): the config name on the Hub.
        dataset_card (`str` or `os.PathLike`, *optional*): a card (e.g. `dataset_scripts/ptbxl/README.md`)
            uploaded as `README.md` when the repository has none yet; `datasets` then merges the
            config metadata into it (an existing README, with earlier configs, is kept).
        private (`bool`, *optional*): visibility of a newly created repository.
        token (`str`, *optional*): a Hub token (default: the logged-in one).
        max_shard_size (`str`, *optional*, defaults to `"500MB"`): Parquet shard size.
    """
    from huggingface_hub import HfApi

    if dataset_card is not None:
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if not api.file_exists(repo_id, "README.md", repo_type="dataset"):
            api.upload_file(
                path_or_fileobj=os.fspath(dataset_card),
                path_in_repo="README.md",
                repo_id=repo_id,
                repo_type="dataset",
                commit_message="Add dataset card",
            )
    dataset.push_to_hub(repo_id, config_name=config_name, private=private, token=token, max_shard_size=max_shard_size)
