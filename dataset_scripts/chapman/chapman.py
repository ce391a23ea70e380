"""Chapman-Shaoxing-Ningbo 12-lead ECGs (PhysioNet/CinC Challenge 2020/2021 layout or the PhysioNet release).

Works on the Challenge 2021 folders `training/chapman_shaoxing` and `training/ningbo` (or their
parent, for both) and on the stand-alone PhysioNet release "A large scale 12-lead
electrocardiogram database for arrhythmia study" (`WFDBRecords/01/010/JS00001.hea`), whose
headers use the same `#Dx:` SNOMED-CT codes. Records are 10 s at 500 Hz.

Class set: the 26 diagnoses scored by the PhysioNet/CinC Challenge 2021 (its
`dx_mapping_scored.csv`, 30 SNOMED-CT codes, with the Challenge's equivalent pairs merged:
CLBBB/LBBB -> LBBB, CRBBB/RBBB -> RBBB, PAC/SVPB -> PAC, PVC/VPB -> PVC), shipped as
`snomed_classes.csv`. Other codes (the dataset has ~94) give no label by default and are kept in
`snomed_codes`; pass `label_table=` for another class set.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from ..challenge import ChallengeBuilder, ChallengeConfig
from ..common import load_builder


LABEL_TABLE = Path(__file__).resolve().parent / "snomed_classes.csv"
_VERSION = datasets.Version("1.0.0")

_CITATION = """\
@article{zheng2020chapman,
  title={A 12-lead electrocardiogram database for arrhythmia research covering more than 10,000 patients},
  author={Zheng, Jianwei and Zhang, Jianming and Danioko, Sidy and Yao, Hai and Guo, Hangyuan and Rakovski, Cyril},
  journal={Scientific Data}, volume={7}, number={1}, pages={48}, year={2020}, doi={10.1038/s41597-020-0386-x}
}
@misc{zheng2022ningbo,
  title={A large scale 12-lead electrocardiogram database for arrhythmia study (version 1.0.0)},
  author={Zheng, Jianwei and Guo, Hangyuan and Chu, Huimin},
  publisher={PhysioNet}, year={2022}, doi={10.13026/wgex-er52}
}
@article{reyna2022challenge,
  title={Issues in the automated classification of multilead {ECG}s using heterogeneous labels and populations},
  author={Reyna, Matthew A. and Sadr, Nadi and Perez Alday, Erick A. and Gu, Annie and Shah, Amit J. and
          Robichaux, Chad and Rad, Ali Bahrami and Elola, Andoni and Seyedi, Salman and Ansari, Sardar and
          Ghanbari, Hamid and Li, Qiao and Sharma, Ashish and Clifford, Gari D.},
  journal={Physiological Measurement}, volume={43}, number={8}, pages={084001}, year={2022}
}
"""


class Chapman(ChallengeBuilder):
    """Chapman-Shaoxing-Ningbo: 12-lead ECGs, 500 Hz, 10 s, Challenge 2021 scored classes (26)."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [
        ChallengeConfig(name="default", version=_VERSION, description="Challenge 2021 scored classes (26)")
    ]
    DEFAULT_CONFIG_NAME = "default"
    DEFAULT_LABEL_TABLE = LABEL_TABLE
    # The data carry many diagnoses outside the class set; they are kept in `snomed_codes` only.
    DEFAULT_UNKNOWN_CODES = "ignore"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Chapman-Shaoxing-Ningbo 12-lead ECGs (500 Hz, 10 s), PhysioNet/CinC Challenge 2021 classes.",
            features=self._features(),
            homepage="https://physionet.org/content/ecg-arrhythmia/1.0.0/",
            license="cc-by-4.0",
            citation=_CITATION,
        )


def load_chapman(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    skip_bad_records: bool = False,
    download_mode: str | None = None,
    **config_kwargs,
) -> datasets.DatasetDict:
    """Prepares (or reuses) Chapman-Shaoxing-Ningbo and returns its splits.

    Args:
        data_dir (`str` or `os.PathLike`): the folder holding the records (searched recursively
            for `*.hea`).
        cache_dir (`str`, *optional*): where the Arrow files go (default: the `datasets` cache).
        num_proc (`int`, *optional*): worker processes for preparation.
        skip_bad_records (`bool`, *optional*, defaults to `False`): skip and count bad records.
        download_mode (`str`, *optional*): `"force_redownload"` rebuilds the cache.
        config_kwargs: other [`ChallengeConfig`] fields (`split_fractions`, `seed`, `split_file`,
            `label_table`, `unknown_codes`, `drop_unlabelled`, `record_ids`, ...).

    Returns:
        `datasets.DatasetDict` with `train`, `validation`, `test` (seeded stratified split unless
        `split_file` is given) and a `skipped_records` attribute.
    """
    builder = Chapman(
        data_dir=os.fspath(data_dir),
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        skip_bad_records=skip_bad_records,
        **config_kwargs,
    )
    return load_builder(builder, num_proc=num_proc, download_mode=download_mode)
