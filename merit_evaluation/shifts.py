# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Controlled distribution shifts for the robustness evaluation.

Every shift takes ECG signals of shape `(batch, leads, time)` **in physical units (mV)** with their sampling rate,
a `severity` and a `numpy.random.Generator`, and returns a `ShiftedECG` (signals, sampling rate, lead mask). The
input is never modified. Floating-point input is required (convert ADC units to mV first); the output keeps the
input dtype. `SHIFTS` maps a name to the function and `SEVERITIES` to its default severity grid; `apply_shift` runs
one by name with a seed.

Shifts (name: severity — what it does):

- `gaussian_noise`: SNR in dB — adds white Gaussian noise whose power, per record and lead, is the clean signal
  power `mean(x**2)` of that record and lead divided by `10 ** (snr / 10)`. The drawn noise is rescaled to exactly
  that power, so the realised SNR equals the requested one. Leads with zero power (absent leads) stay zero.
- `baseline_wander`: amplitude in mV — adds, per record and lead, a sinusoid of that peak amplitude with frequency
  uniform in [0.05, 0.5] Hz (the respiration range, below 1 Hz) and uniform random phase.
- `powerline_interference`: amplitude in mV — adds, per record and lead, a `frequency` Hz sinusoid (50 Hz by
  default, 60 Hz in the Americas) of that peak amplitude with uniform random phase. `frequency` must be below the
  Nyquist frequency, so 50 Hz needs signals sampled above 100 Hz (apply it before any downsampling).
- `amplitude_scaling`: factor — multiplies the signal by the factor (gain miscalibration).
- `drop_random_leads`: number of leads `k` — zeroes `k` leads chosen at random for each record and marks them
  absent in `lead_mask`.
- `keep_lead_subset`: a name of `LEAD_SUBSETS` (`limb`, `precordial`, `lead_I`, `lead_II`) or a tuple of lead
  names — zeroes every other lead and marks it absent (`lead_names` gives the input order, the standard 12-lead
  order by default).
- `sampling_rate`: target rate in Hz — resamples the signal to the target rate (polyphase filtering,
  `scipy.signal.resample_poly`) and reports that rate, so the model's processor has to resample it back:
  500 -> 100 Hz removes the content above 50 Hz, 100 -> 500 Hz tests the processor on a rate it was not trained
  on. The duration is unchanged; the length becomes `ceil(time * target / rate)`.
- `time_shift`: seconds — shifts the signal later by `round(seconds * rate)` samples (earlier if negative):
  `mode="circular"` wraps around (`np.roll`), `mode="pad"` fills the vacated samples with zeros.

`lead_mask` has shape `(batch, leads)`, dtype int64, 1 = present (the `MeritProcessor` convention). Shifts other
than the lead ones return all ones; combine with an existing mask by multiplication.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


STANDARD_LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""Canonical 12-lead order (the `MeritProcessor` output order)."""

LEAD_SUBSETS: dict[str, tuple[str, ...]] = {
    "limb": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "precordial": ("V1", "V2", "V3", "V4", "V5", "V6"),
    "lead_I": ("I",),
    "lead_II": ("II",),
}
"""Named lead subsets for `keep_lead_subset`."""

BASELINE_WANDER_FREQUENCY_RANGE = (0.05, 0.5)
"""Frequency range in Hz of the baseline-wander sinusoids."""


@dataclass
class ShiftedECG:
    """Output of a shift.

    Attributes:
        signals (`np.ndarray` of shape `(batch, leads, time)`): shifted signals in mV (the time axis may have a new
            length after `sampling_rate`).
        sampling_rate (`float`): sampling rate of `signals` in Hz.
        lead_mask (`np.ndarray` of shape `(batch, leads)`): int64, 1 = lead present, 0 = lead removed by the shift.
    """

    signals: np.ndarray
    sampling_rate: float
    lead_mask: np.ndarray


def _check_signals(signals: np.ndarray, sampling_rate: float) -> np.ndarray:
    signals = np.asarray(signals)
    if signals.ndim != 3:
        raise ValueError(f"`signals` must have shape (batch, leads, time), got {signals.shape}.")
    if not np.issubdtype(signals.dtype, np.floating):
        raise ValueError(
            f"`signals` must be floating point in physical units (mV), got dtype {signals.dtype}; convert ADC units "
            "with the record's gain first."
        )
    if not (isinstance(sampling_rate, numbers.Real) and math.isfinite(sampling_rate) and sampling_rate > 0):
        raise ValueError(f"`sampling_rate` must be a positive number of Hz, got {sampling_rate!r}.")
    return signals


def _check_real(severity, name: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Real):
        raise ValueError(f"The severity of `{name}` must be a number, got {severity!r}.")
    value = float(severity)
    if not math.isfinite(value) or (minimum is not None and (value <= minimum if strict else value < minimum)):
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
        raise ValueError(f"The severity of `{name}` must be a finite number{bound}, got {severity!r}.")
    return value


def _full_mask(signals: np.ndarray) -> np.ndarray:
    return np.ones(signals.shape[:2], dtype=np.int64)


def _time_axis(signals: np.ndarray, sampling_rate: float) -> np.ndarray:
    return np.arange(signals.shape[-1]) / sampling_rate


def gaussian_noise(signals: np.ndarray, sampling_rate: float, severity: float, rng: np.random.Generator) -> ShiftedECG:
    """Add white Gaussian noise at an SNR of `severity` dB, measured per record and lead on the clean signal.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`float`): signal-to-noise ratio in dB (lower = noisier).
        rng (`np.random.Generator`): source of the noise.

    Returns:
        `ShiftedECG`.
    """
    signals = _check_signals(signals, sampling_rate)
    snr_db = _check_real(severity, "gaussian_noise")
    clean = signals.astype(np.float64)
    signal_power = np.mean(clean**2, axis=-1, keepdims=True)
    noise = rng.standard_normal(clean.shape)
    noise_power = np.mean(noise**2, axis=-1, keepdims=True)
    target_power = signal_power / 10.0 ** (snr_db / 10.0)
    noise *= np.sqrt(target_power / noise_power)
    return ShiftedECG((clean + noise).astype(signals.dtype), float(sampling_rate), _full_mask(signals))


def baseline_wander(
    signals: np.ndarray, sampling_rate: float, severity: float, rng: np.random.Generator
) -> ShiftedECG:
    """Add a low-frequency sinusoid (0.05-0.5 Hz, random per record and lead) of peak amplitude `severity` mV.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`float`): peak amplitude in mV, >= 0.
        rng (`np.random.Generator`): source of frequencies and phases.

    Returns:
        `ShiftedECG`.
    """
    signals = _check_signals(signals, sampling_rate)
    amplitude = _check_real(severity, "baseline_wander", minimum=0.0)
    low, high = BASELINE_WANDER_FREQUENCY_RANGE
    frequency = rng.uniform(low, high, size=signals.shape[:2] + (1,))
    phase = rng.uniform(0.0, 2 * np.pi, size=signals.shape[:2] + (1,))
    wander = amplitude * np.sin(2 * np.pi * frequency * _time_axis(signals, sampling_rate) + phase)
    return ShiftedECG((signals + wander).astype(signals.dtype), float(sampling_rate), _full_mask(signals))


def powerline_interference(
    signals: np.ndarray,
    sampling_rate: float,
    severity: float,
    rng: np.random.Generator,
    frequency: float = 50.0,
) -> ShiftedECG:
    """Add mains interference: a `frequency` Hz sinusoid of peak amplitude `severity` mV, random phase per lead.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz; must exceed `2 * frequency`.
        severity (`float`): peak amplitude in mV, >= 0.
        rng (`np.random.Generator`): source of the phases.
        frequency (`float`, defaults to 50.0): mains frequency in Hz (50 or 60).

    Returns:
        `ShiftedECG`.
    """
    signals = _check_signals(signals, sampling_rate)
    amplitude = _check_real(severity, "powerline_interference", minimum=0.0)
    if not 0 < frequency < sampling_rate / 2:
        raise ValueError(
            f"Powerline frequency {frequency} Hz must be positive and below the Nyquist frequency "
            f"{sampling_rate / 2} Hz of signals sampled at {sampling_rate} Hz; apply this shift at a higher rate."
        )
    phase = rng.uniform(0.0, 2 * np.pi, size=signals.shape[:2] + (1,))
    interference = amplitude * np.sin(2 * np.pi * frequency * _time_axis(signals, sampling_rate) + phase)
    return ShiftedECG((signals + interference).astype(signals.dtype), float(sampling_rate), _full_mask(signals))


def amplitude_scaling(
    signals: np.ndarray, sampling_rate: float, severity: float, rng: np.random.Generator | None = None
) -> ShiftedECG:
    """Multiply the signal by `severity` (> 0); deterministic, `rng` is unused.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`float`): scale factor, > 0.
        rng (`np.random.Generator`, *optional*): unused.

    Returns:
        `ShiftedECG`.
    """
    signals = _check_signals(signals, sampling_rate)
    factor = _check_real(severity, "amplitude_scaling", minimum=0.0, strict=True)
    return ShiftedECG((signals * factor).astype(signals.dtype), float(sampling_rate), _full_mask(signals))


def _zero_leads(signals: np.ndarray, sampling_rate: float, lead_mask: np.ndarray) -> ShiftedECG:
    return ShiftedECG((signals * lead_mask[:, :, None]).astype(signals.dtype), float(sampling_rate), lead_mask)


def drop_random_leads(
    signals: np.ndarray, sampling_rate: float, severity: int, rng: np.random.Generator
) -> ShiftedECG:
    """Zero `severity` leads chosen at random for each record and mark them absent.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`int`): number of leads to drop per record, in `[0, leads]`.
        rng (`np.random.Generator`): source of the lead choice.

    Returns:
        `ShiftedECG` whose `lead_mask` has exactly `leads - severity` ones per record.
    """
    signals = _check_signals(signals, sampling_rate)
    n_leads = signals.shape[1]
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 0 <= severity <= n_leads:
        raise ValueError(
            f"The severity of `drop_random_leads` must be an integer in [0, {n_leads}], got {severity!r}."
        )
    ranks = np.argsort(rng.random(signals.shape[:2]), axis=1)
    lead_mask = (ranks >= severity).astype(np.int64)
    return _zero_leads(signals, sampling_rate, lead_mask)


def keep_lead_subset(
    signals: np.ndarray,
    sampling_rate: float,
    severity: str | Sequence[str],
    rng: np.random.Generator | None = None,
    lead_names: Sequence[str] = STANDARD_LEAD_NAMES,
) -> ShiftedECG:
    """Keep only a subset of leads (e.g. the six limb leads); zero the others and mark them absent.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`str` or sequence of `str`): a name of `LEAD_SUBSETS` or the lead names to keep.
        rng (`np.random.Generator`, *optional*): unused.
        lead_names (sequence of `str`, defaults to `STANDARD_LEAD_NAMES`): names of the input leads, in order
            (matched case-insensitively).

    Returns:
        `ShiftedECG`.
    """
    signals = _check_signals(signals, sampling_rate)
    if len(lead_names) != signals.shape[1]:
        raise ValueError(f"`lead_names` has {len(lead_names)} names for {signals.shape[1]} leads.")
    if isinstance(severity, str):
        if severity not in LEAD_SUBSETS:
            raise ValueError(
                f"Unknown lead subset {severity!r}; expected one of {sorted(LEAD_SUBSETS)} or lead names."
            )
        keep = LEAD_SUBSETS[severity]
    else:
        keep = tuple(severity)
    available = [name.lower() for name in lead_names]
    unknown = [name for name in keep if name.lower() not in available]
    if unknown:
        raise ValueError(f"Leads {unknown} to keep are not among the input leads {list(lead_names)}.")
    kept = np.isin(available, [name.lower() for name in keep])
    lead_mask = np.broadcast_to(kept.astype(np.int64), signals.shape[:2]).copy()
    return _zero_leads(signals, sampling_rate, lead_mask)


def change_sampling_rate(
    signals: np.ndarray, sampling_rate: float, severity: float, rng: np.random.Generator | None = None
) -> ShiftedECG:
    """Resample to `severity` Hz (same duration) and report that rate; deterministic, `rng` is unused.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`float`): target sampling rate in Hz, > 0.
        rng (`np.random.Generator`, *optional*): unused.

    Returns:
        `ShiftedECG` with `ceil(time * severity / sampling_rate)` samples at `severity` Hz.
    """
    from scipy.signal import resample_poly  # imported here: scipy.signal takes ~0.8 s to import

    signals = _check_signals(signals, sampling_rate)
    target_rate = _check_real(severity, "sampling_rate", minimum=0.0, strict=True)
    ratio = Fraction(target_rate / sampling_rate).limit_denominator(1000)
    if ratio == 1:
        return ShiftedECG(signals.copy(), float(sampling_rate), _full_mask(signals))
    resampled = resample_poly(signals.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return ShiftedECG(resampled.astype(signals.dtype), target_rate, _full_mask(signals))


def time_shift(
    signals: np.ndarray,
    sampling_rate: float,
    severity: float,
    rng: np.random.Generator | None = None,
    mode: str = "circular",
) -> ShiftedECG:
    """Shift the signal later by `severity` seconds (earlier if negative); deterministic, `rng` is unused.

    Args:
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity (`float`): shift in seconds, rounded to `round(severity * sampling_rate)` samples.
        rng (`np.random.Generator`, *optional*): unused.
        mode (`str`, defaults to `"circular"`): `"circular"` wraps around, `"pad"` fills with zeros.

    Returns:
        `ShiftedECG` of the same shape.
    """
    signals = _check_signals(signals, sampling_rate)
    shift = round(_check_real(severity, "time_shift") * sampling_rate)
    if mode == "circular":
        shifted = np.roll(signals, shift, axis=-1)
    elif mode == "pad":
        shifted = np.zeros_like(signals)
        n_time = signals.shape[-1]
        if shift >= 0:
            shifted[..., shift:] = signals[..., : max(n_time - shift, 0)]
        else:
            shifted[..., : max(n_time + shift, 0)] = signals[..., -shift:]
    else:
        raise ValueError(f"`mode` must be 'circular' or 'pad', got {mode!r}.")
    return ShiftedECG(shifted, float(sampling_rate), _full_mask(signals))


SHIFTS: dict[str, Callable[..., ShiftedECG]] = {
    "gaussian_noise": gaussian_noise,
    "baseline_wander": baseline_wander,
    "powerline_interference": powerline_interference,
    "amplitude_scaling": amplitude_scaling,
    "drop_random_leads": drop_random_leads,
    "keep_lead_subset": keep_lead_subset,
    "sampling_rate": change_sampling_rate,
    "time_shift": time_shift,
}
"""Shift name -> function `(signals, sampling_rate, severity, rng, **options) -> ShiftedECG`."""

SEVERITIES: dict[str, list] = {
    "gaussian_noise": [24, 12, 6, 0],
    "baseline_wander": [0.1, 0.25, 0.5, 1.0],
    "powerline_interference": [0.05, 0.1, 0.2, 0.5],
    "amplitude_scaling": [0.5, 0.75, 1.5, 2.0],
    "drop_random_leads": [1, 3, 6, 9, 11],
    "keep_lead_subset": ["limb", "precordial", "lead_II", "lead_I"],
    "sampling_rate": [100, 250, 500],
    "time_shift": [0.5, 1.0, 2.5, 5.0],
}
"""Default severity grid of each shift, from mild to severe (for `sampling_rate`: target rates in Hz)."""


def apply_shift(
    name: str, signals: np.ndarray, sampling_rate: float, severity, seed: int = 0, **options
) -> ShiftedECG:
    """Apply the shift `name` of `SHIFTS` with a `numpy.random.default_rng(seed)` generator.

    Args:
        name (`str`): a key of `SHIFTS`.
        signals (`np.ndarray` of shape `(batch, leads, time)`): ECG in mV.
        sampling_rate (`float`): Hz.
        severity: the shift's severity (see `SEVERITIES`).
        seed (`int`, defaults to 0): seed of the shift's randomness.
        **options: extra keyword arguments of the shift (e.g. `frequency=60.0`, `mode="pad"`).

    Returns:
        `ShiftedECG`.
    """
    if name not in SHIFTS:
        raise ValueError(f"Unknown shift {name!r}; expected one of {sorted(SHIFTS)}.")
    return SHIFTS[name](signals, sampling_rate, severity, np.random.default_rng(seed), **options)
