"""CPSC2018 builder (PhysioNet/CinC Challenge layout)."""

from .cpsc2018 import CPSC2018, LABEL_TABLE, load_cpsc2018


__all__ = ["CPSC2018", "LABEL_TABLE", "load_cpsc2018"]
