"""The published PTB-XL benchmark split sizes (Strodthoff et al. 2021; DESIGN §4), checked on the full metadata.

Only the 400-row excerpt ships with the repository, so this runs when `MERIT_PTBXL_FULL_DIR` points to a full
PTB-XL v1.0.3 copy (only `ptbxl_database.csv` and `scp_statements.csv` are read); otherwise it is skipped. The
same rules are checked record by record on the shipped excerpt in `test_dataset_ptbxl.py`.
"""

import os
from pathlib import Path

import pandas as pd
import pytest

from dataset_scripts.ptbxl import aggregate_labels


PUBLISHED_SPLIT_SIZES = {  # train (folds 1-8), validation (fold 9), test (fold 10)
    "superdiagnostic": (17084, 2146, 2158),
    "subdiagnostic": (17084, 2146, 2158),
    "form": (7197, 901, 880),
    "rhythm": (16832, 2100, 2098),
    "all": (17418, 2183, 2198),
}
FULL_DIR = os.environ.get("MERIT_PTBXL_FULL_DIR")


@pytest.mark.skipif(not FULL_DIR, reason="set MERIT_PTBXL_FULL_DIR to a full PTB-XL v1.0.3 copy to run")
@pytest.mark.parametrize("task", sorted(PUBLISHED_SPLIT_SIZES))
def test_published_split_sizes(task):
    database = pd.read_csv(Path(FULL_DIR) / "ptbxl_database.csv", index_col="ecg_id")
    statements = pd.read_csv(Path(FULL_DIR) / "scp_statements.csv", index_col=0)
    assert len(database) == 21799
    labelled = aggregate_labels(database, statements, task).map(len) > 0
    folds = database.loc[labelled, "strat_fold"]
    sizes = (int((folds <= 8).sum()), int((folds == 9).sum()), int((folds == 10).sum()))
    assert sizes == PUBLISHED_SPLIT_SIZES[task]
