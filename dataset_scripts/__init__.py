"""`datasets` builders for the ECG corpora MERIT trains and evaluates on.

- `dataset_scripts.ptbxl`: PTB-XL v1.0.3, the six benchmark label sets and a pretraining config;
- `dataset_scripts.mimic_iv_ecg`: MIMIC-IV-ECG ECG-report pairs;
- `dataset_scripts.cpsc2018`, `dataset_scripts.chapman`: the PhysioNet/CinC Challenge layout.

Every builder yields the same core row schema (see `dataset_scripts.common.ecg_features`); the
helpers below work on rows and datasets of any of them.
"""

from .common import BadRecordError, get_class_names, physical_signal
from .hub import export_to_parquet, push_to_hub


__all__ = ["BadRecordError", "export_to_parquet", "get_class_names", "physical_signal", "push_to_hub"]
