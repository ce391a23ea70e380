"""MIMIC-IV-ECG ECG-report pairs builder."""

from .mimic_iv_ecg import MimicIVECG, MimicIVECGConfig, build_report, load_mimic_iv_ecg


__all__ = ["MimicIVECG", "MimicIVECGConfig", "build_report", "load_mimic_iv_ecg"]
