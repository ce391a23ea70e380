"""CPSC2018 (China Physiological Signal Challenge 2018) in the PhysioNet/CinC Challenge 2020/2021 layout.

6,877 12-lead ECGs at 500 Hz, 6-60 s long, each with one to three of the nine CPSC2018 classes.
The SNOMED-CT codes of the `#Dx:` lines map to the class names through `snomed_classes.csv`
(the Challenge's codes for the nine CPSC2018 classes). See the dataset card next to this file.

```python
>>> from dataset_scripts.cpsc2018 import load_cpsc2018
>>> dataset = load_cpsc2018("/data/challenge-2021/training/cpsc_2018", cache_dir="/tmp/merit-cache")
```
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from ..challenge import ChallengeBuilder, ChallengeConfig
from ..common import load_builder


LABEL_TABLE = Path(__file__).resolve().parent / "snomed_classes.csv"
_VERSION = datasets.Version("1.0.3")

_CITATION = """\
@article{liu2018cpsc,
  title={An Open Access Database for Evaluating the Algorithms of Electrocardiogram Rhythm and Morphology
         Abnormality Detection},
  author={Liu, Feifei and Liu, Chengyu and Zhao, Lina and Zhang, Xiangyu and Wu, Xiaoling and Xu, Xiaoyan and
          Liu, Yulin and Ma, Caiyun and Wei, Shoushui and He, Zhiqiang and Li, Jianqing and Kwee, Eddie Ng Yin},
  journal={Journal of Medical Imaging and Health Informatics}, volume={8}, number={7}, pages={1368--1373}, year={2018}
}
@article{reyna2022challenge,
  title={Issues in the automated classification of multilead {ECG}s using heterogeneous labels and populations},
  author={Reyna, Matthew A. and Sadr, Nadi and Perez Alday, Erick A. and Gu, Annie and Shah, Amit J. and
          Robichaux, Chad and Rad, Ali Bahrami and Elola, Andoni and Seyedi, Salman and Ansari, Sardar and
          Ghanbari, Hamid and Li, Qiao and Sharma, Ashish and Clifford, Gari D.},
  journal={Physiological Measurement}, volume={43}, number={8}, pages={084001}, year={2022}
}
"""


class CPSC2018(ChallengeBuilder):
    """CPSC2018: nine classes (Normal, AF, I-AVB, LBBB, RBBB, PAC, PVC, STD, STE), variable length."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [ChallengeConfig(name="default", version=_VERSION, description="CPSC2018, nine classes")]
    DEFAULT_CONFIG_NAME = "default"
    DEFAULT_LABEL_TABLE = LABEL_TABLE
    # Every CPSC2018 diagnosis is one of the nine classes: another code means a wrong or corrupt file.
    DEFAULT_UNKNOWN_CODES = "error"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="CPSC2018 (PhysioNet/CinC Challenge layout): 12-lead ECGs, 500 Hz, 6-60 s, 9 classes.",
            features=self._features(),
            homepage="https://physionet.org/content/challenge-2021/1.0.3/",
            license="cc-by-4.0",
            citation=_CITATION,
        )


def load_cpsc2018(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    skip_bad_records: bool = False,
    download_mode: str | None = None,
    **config_kwargs,
) -> datasets.DatasetDict:
    """Prepares (or reuses) CPSC2018 and returns its splits.

    Args:
        data_dir (`str` or `os.PathLike`): the folder holding the records (searched recursively
            for `*.hea`), e.g. `training/cpsc_2018` of the Challenge 2021 data.
        cache_dir (`str`, *optional*): where the Arrow files go (default: the `datasets` cache).
        num_proc (`int`, *optional*): worker processes for preparation.
        skip_bad_records (`bool`, *optional*, defaults to `False`): skip and count bad records.
        download_mode (`str`, *optional*): `"force_redownload"` rebuilds the cache.
        config_kwargs: other [`ChallengeConfig`] fields (`split_fractions`, `seed`, `split_file`,
            `label_table`, `unknown_codes`, `record_ids`, ...).

    Returns:
        `datasets.DatasetDict` with `train`, `validation`, `test` (seeded stratified split unless
        `split_file` is given) and a `skipped_records` attribute.
    """
    builder = CPSC2018(
        data_dir=os.fspath(data_dir),
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        skip_bad_records=skip_bad_records,
        **config_kwargs,
    )
    return load_builder(builder, num_proc=num_proc, download_mode=download_mode)
