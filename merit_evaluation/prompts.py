# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Class prompts for zero-shot ECG classification.

Each class gets several prompts (one per template) that the caller embeds with the text tower and averages into
one class embedding. Descriptions come from the dataset's label table:

- PTB-XL statements (`all`, `diagnostic`, `form`, `rhythm`): the `description` column of `scp_statements.csv`.
- PTB-XL `superdiagnostic` / `subdiagnostic` classes: `scp_statements.csv` has no description for these codes
  (only the statements' `diagnostic_class` / `diagnostic_subclass` columns), so `PTBXL_SUPERCLASS_DESCRIPTIONS` and
  `PTBXL_SUBCLASS_DESCRIPTIONS` ship one. Superclass names follow the PTB-XL paper (Wagner et al. 2020, Scientific
  Data 7:154: normal ECG, myocardial infarction, ST/T change, conduction disturbance, hypertrophy); subclass
  descriptions were written for MERIT by summarising the `description` of the statements that
  `scp_statements.csv` maps to each subclass (e.g. `_AVB` groups first, second and third degree AV block).

`load_prompts_file` reads a `--prompts FILE.json` override: a JSON object mapping every class name to a prompt or a
list of prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from typing import TYPE_CHECKING

from modeling_merit.zero_shot_merit import DEFAULT_TEMPLATES, build_class_prompts


if TYPE_CHECKING:
    import pandas as pd


PTBXL_SUPERCLASS_DESCRIPTIONS = {
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
    "MI": "myocardial infarction",
    "NORM": "normal ECG",
    "STTC": "ST/T change",
}
"""Descriptions of the 5 PTB-XL diagnostic superclasses (`diagnostic_class`)."""

PTBXL_SUBCLASS_DESCRIPTIONS = {
    "AMI": "anterior myocardial infarction",
    "CLBBB": "complete left bundle branch block",
    "CRBBB": "complete right bundle branch block",
    "ILBBB": "incomplete left bundle branch block",
    "IMI": "inferior myocardial infarction",
    "IRBBB": "incomplete right bundle branch block",
    "ISCA": "ischemic ST-T changes in anterior, anterolateral, anteroseptal or lateral leads",
    "ISCI": "ischemic ST-T changes in inferior or inferolateral leads",
    "ISC_": "non-specific ischemic ST-T changes",
    "IVCD": "non-specific intraventricular conduction disturbance",
    "LAFB/LPFB": "left anterior or left posterior fascicular block",
    "LAO/LAE": "left atrial overload or enlargement",
    "LMI": "lateral myocardial infarction",
    "LVH": "left ventricular hypertrophy",
    "NORM": "normal ECG",
    "NST_": "non-specific ST changes",
    "PMI": "posterior myocardial infarction",
    "RAO/RAE": "right atrial overload or enlargement",
    "RVH": "right ventricular hypertrophy",
    "SEHYP": "septal hypertrophy",
    "STTC": "ST-T changes such as T-wave abnormalities, long QT interval, digitalis or electrolyte effects",
    "WPW": "Wolff-Parkinson-White syndrome",
    "_AVB": "atrioventricular block",
}
"""Descriptions of the 23 PTB-XL diagnostic subclasses (`diagnostic_subclass`)."""

PTBXL_LABEL_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")

GERMAN_TEMPLATES = ["{description}", "sinusrhythmus {description}"]
"""Templates in the style of PTB-XL's German reports (lower case, no punctuation, often opening with the rhythm)."""

PTBXL_SUPERCLASS_DESCRIPTIONS_DE = {
    "CD": "schenkelblock oder av-block",
    "HYP": "linksventrikuläre hypertrophie",
    "MI": "myokardinfarkt",
    "NORM": "normales ekg",
    "STTC": "st-t-veränderungen abnormales t",
}
"""German descriptions of the 5 superclasses. PTB-XL's reports are mostly German (59 % of the shipped excerpt: e.g.
"sinusrhythmus normales ekg" is the report of 32 % of its training records) while the English prompts above match
only the English reports; prompts in both languages are averaged into one class embedding. They were written from the
class definitions (no report of the validation or test folds was consulted), so zero-shot stays label-free."""

PTBXL_SUBCLASS_DESCRIPTIONS_DE = {
    "AMI": "anteriorer infarkt",
    "CLBBB": "kompletter linksschenkelblock",
    "CRBBB": "kompletter rechtsschenkelblock",
    "ILBBB": "inkompletter linksschenkelblock",
    "IMI": "inferiorer infarkt",
    "IRBBB": "inkompletter rechtsschenkelblock",
    "ISCA": "ischämische st-t-veränderungen anterior oder lateral",
    "ISCI": "ischämische st-t-veränderungen inferior",
    "ISC_": "unspezifische ischämische st-t-veränderungen",
    "IVCD": "unspezifische intraventrikuläre leitungsstörung",
    "LAFB/LPFB": "linksanteriorer oder linksposteriorer hemiblock",
    "LAO/LAE": "p-verbreiterung linksatriale belastung",
    "LMI": "lateraler infarkt",
    "LVH": "linksventrikuläre hypertrophie",
    "NORM": "normales ekg",
    "NST_": "unspezifische st-veränderungen",
    "PMI": "posteriorer infarkt",
    "RAO/RAE": "p-pulmonale rechtsatriale belastung",
    "RVH": "rechtsventrikuläre hypertrophie",
    "SEHYP": "septumhypertrophie",
    "STTC": "st-t-veränderungen abnormales t",
    "WPW": "wpw-syndrom präexzitation",
    "_AVB": "av-block",
}
"""German descriptions of the 23 subclasses (see `PTBXL_SUPERCLASS_DESCRIPTIONS_DE`)."""


def ptbxl_report_language_prompts(label_set: str, class_names: Sequence[str]) -> dict[str, list[str]]:
    """German prompts (`GERMAN_TEMPLATES` x the German descriptions) for the PTB-XL `superdiagnostic` and
    `subdiagnostic` classes, to be added to the English ones; `{}` for the statement-level label sets, whose
    classes have only the English `scp_statements.csv` descriptions.

    Args:
        label_set (`str`): the PTB-XL label set.
        class_names (`Sequence[str]`): the evaluated classes.

    Returns:
        `dict[str, list[str]]`: class name -> German prompts, for the classes that have a German description.
    """
    table = {"superdiagnostic": PTBXL_SUPERCLASS_DESCRIPTIONS_DE, "subdiagnostic": PTBXL_SUBCLASS_DESCRIPTIONS_DE}.get(label_set, {})
    return build_class_prompts({name: table[name] for name in class_names if name in table}, GERMAN_TEMPLATES)


def ptbxl_class_descriptions(scp_statements: pd.DataFrame, label_set: str) -> dict[str, str]:
    """Descriptions of the classes of a PTB-XL benchmark label set.

    Args:
        scp_statements (`pd.DataFrame`): PTB-XL's `scp_statements.csv` read with `pd.read_csv(path, index_col=0)`
            (index = statement code; columns `description`, `diagnostic`, `form`, `rhythm`, `diagnostic_class`,
            `diagnostic_subclass`).
        label_set (`str`): one of `all`, `diagnostic`, `subdiagnostic`, `superdiagnostic`, `form`, `rhythm`.

    Returns:
        `dict[str, str]`: class code -> description, sorted by class code (the canonical class order).
    """
    if label_set not in PTBXL_LABEL_SETS:
        raise ValueError(f"Unknown PTB-XL label set {label_set!r}; expected one of {list(PTBXL_LABEL_SETS)}.")
    required = {"description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"}
    missing = sorted(required - set(scp_statements.columns))
    if missing:
        raise ValueError(
            f"`scp_statements` lacks columns {missing}; read scp_statements.csv with `pd.read_csv(path, index_col=0)`."
        )
    if not all(isinstance(code, str) for code in scp_statements.index):
        raise ValueError(
            "`scp_statements` must be indexed by statement code; read it with `pd.read_csv(path, index_col=0)`."
        )
    if label_set in ("superdiagnostic", "subdiagnostic"):
        column = "diagnostic_class" if label_set == "superdiagnostic" else "diagnostic_subclass"
        shipped = PTBXL_SUPERCLASS_DESCRIPTIONS if label_set == "superdiagnostic" else PTBXL_SUBCLASS_DESCRIPTIONS
        codes = scp_statements.loc[scp_statements["diagnostic"] == 1, column].dropna().unique()
        unknown = sorted(set(codes) - set(shipped))
        if unknown:
            raise ValueError(f"No shipped description for PTB-XL {label_set} classes {unknown}.")
        return {code: shipped[code] for code in sorted(codes)}
    selected = scp_statements if label_set == "all" else scp_statements[scp_statements[label_set] == 1]
    return {code: str(selected.at[code, "description"]).strip() for code in sorted(selected.index)}


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
