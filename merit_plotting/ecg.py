# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Standard 12-lead ECG plots on `ecg-plot`, and the masked-reconstruction overlay.

`plot_ecg` draws the clinical 3 x 4 layout: four 2.5-s columns in sequence (I II III | aVR aVL aVF | V1 V2 V3 |
V4 V5 V6) over the first 10 s, a full-length lead-II rhythm strip underneath, 25 mm/s and 10 mm/mV on a 1 mm / 5 mm
grid, with a 1 mV calibration pulse at the start of every row. `ecg-plot` builds the chart geometry in millimetres
and renders it into one matplotlib axes (coordinates in mm, y pointing down); MERIT's additions (missing-lead
shading, the reconstruction overlay) are drawn into that axes with the chart's own panel geometry.

A lead that was not recorded is shaded grey and labelled "not recorded": it is never drawn as a flat line, which
would look like a recorded isoelectric lead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ecg_plot import Style
from ecg_plot import plot as ecg_chart
from ecg_plot.chart import STANDARD_LEADS
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle


STANDARD_LEAD_NAMES: tuple[str, ...] = tuple(STANDARD_LEADS)
"""The 12 standard leads in their conventional order and spelling (`aVR`, not `AVR`)."""

_STANDARD_BY_KEY = {name.lower(): name for name in STANDARD_LEAD_NAMES}
RHYTHM_LEAD = "II"
STANDARD_DURATION_S = 10.0
"""Length of a standard 12-lead printout; longer records are cut to their first 10 s unless `window` says else."""

MISSING_LEAD_COLOR = "#9e9e9e"
HIDDEN_PATCH_COLOR = "#1f77b4"
RECONSTRUCTION_COLOR = "#d62728"
MISSING_LEAD_GID_PREFIX = "missing-lead:"
HIDDEN_PATCH_GID = "hidden-patch"
RECONSTRUCTION_GID = "reconstruction"
GRID_GID = "ecg-grid"
# ECG paper: 1-mm minor and 5-mm major lines in ecg-plot's colours and widths (mm)
GRID_LINES = ((1.0, Style.minor_color, 0.06), (5.0, Style.major_color, 0.12))
POINTS_PER_MM = 72 / 25.4


def standard_lead_name(name: str) -> str | None:
    """The standard spelling of a 12-lead name, matched case-insensitively (`"AVR"` -> `"aVR"`), or `None`."""
    if not isinstance(name, str):
        raise ValueError(f"Lead names must be strings, got {name!r} ({type(name).__name__}).")
    return _STANDARD_BY_KEY.get(name.strip().lower())


def _standard_lead_rows(lead_names: Sequence[str], num_rows: int) -> dict[str, int]:
    """Maps each standard lead present in `lead_names` to its row; rejects unknown and duplicate names."""
    if isinstance(lead_names, str) or len(lead_names) != num_rows:
        got = 1 if isinstance(lead_names, str) else len(lead_names)
        raise ValueError(
            f"`lead_names` must name each of the {num_rows} rows of `signal` (leads first), got {got} name(s). "
            "Pass one name per lead, e.g. ['I', 'II', ..., 'V6']."
        )
    rows: dict[str, int] = {}
    for row, name in enumerate(lead_names):
        standard = standard_lead_name(name)
        if standard is None:
            raise ValueError(
                f"`lead_names` contains {name!r}, which is not one of the 12 standard leads "
                f"{list(STANDARD_LEAD_NAMES)} (matched case-insensitively). Select the standard leads before plotting."
            )
        if standard in rows:
            raise ValueError(
                f"`lead_names` names lead {standard!r} twice ({lead_names[rows[standard]]!r} and {name!r}; names are "
                "case-insensitive); expected each lead at most once."
            )
        rows[standard] = row
    return rows


def _checked_signal(signal, sampling_rate) -> tuple[np.ndarray, float]:
    values = _as_numpy(signal, "signal")
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(
            f"`signal` must be a non-empty array of shape (leads, samples), got shape {values.shape}. "
            "Transpose a (samples, leads) array first."
        )
    if np.isinf(values).any():
        raise ValueError("`signal` contains infinite values; use NaN for samples that were not recorded.")
    is_number = isinstance(sampling_rate, (int, float, np.integer, np.floating)) and not isinstance(
        sampling_rate, bool
    )
    if not (is_number and np.isfinite(sampling_rate) and sampling_rate > 0):
        raise ValueError(f"`sampling_rate` must be a positive number of Hz, got {sampling_rate!r}.")
    return values, float(sampling_rate)


def _as_numpy(array, name: str) -> np.ndarray:
    """A float64 NumPy copy of an array, nested list or (detached) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().double().numpy()
    try:
        return np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`{name}` must be a numeric array, got {type(array).__name__}.") from error


def _overlay_patches(
    values: np.ndarray, reconstruction, patch_mask, norm_patch_loss: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Checks the overlay inputs and returns the reconstruction as `(L, T)` in signal units and the mask `(L, N)`."""
    reconstruction = _as_numpy(reconstruction, "reconstruction")
    patch_mask = _as_numpy(patch_mask, "patch_mask")
    num_leads, num_samples = values.shape
    if reconstruction.ndim != 3 or reconstruction.shape[0] != num_leads:
        raise ValueError(
            f"`reconstruction` must have shape (leads, patches, patch_size) = ({num_leads}, N, P) as "
            f"`MeritForPreTraining` returns it for one record, got {reconstruction.shape}."
        )
    _, num_patches, patch_size = reconstruction.shape
    if num_patches * patch_size != num_samples:
        raise ValueError(
            f"`reconstruction` covers {num_patches} x {patch_size} = {num_patches * patch_size} samples per lead but "
            f"`signal` has {num_samples}; pass the model input (`input_values[i]`) the reconstruction was made from."
        )
    if patch_mask.shape != (num_leads, num_patches):
        raise ValueError(
            f"`patch_mask` must have shape (leads, patches) = {(num_leads, num_patches)} (1 = hidden patch), got "
            f"{patch_mask.shape}."
        )
    if not np.isin(patch_mask, (0, 1)).all():
        raise ValueError(
            f"`patch_mask` must contain only 0 (visible) and 1 (hidden), got values {np.unique(patch_mask)[:5]}."
        )
    if norm_patch_loss:
        # the model predicted per-patch normalised targets: bring them back to the scale of the original patch
        patches = values.reshape(num_leads, num_patches, patch_size)
        mean = patches.mean(axis=-1, keepdims=True)
        std = np.sqrt(patches.var(axis=-1, ddof=1, keepdims=True) + 1.0e-6)
        reconstruction = reconstruction * std + mean
    return reconstruction.reshape(num_leads, num_samples), patch_mask.astype(bool)


def plot_ecg(
    signal,
    sampling_rate: float,
    lead_names: Sequence[str],
    lead_mask=None,
    *,
    reconstruction=None,
    patch_mask=None,
    norm_patch_loss: bool = False,
    window: tuple[float, float] | None = None,
    title: str | None = None,
    speed: float = 25.0,
    gain: float = 10.0,
    amplitude_unit: str = "mV",
    path: str | os.PathLike | None = None,
    dpi: int = 150,
) -> Figure:
    """
    Draws a standard 12-lead ECG (3 x 4 sequential layout + lead-II rhythm strip), optionally with a
    masked-reconstruction overlay.

    Args:
        signal (`np.ndarray` or `torch.Tensor` of shape `(L, T)`):
            One record, leads first, in `amplitude_unit` (mV for a raw record). NaN marks samples that were not
            recorded (drawn as gaps).
        sampling_rate (`float`):
            Sampling rate in Hz.
        lead_names (`Sequence[str]` of length `L`):
            Name of each row of `signal`, matched case-insensitively to the 12 standard leads (`AVR` -> `aVR`); any
            order. Standard leads that are not named are shown as missing. Other names raise a `ValueError`.
        lead_mask (`np.ndarray` of shape `(L,)`, *optional*):
            1 for a recorded lead, 0 for a missing one (as the MERIT processor returns it). Missing leads, and leads
            whose samples are all NaN, are shaded grey and labelled "not recorded" instead of being drawn.
        reconstruction (`np.ndarray` or `torch.Tensor` of shape `(L, N, P)`, *optional*):
            Overlay mode: the patches predicted by `MeritForPreTraining` for this record (`output.reconstruction[i]`),
            with `N * P == T`. `signal` is then the model input `input_values[i]` and its row order is the model's.
            The reconstruction is drawn in red over the hidden patches, which are shaded blue.
        patch_mask (`np.ndarray` or `torch.Tensor` of shape `(L, N)`, *optional*):
            Overlay mode: `output.mask[i]`, 1 for a hidden patch, 0 for a visible one. Required with `reconstruction`.
        norm_patch_loss (`bool`, *optional*, defaults to `False`):
            Set it when the model was trained with `norm_patch_loss=True`: its predictions are per-patch normalised
            and are brought back to the mean and standard deviation of the original patch before drawing.
        window (`tuple[float, float]`, *optional*):
            `(start_s, end_s)` of the record to draw; defaults to the first 10 s (the whole record if shorter).
        title (`str`, *optional*):
            Title above the chart.
        speed (`float`, *optional*, defaults to 25):
            Paper speed in mm/s.
        gain (`float`, *optional*, defaults to 10):
            Amplitude scale in mm per `amplitude_unit` (10 mm/mV is the clinical standard; a z-scored model input
            needs a smaller gain, e.g. 4, to keep the rows compact).
        amplitude_unit (`str`, *optional*, defaults to `"mV"`):
            Unit written in the chart's legend line (e.g. `"SD"` for a z-scored model input).
        path (`str` or `os.PathLike`, *optional*):
            Where to save the figure as PNG.
        dpi (`int`, *optional*, defaults to 150):
            Resolution of the saved PNG.

    Returns:
        `matplotlib.figure.Figure`: one axes in millimetre coordinates. Artists added by MERIT carry a gid:
        `"missing-lead:<name>"` for the shading of a missing lead, `"hidden-patch"` and `"reconstruction"` in
        overlay mode.

    Example:

    ```python
    >>> import numpy as np
    >>> from merit_plotting import plot_ecg

    >>> signal = np.random.default_rng(0).normal(scale=0.1, size=(12, 5000))  # 10 s at 500 Hz, in mV
    >>> names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    >>> figure = plot_ecg(signal, 500, names, lead_mask=[1] * 11 + [0])  # V6 shown as "not recorded"
    ```
    """
    values, sampling_rate = _checked_signal(signal, sampling_rate)
    num_leads, num_samples = values.shape
    rows = _standard_lead_rows(lead_names, num_leads)
    if lead_mask is None:
        present = np.ones(num_leads, dtype=bool)
    else:
        present = _as_numpy(lead_mask, "lead_mask")
        if present.shape != (num_leads,):
            raise ValueError(
                f"`lead_mask` must have shape (leads,) = ({num_leads},) (1 = recorded lead), got {present.shape}."
            )
        present = present.astype(bool)
    present &= ~np.isnan(values).all(axis=1)
    if (reconstruction is None) != (patch_mask is None):
        raise ValueError("Overlay mode needs both `reconstruction` (L, N, P) and `patch_mask` (L, N); got only one.")
    overlay = None
    if reconstruction is not None:
        overlay = _overlay_patches(values, reconstruction, patch_mask, norm_patch_loss)

    # the chart always holds the 12 standard leads in standard order; a missing lead is all-NaN, so nothing is drawn
    chart_values = np.full((len(STANDARD_LEAD_NAMES), num_samples), np.nan)
    source_row = {}
    for name, row in rows.items():
        if present[row]:
            chart_values[STANDARD_LEAD_NAMES.index(name)] = values[row]
            source_row[name] = row
    duration = num_samples / sampling_rate
    if window is None:
        window = (0.0, min(duration, STANDARD_DURATION_S))
    chart = ecg_chart(
        chart_values,
        sample_rate=sampling_rate,
        lead_names=list(STANDARD_LEAD_NAMES),
        title=title,
        layout="12lead",
        time_mode="sequential",
        rhythm_lead=RHYTHM_LEAD,
        speed=speed,
        gain=gain,
        window=window,
        style=Style(grid=False),  # drawn below as two line collections: ecg-plot makes one artist per grid line
    )
    figure, axes = chart.to_matplotlib()
    _draw_grid(axes, chart.panels)
    if amplitude_unit != "mV":
        for text in axes.texts:
            text.set_text(text.get_text().replace("mm/mV", f"mm/{amplitude_unit}").replace("mV", amplitude_unit))

    for panel in chart.panels:
        name = STANDARD_LEAD_NAMES[panel.lead]
        clip = Rectangle((panel.x, panel.y), panel.width, panel.height, transform=axes.transData)
        if name not in source_row:
            _draw_missing_lead(axes, panel, name)
        elif overlay is not None:
            _draw_overlay(axes, panel, clip, overlay, source_row[name], sampling_rate, speed, gain)
    if overlay is not None:
        handles = [
            Line2D([], [], color=chart.style.line_color, linewidth=1.0, label="original"),
            Line2D([], [], color=RECONSTRUCTION_COLOR, linewidth=1.0, label="reconstruction (hidden patches)"),
            Patch(facecolor=HIDDEN_PATCH_COLOR, alpha=0.15, label="hidden patch"),
        ]
        axes.legend(handles=handles, loc="lower right", ncol=3, fontsize=7, frameon=False)
    if path is not None:
        figure.savefig(path, dpi=dpi, format="png")
    return figure


def _draw_grid(axes, panels) -> None:
    """The ECG paper of every panel, with ecg-plot's geometry: vertical lines from the panel's left edge, horizontal
    lines from its baseline, 1 mm (minor) and 5 mm (major) apart."""
    for spacing, color, width_mm in GRID_LINES:
        segments = []
        for panel in panels:
            for x in np.arange(0.0, panel.width + 1e-7, spacing):
                segments.append(((panel.x + x, panel.y), (panel.x + x, panel.y + panel.height)))
            first = np.ceil((panel.y - panel.baseline) / spacing) * spacing
            for dy in np.arange(first, panel.y + panel.height - panel.baseline + 1e-7, spacing):
                segments.append(((panel.x, panel.baseline + dy), (panel.x + panel.width, panel.baseline + dy)))
        # above ecg-plot's background (zorder 0), below everything drawn in the panels (zorder >= 1)
        axes.add_collection(
            LineCollection(segments, colors=color, linewidths=width_mm * POINTS_PER_MM, zorder=0.5, gid=GRID_GID)
        )


def _draw_missing_lead(axes, panel, name: str) -> None:
    """Shades a panel grey and labels it as not recorded."""
    axes.add_patch(
        Rectangle(
            (panel.x, panel.y),
            panel.width,
            panel.height,
            facecolor=MISSING_LEAD_COLOR,
            alpha=0.35,
            edgecolor="none",
            zorder=1.0e6,
            gid=f"{MISSING_LEAD_GID_PREFIX}{name}",
        )
    )
    axes.text(
        panel.x + panel.width / 2,
        panel.y + panel.height / 2,
        f"{name} not recorded",
        ha="center",
        va="center",
        fontsize=8,
        color="#424242",
        zorder=1.0e6 + 1,
    )


def _draw_overlay(axes, panel, clip, overlay, row: int, sampling_rate: float, speed: float, gain: float) -> None:
    """Shades the hidden patches of one panel and draws the reconstruction over them."""
    reconstruction, hidden = overlay
    num_patches = hidden.shape[1]
    patch_size = reconstruction.shape[1] // num_patches
    patch_duration = patch_size / sampling_rate
    times = np.arange(reconstruction.shape[1]) / sampling_rate
    drawn = np.where(np.repeat(hidden[row], patch_size), reconstruction[row], np.nan)
    for patch in np.flatnonzero(hidden[row]):
        start = max(patch * patch_duration, panel.start)
        end = min((patch + 1) * patch_duration, panel.end)
        if end <= start:
            continue
        shade = Rectangle(
            (panel.x + (start - panel.start) * speed, panel.y),
            (end - start) * speed,
            panel.height,
            facecolor=HIDDEN_PATCH_COLOR,
            alpha=0.15,
            edgecolor="none",
            zorder=1.0e6,
            gid=HIDDEN_PATCH_GID,
        )
        axes.add_patch(shade)
        shade.set_clip_path(clip)
    visible = (times >= panel.start) & (times < panel.end)
    (line,) = axes.plot(
        panel.x + (times[visible] - panel.start) * speed,
        panel.baseline - drawn[visible] * gain,
        color=RECONSTRUCTION_COLOR,
        linewidth=0.7,
        zorder=1.0e6 + 2,
        gid=RECONSTRUCTION_GID,
    )
    line.set_clip_path(clip)
