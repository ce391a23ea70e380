"""PTB-XL v1.0.3 builder, benchmark label sets and helpers."""

from .labels import BENCHMARK_TASKS, LABEL_SETS, TASKS, aggregate_labels
from .ptbxl import PTBXL, PTBXLConfig, download_ptbxl, load_ptbxl


__all__ = [
    "BENCHMARK_TASKS",
    "LABEL_SETS",
    "PTBXL",
    "PTBXLConfig",
    "TASKS",
    "aggregate_labels",
    "download_ptbxl",
    "load_ptbxl",
]
