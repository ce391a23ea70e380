# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""MERIT's figures, in one place: 12-lead ECG plots (also the masked-reconstruction overlay), training curves,
ROC curves and the per-class clinical efficacy of generated reports. Used by the Space, the docs, training and
evaluation. PNGs are written through matplotlib (no Cairo).
"""

try:
    import ecg_plot  # noqa: F401
    import matplotlib  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"merit_plotting needs ecg-plot and matplotlib, which the package installs only with its `plot` extra "
        f"({error}); install them with `pip install 'merit-ecg[plot]'` (or `pip install ecg-plot matplotlib`)."
    ) from error

from .curves import plot_clinical_efficacy, plot_roc, plot_training_curves
from .ecg import STANDARD_LEAD_NAMES, plot_ecg, standard_lead_name


__all__ = [
    "STANDARD_LEAD_NAMES",
    "plot_clinical_efficacy",
    "plot_ecg",
    "plot_roc",
    "plot_training_curves",
    "standard_lead_name",
]
