# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Class prompts for zero-shot ECG classification, shared by evaluation and training.

Each class gets several prompts (one per template) that the caller embeds with the text tower and averages into
one class embedding (`modeling_merit.zero_shot_merit`, the one zero-shot implementation). `class_prompts` builds them
from the dataset's registry entry (`dataset_scripts.registry`): the text description of every class from the
dataset's own label table (e.g. PTB-XL's `scp_statements.csv`, with descriptions shipped for its superclasses and
subclasses), put into `DEFAULT_TEMPLATES`, plus, where the spec has them, prompts in the language of the dataset's
reports (PTB-XL: German). That is the `descriptions` prompt style; where the spec also has whole prompts worded like
the dataset's reports (PTB-XL's superclasses: "sinus rhythm. normal ecg.", ...), the `report-style` style uses those
instead and `both` uses all of them (`PROMPT_STYLES`). Training's zero-shot validation AUROC uses the default style,
so it scores exactly what `eval_merit.py --task zero-shot` scores.

`load_prompts_file` reads a `--prompts FILE.json` override: a JSON object mapping every class name to a prompt or a
list of prompts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from os import PathLike

# re-exported: the evaluation's prompt templates are exactly those of the zero-shot pipeline
from modeling_merit.zero_shot_merit import DEFAULT_TEMPLATES as DEFAULT_TEMPLATES
from modeling_merit.zero_shot_merit import build_class_prompts


PROMPT_STYLES = ("descriptions", "report-style", "both")
"""How class prompts are built: `descriptions` (each class's description in `DEFAULT_TEMPLATES`, plus the
report-language prompts), `report-style` (the dataset's whole report-style prompts; a class without them keeps its
`descriptions` prompts) or `both` (all of them, averaged into one class embedding)."""

DEFAULT_PROMPT_STYLE = "report-style"
"""Chosen on PTB-XL's validation fold with the demo checkpoint (superdiagnostic macro AUROC; README "Demo results")."""


def class_prompts(
    dataset: str,
    data_dir: str | os.PathLike | None,
    label_set: str | None,
    class_names: Sequence[str],
    prompts_file: str | os.PathLike | None = None,
    prompt_style: str = DEFAULT_PROMPT_STYLE,
) -> dict[str, list[str]]:
    """Prompts of every class, in the order of `class_names`.

    Args:
        dataset (`str`): a registered dataset (`dataset_scripts.registry.DATASETS`) or any other name (a Hub id
            or folder used for pretraining), whose classes get their names put into `DEFAULT_TEMPLATES`.
        data_dir (`str` or `os.PathLike`, *optional*), label_set (`str`, *optional*): where the class descriptions
            come from (see `dataset_scripts.registry.class_descriptions`).
        class_names (`Sequence[str]`): the evaluated classes.
        prompts_file (`str` or `os.PathLike`, *optional*): a JSON override (`load_prompts_file`), which must hold
            exactly `class_names`.
        prompt_style (`str`, defaults to `DEFAULT_PROMPT_STYLE`): one of `PROMPT_STYLES`; ignored with a prompts
            file or a dataset without report-style prompts for `label_set`.

    Returns:
        `dict[str, list[str]]`: class name -> prompts.
    """
    from dataset_scripts.registry import (  # `import merit_evaluation` stays `datasets`-free
        DATASETS,
        class_descriptions,
    )

    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"Unknown prompt style {prompt_style!r}; expected one of {list(PROMPT_STYLES)}.")
    if prompts_file is not None:
        return load_prompts_file(prompts_file, class_names)
    spec = DATASETS.get(dataset)
    if spec is None or spec.class_descriptions is None:
        return build_class_prompts({name: name for name in class_names})
    prompts = build_class_prompts(class_descriptions(dataset, data_dir, label_set, class_names))
    in_report_language = spec.report_language_descriptions.get(label_set, {})
    described = {name: in_report_language[name] for name in class_names if name in in_report_language}
    if described:  # e.g. PTB-XL's mostly German reports: prompts in both languages
        for name, more in build_class_prompts(described, spec.report_language_templates).items():
            prompts[name] = prompts[name] + more
    report_style = spec.report_style_prompts.get(label_set, {})
    for name in class_names:
        if prompt_style != "descriptions" and name in report_style:
            whole = list(report_style[name])
            prompts[name] = whole if prompt_style == "report-style" else prompts[name] + whole
    return prompts


def load_prompts_file(path: str | PathLike, class_names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Read a JSON prompts override `{"CLASS": "prompt" | ["prompt", ...], ...}`.

    Args:
        path (`str` or `os.PathLike`): the JSON file.
        class_names (`Sequence[str]`, *optional*): the classes being evaluated; when given, the file must hold
            exactly these classes.

    Returns:
        `dict[str, list[str]]`: class name -> prompts, in the order of `class_names` when given, else of the file.
    """
    with open(path, encoding="utf-8") as file:
        try:
            content = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"Prompts file {path} is not valid JSON: {error}") from error
    if not isinstance(content, dict) or not content:
        raise ValueError(f"Prompts file {path} must hold a non-empty JSON object mapping class names to prompts.")
    prompts = {}
    for class_name, value in content.items():
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.strip() for p in value):
            raise ValueError(
                f"Prompts for class {class_name!r} in {path} must be a non-empty string or list of non-empty strings, "
                f"got {content[class_name]!r}."
            )
        prompts[class_name] = [prompt.strip() for prompt in value]
    if class_names is not None:
        missing = [name for name in class_names if name not in prompts]
        unknown = [name for name in prompts if name not in set(class_names)]
        if missing or unknown:
            raise ValueError(
                f"Prompts file {path} does not match the evaluated classes: missing classes {missing}, "
                f"unknown classes {unknown}."
            )
        prompts = {name: prompts[name] for name in class_names}
    return prompts
