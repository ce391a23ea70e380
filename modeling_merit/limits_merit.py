# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Limits on what one request may ask of MERIT's public surfaces: the processor, the pipelines, the Inference
Endpoints `handler.py` and the Space all read the same `MeritLimits`.

A request over a limit gets a `ValueError` that names the limit and how to raise it, before any large allocation:
records are checked against their header or shape before they are read or converted, and files are read only over
the stretch that is kept (`max_record_seconds`), never in full.

Limits (defaults in brackets):

- `max_record_seconds` (120): the stretch of a file (WFDB record, `.npy`, `.csv`) that is read; a longer record is
  read over its central `max_record_seconds` only (a warning says so);
- `max_samples_per_record` (600,000): samples per lead of a record given in memory (array, tensor, nested list: a
  longer one is an error), of what is read from a file, and of a record after resampling;
- `max_leads_per_record` (24): leads (signals) of one record;
- `min_sampling_rate`, `max_sampling_rate` (50 Hz, 10,000 Hz): the sampling rate of a record;
- `max_upsampling_ratio`, `max_downsampling_ratio` (10, 100): model rate / record rate and record rate / model rate;
- `max_batch_size` (32): records in one pipeline call or endpoint request;
- `max_candidate_labels` (64): zero-shot candidate labels;
- `max_prompts_per_label` (16): zero-shot templates, or prompts given for one label;
- `max_prompt_characters` (500): characters of one candidate label, template or prompt;
- `max_instruction_characters` (2,000): characters of a report-generation `prompt` (the instruction);
- `max_new_tokens` (256): the most `max_new_tokens` a report-generation request may ask for.

Whoever deploys changes a limit with the environment variable `MERIT_<LIMIT>` (e.g. `MERIT_MAX_BATCH_SIZE=64`: a
Space variable, an Inference Endpoint's environment), read when a pipeline is built (and by every processor call
that is given no limits), or in Python with `limits=MeritLimits(max_batch_size=64)` passed to `pipeline(...)` or to
the processor call. Request parameters cannot change them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from transformers.utils import logging


def sentence_start(text: str) -> str:
    """`text` with its first letter upper-case, to start a message with a description such as "the record"."""
    return text[:1].upper() + text[1:]


CHANNELS_LAST = "`channels_last=True` (`--channels_last` for the `merit` command)"
"""How a record whose time axis comes first is announced, in error messages that Python and command-line users read."""


logger = logging.get_logger(__name__)


ENVIRONMENT_PREFIX = "MERIT_"
"""A limit `name` is overridden by the environment variable `MERIT_<NAME>` (upper case)."""


@dataclass(frozen=True)
class MeritLimits:
    """The limits of one deployment (see the module docstring for each field and its default).

    Example:

    ```python
    >>> from modeling_merit.limits_merit import MeritLimits

    >>> MeritLimits().max_batch_size, MeritLimits(max_batch_size=4).max_batch_size
    (32, 4)
    >>> MeritLimits.from_env({"MERIT_MAX_BATCH_SIZE": "8"}).max_batch_size
    8
    ```
    """

    max_record_seconds: float = 120.0
    max_samples_per_record: int = 600_000
    max_leads_per_record: int = 24
    min_sampling_rate: float = 50.0
    max_sampling_rate: float = 10_000.0
    max_upsampling_ratio: float = 10.0
    max_downsampling_ratio: float = 100.0
    max_batch_size: int = 32
    max_candidate_labels: int = 64
    max_prompts_per_label: int = 16
    max_prompt_characters: int = 500
    max_instruction_characters: int = 2000
    max_new_tokens: int = 256

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            is_int_field = field.type in (int, "int")
            valid_type = isinstance(value, int) if is_int_field else isinstance(value, (int, float))
            if isinstance(value, bool) or not valid_type or not math.isfinite(value) or value <= 0:
                kind = "a positive integer" if is_int_field else "a positive finite number"
                raise ValueError(f"The limit `{field.name}` must be {kind}, got {value!r}.")
        if self.min_sampling_rate >= self.max_sampling_rate:
            raise ValueError(
                f"The limit `min_sampling_rate` ({self.min_sampling_rate}) must be below `max_sampling_rate` "
                f"({self.max_sampling_rate})."
            )

    @classmethod
    def from_env(cls, environ=None, **overrides) -> MeritLimits:
        """The defaults, replaced by the `MERIT_<LIMIT>` environment variables that are set, then by `overrides`."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            name = ENVIRONMENT_PREFIX + field.name.upper()
            if name not in environ:
                continue
            text = environ[name].strip()
            try:
                values[field.name] = int(text) if field.type in (int, "int") else float(text)
            except ValueError:
                kind = "an integer" if field.type in (int, "int") else "a number"
                raise ValueError(f"The environment variable {name} must be {kind}, got {text!r}.") from None
        return cls(**{**values, **overrides})

    @classmethod
    def resolve(cls, limits=None) -> MeritLimits:
        """`limits` as a `MeritLimits`: `None` gives `from_env()`; a dict or another copy of this dataclass (e.g. the
        one of a checkpoint's remote code) gives the same limits."""
        if limits is None:
            return cls.from_env()
        if isinstance(limits, cls):
            return limits
        if dataclasses.is_dataclass(limits) and not isinstance(limits, type):
            limits = dataclasses.asdict(limits)
        if isinstance(limits, dict):
            known = {field.name for field in dataclasses.fields(cls)}
            unknown = sorted(set(limits) - known)
            if unknown:
                raise ValueError(f"Unknown limit(s) {unknown}; expected some of {sorted(known)}.")
            return cls(**limits)
        raise ValueError(f"`limits` must be a MeritLimits, a dict of limits or None, got {type(limits).__name__}.")

    def error(self, limit: str, problem: str, hint: str = "") -> ValueError:
        """A `ValueError` saying `problem`, the limit it breaks, `hint` (what to do instead) and how to raise it."""
        return ValueError(
            f"{sentence_start(problem)}, more than the limit `{limit}` = {getattr(self, limit):g}. "
            f"{hint + ' ' if hint else ''}If this is intended, raise the limit: set the environment variable "
            f"{ENVIRONMENT_PREFIX}{limit.upper()}, or pass `limits=MeritLimits({limit}=...)`."
        )

    def check_count(self, limit: str, count: int, problem: str, hint: str = "") -> None:
        """Raises `error(limit, problem, hint)` when `count` is over the limit `limit`."""
        if count > getattr(self, limit):
            raise self.error(limit, problem, hint)

    def check_sampling_rate(self, sampling_rate: float, description: str) -> None:
        """Raises a `ValueError` unless `sampling_rate` lies in [`min_sampling_rate`, `max_sampling_rate`]."""
        if sampling_rate < self.min_sampling_rate:
            raise ValueError(
                f"The sampling rate of {description} is {sampling_rate:g} Hz, below the limit `min_sampling_rate` = "
                f"{self.min_sampling_rate:g} Hz; expected the rate the ECG was recorded at. If it is right, lower the "
                f"limit: set the environment variable {ENVIRONMENT_PREFIX}MIN_SAMPLING_RATE, or pass "
                "`limits=MeritLimits(min_sampling_rate=...)`."
            )
        if sampling_rate > self.max_sampling_rate:
            raise self.error("max_sampling_rate", f"The sampling rate of {description} is {sampling_rate:g} Hz")

    def check_resampling(self, source_rate: float, target_rate: float, description: str) -> None:
        """Raises a `ValueError` when resampling `source_rate` to `target_rate` multiplies or divides the number of
        samples by more than `max_upsampling_ratio` / `max_downsampling_ratio`."""
        if target_rate / source_rate > self.max_upsampling_ratio:
            raise self.error(
                "max_upsampling_ratio",
                f"Resampling {description} from {source_rate:g} Hz to the model's {target_rate:g} Hz multiplies its "
                f"samples by {target_rate / source_rate:g}",
            )
        if source_rate / target_rate > self.max_downsampling_ratio:
            raise self.error(
                "max_downsampling_ratio",
                f"Resampling {description} from {source_rate:g} Hz to the model's {target_rate:g} Hz divides its "
                f"samples by {source_rate / target_rate:g}",
            )

    def check_leads(self, num_leads: int, num_samples: int, description: str) -> None:
        """Raises a `ValueError` when a record has more leads than `max_leads_per_record`; when its samples per lead
        would fit that limit instead, the message says that the axes look swapped (raising the limit would not
        help)."""
        if num_leads > self.max_leads_per_record >= num_samples:
            raise ValueError(
                f"{sentence_start(description)} has {num_leads} leads of {num_samples} samples each: its "
                f"axes look swapped. A record is (n_leads, n_samples), or (n_samples, n_leads) with {CHANNELS_LAST}; "
                "check which one it is."
            )
        self.check_count("max_leads_per_record", num_leads, f"{description} has {num_leads} leads")

    def check_record_shape(self, num_leads: int, num_samples: int, description: str) -> None:
        """Raises a `ValueError` when a record given in memory has too many leads or samples per lead."""
        self.check_leads(num_leads, num_samples, description)
        self.check_count(
            "max_samples_per_record",
            num_samples,
            f"{description} has {num_samples} samples per lead",
            "Send a shorter excerpt (the model reads a few seconds), or the record as a file, which is read over its "
            "central `max_record_seconds`.",
        )

    def window_to_read(
        self, num_samples: int, sampling_rate: float | None, description: str | None = None
    ) -> tuple[int, int]:
        """The central `(start, stop)` samples of a file record of `num_samples` samples that are read: at most
        `max_record_seconds` (when the rate is known) and at most `max_samples_per_record`. When the window is
        shorter than the record and `description` says what the record holds (e.g. `"'a.csv' has 1000000 rows"`),
        a warning says which part is read."""
        keep = min(num_samples, self.max_samples_per_record)
        if sampling_rate is not None:
            keep = min(keep, max(int(self.max_record_seconds * sampling_rate), 1))
        start = (num_samples - keep) // 2
        if description is not None and keep < num_samples:
            logger.warning(
                f"{description}; reading its central {keep} (limits `max_record_seconds` = "
                f"{self.max_record_seconds:g}, `max_samples_per_record` = {self.max_samples_per_record})."
            )
        return start, start + keep


__all__ = ["MeritLimits"]
