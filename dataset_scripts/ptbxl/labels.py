"""PTB-XL benchmark label sets (Strodthoff et al., 2021) computed from `scp_statements.csv`.

Rules (DESIGN §4):

- `all`: every SCP statement (71 classes);
- `diagnostic`: statements with `diagnostic == 1` (44);
- `subdiagnostic`: the `diagnostic_subclass` of those statements (23);
- `superdiagnostic`: their `diagnostic_class` (5: CD, HYP, MI, NORM, STTC);
- `form`: statements with `form == 1` (19);
- `rhythm`: statements with `rhythm == 1` (12);
- `pretraining`: like `all`, but records without any statement are kept.

Every key of a record's `scp_codes` counts, whatever its likelihood (form and rhythm statements
mostly carry likelihood 0). Records with no label of the chosen set are dropped by the builder.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd


BENCHMARK_TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
TASKS = BENCHMARK_TASKS + ("pretraining",)
_LABEL_SETS_FILE = Path(__file__).resolve().parent / "label_sets.csv"


class UnknownStatementError(KeyError):
    """A record's `scp_codes` names a statement missing from `scp_statements.csv`."""

    def __init__(self, codes: Iterable[str]):
        self.codes = sorted(codes)
        super().__init__(self.codes)

    def __str__(self) -> str:
        return f"unknown SCP statement codes {self.codes} (not in scp_statements.csv)"


def _load_label_sets() -> dict[str, tuple[str, ...]]:
    with open(_LABEL_SETS_FILE, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    label_sets = {
        task: tuple(sorted(row["class_name"] for row in rows if row["label_set"] == task)) for task in BENCHMARK_TASKS
    }
    label_sets["pretraining"] = label_sets["all"]
    return label_sets


LABEL_SETS: dict[str, tuple[str, ...]] = _load_label_sets()
"""The canonical, sorted class list of each task, computed from PTB-XL v1.0.3's `scp_statements.csv`
(shipped as `label_sets.csv`). `pretraining` uses the `all` list."""


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown PTB-XL task {task!r}; expected one of {TASKS}")


def _statements_by_code(statements: pd.DataFrame) -> pd.DataFrame:
    """Indexes the statement table by SCP code, whether or not it was read with `index_col=0`."""
    if "diagnostic" not in statements.columns:
        raise ValueError(f"not a PTB-XL statement table (no `diagnostic` column): columns {list(statements.columns)}")
    if isinstance(statements.index, pd.RangeIndex) and statements.columns[0] in ("Unnamed: 0", "", "scp_code"):
        statements = statements.set_index(statements.columns[0])
    return statements


def statement_labels(statements: pd.DataFrame, task: str) -> dict[str, list[str]]:
    """Maps every SCP code of the statement table to its labels under `task` (`[]` when none).

    Args:
        statements (`pd.DataFrame`): `scp_statements.csv` as read by `pd.read_csv` (with or without `index_col=0`).
        task (`str`): one of [`TASKS`].
    """
    _check_task(task)
    statements = _statements_by_code(statements)
    mapping = {}
    for code, row in statements.iterrows():
        if task in ("all", "pretraining"):
            labels = [code]
        elif task in ("diagnostic", "form", "rhythm"):
            labels = [code] if row[task] == 1 else []
        else:
            column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
            labels = [row[column]] if row["diagnostic"] == 1 and isinstance(row[column], str) else []
        mapping[str(code)] = labels
    return mapping


def class_names(statements: pd.DataFrame, task: str) -> list[str]:
    """The sorted class list of `task` computed from a statement table."""
    return sorted({label for labels in statement_labels(statements, task).values() for label in labels})


def parse_scp_codes(scp_codes: str | Mapping) -> list[str]:
    """The statement codes of one `scp_codes` entry (a Python-dict string such as `"{'NORM': 100.0}"`)."""
    if isinstance(scp_codes, Mapping):
        return [str(code) for code in scp_codes]
    try:
        parsed = ast.literal_eval(scp_codes)
    except (ValueError, SyntaxError):
        raise ValueError(f"malformed scp_codes {scp_codes!r}; expected a dict such as \"{{'NORM': 100.0}}\"") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"malformed scp_codes {scp_codes!r}; expected a dict such as \"{{'NORM': 100.0}}\"")
    return [str(code) for code in parsed]


def record_labels(scp_codes: str | Mapping, code_labels: Mapping[str, list[str]]) -> list[str]:
    """The sorted, de-duplicated labels of one record.

    Args:
        scp_codes (`str` or `Mapping`): the record's `scp_codes` entry.
        code_labels (`Mapping[str, list[str]]`): from [`statement_labels`].

    Raises:
        [`UnknownStatementError`]: when a code is not in the statement table.
    """
    codes = parse_scp_codes(scp_codes)
    unknown = [code for code in codes if code not in code_labels]
    if unknown:
        raise UnknownStatementError(unknown)
    return sorted({label for code in codes for label in code_labels[code]})


def aggregate_labels(database: pd.DataFrame, statements: pd.DataFrame, task: str) -> pd.Series:
    """The sorted label list of every record under `task`.

    Works on the two tables exactly as `pd.read_csv` returns them: `ptbxl_database.csv` with any
    index (e.g. `index_col="ecg_id"` or none; only its `scp_codes` column is used, still a string)
    and `scp_statements.csv` with `index_col=0` or without (the unnamed first column is then used
    as the code).

    Args:
        database (`pd.DataFrame`): the record table.
        statements (`pd.DataFrame`): the statement table.
        task (`str`): one of `all`, `diagnostic`, `subdiagnostic`, `superdiagnostic`, `form`,
            `rhythm`, `pretraining`.

    Returns:
        `pd.Series` of `list[str]` aligned with `database.index`; records without a label of
        the set get `[]` (the builder drops them except for `pretraining`).

    Raises:
        `ValueError`: unknown task, or a record naming a statement missing from `statements`.

    Example:

    ```python
    >>> database = pd.read_csv("ptbxl_database.csv", index_col="ecg_id")
    >>> statements = pd.read_csv("scp_statements.csv", index_col=0)
    >>> aggregate_labels(database, statements, "superdiagnostic").loc[1]
    ['NORM']
    ```
    """
    code_labels = statement_labels(statements, task)
    labels = []
    for index, scp_codes in database["scp_codes"].items():
        try:
            labels.append(record_labels(scp_codes, code_labels))
        except UnknownStatementError as error:
            raise ValueError(f"record {index}: {error}") from None
    return pd.Series(labels, index=database.index, name=f"{task}_labels", dtype=object)
