"""Text descriptions of the PTB-XL classes, for zero-shot prompts.

- PTB-XL statements (`all`, `diagnostic`, `form`, `rhythm`): the `description` column of `scp_statements.csv`.
- `superdiagnostic` / `subdiagnostic` classes: `scp_statements.csv` has no description for these codes (only the
  statements' `diagnostic_class` / `diagnostic_subclass` columns), so `PTBXL_SUPERCLASS_DESCRIPTIONS` and
  `PTBXL_SUBCLASS_DESCRIPTIONS` ship one. Superclass names follow the PTB-XL paper (Wagner et al. 2020, Scientific
  Data 7:154: normal ECG, myocardial infarction, ST/T change, conduction disturbance, hypertrophy); subclass
  descriptions were written for MERIT by summarising the `description` of the statements that
  `scp_statements.csv` maps to each subclass (e.g. `_AVB` groups first, second and third degree AV block).
- PTB-XL's reports are mostly German, so the superclasses and subclasses also have German descriptions
  (`PTBXL_REPORT_LANGUAGE_DESCRIPTIONS`, put into `GERMAN_TEMPLATES`); the zero-shot prompts of both languages are
  averaged into one class embedding (`merit_evaluation.prompts.class_prompts`).

The dataset registry (`dataset_scripts.registry`) points at these tables; nothing else reads them by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .labels import BENCHMARK_TASKS
from .ptbxl import STATEMENTS_FILE


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

GERMAN_TEMPLATES = ("{description}", "sinusrhythmus {description}")
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

PTBXL_REPORT_LANGUAGE_DESCRIPTIONS = {
    "superdiagnostic": PTBXL_SUPERCLASS_DESCRIPTIONS_DE,
    "subdiagnostic": PTBXL_SUBCLASS_DESCRIPTIONS_DE,
}
"""Label set -> class -> German description; the statement-level label sets have only the English
`scp_statements.csv` descriptions."""


PTBXL_SUPERCLASS_REPORT_STYLE_PROMPTS = {
    "CD": (
        "left bundle branch block.",
        "right bundle branch block.",
        "prolonged pr interval. first degree av block.",
        "left axis deviation. left anterior fascicular block.",
    ),
    "HYP": (
        "voltages are high in chest leads suggesting lvh.",
        "left ventricular hypertrophy.",
        "left atrial enlargement.",
    ),
    "MI": (
        "q waves consistent with old inferior myocardial infarction.",
        "old anterior myocardial infarction.",
        "probable old myocardial infarction.",
    ),
    "NORM": ("sinus rhythm. normal ecg.", "sinus rhythm. no definite pathology."),
    "STTC": (
        "st segments are depressed. t waves are low or flat.",
        "non-specific st-t wave changes.",
        "t wave inversion suggesting ischaemia.",
    ),
}
"""Whole prompts for the 5 superclasses in the style of PTB-XL's English reports (lower case, short sentences that
end with a full stop, e.g. "sinus rhythm. normal ecg."), a class's prompts naming its common statements. Written
for MERIT from the class definitions and the wording of the *training* folds' English reports (folds 1-8; no
report of the validation or test folds was read), then kept because they raised the zero-shot macro AUROC on the
validation fold (README "Demo results"; `merit_evaluation.prompts.PROMPT_STYLES`)."""

PTBXL_REPORT_STYLE_PROMPTS = {"superdiagnostic": PTBXL_SUPERCLASS_REPORT_STYLE_PROMPTS}
"""Label set -> class -> whole prompts in the style of the reports (see `PTBXL_SUPERCLASS_REPORT_STYLE_PROMPTS`)."""


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
    if label_set not in BENCHMARK_TASKS:
        raise ValueError(f"Unknown PTB-XL label set {label_set!r}; expected one of {list(BENCHMARK_TASKS)}.")
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


def ptbxl_copy_class_descriptions(data_dir: str | os.PathLike, label_set: str) -> dict[str, str]:
    """`ptbxl_class_descriptions` on the `scp_statements.csv` of the PTB-XL copy in `data_dir`."""
    import pandas as pd

    statements_path = Path(data_dir) / STATEMENTS_FILE
    if not statements_path.is_file():
        raise ValueError(f"{statements_path} not found; PTB-XL zero-shot prompts are built from it.")
    return ptbxl_class_descriptions(pd.read_csv(statements_path, index_col=0), label_set)
