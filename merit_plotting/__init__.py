# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""MERIT's figures, in one place: 12-lead ECG plots (also the masked-reconstruction overlay), training curves and
ROC curves. Used by the Space, the docs, training and evaluation. PNGs are written through matplotlib (no Cairo).
"""

from .curves import plot_roc, plot_training_curves
from .ecg import STANDARD_LEAD_NAMES, plot_ecg, standard_lead_name


__all__ = ["STANDARD_LEAD_NAMES", "plot_ecg", "plot_roc", "plot_training_curves", "standard_lead_name"]
