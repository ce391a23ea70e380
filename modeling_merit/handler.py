# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Hugging Face Inference Endpoints handler for MERIT checkpoints (copied next to every checkpoint's weights).

An Inference Endpoint created from a repository that holds a `handler.py` builds `EndpointHandler(path)` once and
calls it with every request's JSON body. This handler answers with the MERIT pipelines the checkpoint carries
(`custom_pipelines` in its `config.json`, loaded with `trust_remote_code=True`), so it runs the checkpoint's own
preprocessing and scoring code. The endpoint installs the checkpoint's `requirements.txt` (`wfdb`, `scipy`) first.

Request body:

```json
{
  "inputs": [[0.01, 0.02, ...], ...],
  "parameters": {"sampling_rate": 500, "lead_names": ["I", "II", ...], "candidate_labels": ["normal ECG", "..."]}
}
```

- `inputs`: one ECG as a nested list leads x samples (in mV; `null` for a missing sample), an uploaded WFDB record as
  base64 strings `{"hea": "<base64>", "dat": "<base64>"}`, or a list of those (a batch, answered by a list);
- `parameters` (optional): `task` (one of the checkpoint's pipeline tasks; by default zero-shot classification when
  `candidate_labels` is given, else the checkpoint's classifier or report generator, else feature extraction),
  `sampling_rate` and `lead_names` (for nested lists; WFDB headers carry their own), and the task's arguments:
  `candidate_labels`, `hypothesis_template` (zero-shot), `top_k`, `threshold` (classification), `embedding`,
  `normalize` (features), `prompt`, `max_new_tokens`, `num_beams`, `num_return_sequences`, `generate_kwargs`
  (report generation).

Answer: the pipeline's output, e.g. `[{"label": "normal ECG", "score": ...}, ...]`; report generation answers a
list of `{"generated_text": ...}` per record (one per returned sequence). A request that cannot be answered raises
a `ValueError` that says what was wrong.

Limits. Every request is checked against the pipelines' `MeritLimits` (`limits_merit.py`: records per request,
leads and samples per record, sampling rate and resampling ratio, the stretch of an uploaded record that is read,
candidate labels and prompts, the instruction's length, `max_new_tokens`) before anything large is allocated; set
them with the endpoint's environment variables `MERIT_<LIMIT>` (e.g. `MERIT_MAX_BATCH_SIZE=64`). Nested lists are
converted to arrays by the pipeline, after their shape is checked. Requests may be answered concurrently: each one
writes its uploads to its own temporary folder.
"""

import base64
import binascii
import json
import os
import threading

from transformers import pipeline


TASK_ARGUMENTS = {
    "zero-shot-ecg-classification": ("candidate_labels", "hypothesis_template"),
    "ecg-classification": ("top_k", "threshold"),
    "ecg-report-generation": ("prompt", "max_new_tokens", "num_beams", "num_return_sequences", "generate_kwargs"),
    "ecg-feature-extraction": ("embedding", "normalize"),
}
"""The request parameters each task accepts, besides `sampling_rate` and `lead_names`; the first task of this order
that a checkpoint carries is loaded at start-up."""


class EndpointHandler:
    """Answers Inference Endpoints requests with the MERIT pipelines of the checkpoint in `path`.

    Args:
        path (`str`): the checkpoint folder (the repository the endpoint was created from).
    """

    def __init__(self, path: str = ""):
        self.path = path or "."
        with open(os.path.join(self.path, "config.json"), encoding="utf-8") as file:
            self.tasks = list(json.load(file).get("custom_pipelines", {}))
        if not self.tasks:
            raise ValueError(
                f"{self.path}/config.json lists no `custom_pipelines`; save the checkpoint with MERIT's "
                "save_pretrained."
            )
        self._pipelines = {}
        self._loading = threading.Lock()
        # load the checkpoint's main task at start-up, so that the first request does not wait for it
        self._pipeline(next(task for task in TASK_ARGUMENTS if task in self.tasks))

    def default_task(self, candidate_labels) -> str:
        """The task of a request without `task`: zero-shot classification when it gives `candidate_labels`, else the
        checkpoint's classifier or report generator, else feature extraction."""
        preferred = ["ecg-classification", "ecg-report-generation", "ecg-feature-extraction"]
        if candidate_labels is not None:
            preferred.insert(0, "zero-shot-ecg-classification")
        return next((task for task in preferred if task in self.tasks), self.tasks[0])

    def _pipeline(self, task: str):
        """The pipeline of `task`, loaded on first use (each task loads its own copy of the model)."""
        if task not in self.tasks:
            raise ValueError(f"`task` must be one of this checkpoint's tasks {self.tasks}, got {task!r}.")
        with self._loading:  # concurrent first requests of a task load it once
            if task not in self._pipelines:
                self._pipelines[task] = pipeline(task, model=self.path, trust_remote_code=True)
        return self._pipelines[task]

    def __call__(self, data: dict):
        """Answers one request body (see the module docstring)."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('The request body must be a JSON object with "inputs" (and optionally "parameters").')
        if not isinstance(data.get("parameters") or {}, dict):
            raise ValueError(f'"parameters" must be a JSON object, got {type(data["parameters"]).__name__}.')
        parameters = dict(data.get("parameters") or {})
        task = parameters.pop("task", None) or self.default_task(parameters.get("candidate_labels"))
        if not isinstance(task, str) or task not in TASK_ARGUMENTS:
            raise ValueError(f"Unknown `task` {task!r}; expected one of {self.tasks}.")
        allowed = {"sampling_rate", "lead_names", *TASK_ARGUMENTS[task]}
        unknown = sorted(set(parameters) - allowed)
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown} for task {task!r}; expected some of {sorted(allowed)}.")
        return self._pipeline(task)(decode_inputs(data["inputs"]), **parameters)


def decode_inputs(inputs):
    """Turns the JSON `inputs` into pipeline records: a nested list leads x samples becomes `{"ecg": nested list}`
    (the pipeline checks its size against its limits, then converts it), a `{"hea", "dat"}` object of base64 strings
    becomes bytes; a list of records is decoded element-wise."""
    if isinstance(inputs, dict):
        if set(inputs) != {"hea", "dat"}:
            raise ValueError(
                f'An uploaded WFDB record must be {{"hea": "<base64>", "dat": "<base64>"}}, got keys {sorted(inputs)}.'
            )
        return {key: _base64_bytes(value, key) for key, value in inputs.items()}
    if isinstance(inputs, list) and inputs:
        depth = _nesting_depth(inputs)
        if depth == 2:
            return {"ecg": inputs}
        if depth == 3:
            return [{"ecg": record} for record in inputs]
        if all(isinstance(record, dict) for record in inputs):
            return [decode_inputs(record) for record in inputs]
    raise ValueError(
        '"inputs" must be an ECG as a nested list leads x samples, {"hea": "<base64>", "dat": "<base64>"}, or a list '
        f"of these; got {_describe(inputs)}."
    )


def _base64_bytes(value, key: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f'"{key}" of an uploaded WFDB record must be a base64 string, got {type(value).__name__}.')
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise ValueError(f'"{key}" of an uploaded WFDB record is not valid base64: {error}') from error


def _nesting_depth(value) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth if isinstance(value, (int, float)) and not isinstance(value, bool) else -1


def _describe(value) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} {type(value[0]).__name__ if value else 'items'}"
    return type(value).__name__
