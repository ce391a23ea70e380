"""Chapman-Shaoxing-Ningbo builder (PhysioNet/CinC Challenge layout)."""

from .chapman import LABEL_TABLE, Chapman, load_chapman


__all__ = ["Chapman", "LABEL_TABLE", "load_chapman"]
