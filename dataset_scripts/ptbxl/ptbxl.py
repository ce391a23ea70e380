"""PTB-XL (v1.0.3) as a `datasets` builder, one config per benchmark label set.

`datasets` >= 4 does not run loading scripts, so the builder is imported as ordinary Python:

```python
>>> from dataset_scripts.ptbxl import load_ptbxl
>>> dataset = load_ptbxl("data/ptbxl-sample", task="superdiagnostic", cache_dir="/tmp/merit-cache")
>>> dataset["train"].features["labels"].feature.names
['CD', 'HYP', 'MI', 'NORM', 'STTC']
```

See the dataset card (`README.md` next to this file) for the columns, splits and label rules.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from ..common import (
    EcgBuilder,
    EcgBuilderConfig,
    download_and_extract,
    ecg_features,
    load_builder,
    multi_hot,
    normalize_sex,
    parse_age,
    read_sha256sums,
    verify_sha256,
)
from ..wfdb_io import BadRecordError, read_digital_signal, read_header
from .labels import LABEL_SETS, TASKS, UnknownStatementError, class_names, record_labels, statement_labels


logger = logging.getLogger(__name__)

DATABASE_FILE = "ptbxl_database.csv"
STATEMENTS_FILE = "scp_statements.csv"
CHECKSUMS_FILE = "SHA256SUMS.txt"
SAMPLING_RATES = {100: "filename_lr", 500: "filename_hr"}
RECORD_SECONDS = 10
N_LEADS = 12
UNKNOWN_PATIENT_ID = -1
"""`patient_id` of rows whose patient is not recorded (rows rebuilt from PTB-XL's label matrix have none)."""
_VERSION = datasets.Version("1.0.3")
FOLD_TO_SPLIT = {**dict.fromkeys(range(1, 9), "train"), 9: "validation", 10: "test"}
PHYSIONET_ARCHIVE_URL = (
    "https://physionet.org/static/published-projects/ptb-xl/"
    "ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3.zip"
)

_CITATION = """\
@article{wagner2020ptbxl,
  title={{PTB-XL}, a large publicly available electrocardiography dataset},
  author={Wagner, Patrick and Strodthoff, Nils and Bousseljot, Ralf-Dieter and Kreiseler, Dieter and
          Lunze, Fatima I. and Samek, Wojciech and Schaeffter, Tobias},
  journal={Scientific Data}, volume={7}, number={1}, pages={154}, year={2020},
  doi={10.1038/s41597-020-0495-6}
}
@article{strodthoff2021benchmarks,
  title={Deep Learning for {ECG} Analysis: Benchmarks and Insights from {PTB-XL}},
  author={Strodthoff, Nils and Wagner, Patrick and Schaeffter, Tobias and Samek, Wojciech},
  journal={IEEE Journal of Biomedical and Health Informatics}, volume={25}, number={5},
  pages={1519--1528}, year={2021}, doi={10.1109/JBHI.2020.3022989}
}
"""

_DESCRIPTIONS = {
    "all": "every SCP-ECG statement (71 classes)",
    "diagnostic": "diagnostic statements (44 classes)",
    "subdiagnostic": "diagnostic subclasses (23 classes)",
    "superdiagnostic": "diagnostic superclasses (5 classes)",
    "form": "form statements (19 classes)",
    "rhythm": "rhythm statements (12 classes)",
    "pretraining": "every record with its report and all statements (71 classes), none dropped",
}


@dataclass
class PTBXLConfig(EcgBuilderConfig):
    """A PTB-XL label set.

    Attributes:
        task (`str`, defaults to `"superdiagnostic"`): `all`, `diagnostic`, `subdiagnostic`,
            `superdiagnostic`, `form`, `rhythm` or `pretraining`.
        sampling_rate (`int`, defaults to 100): 100 (`records100/`) or 500 (`records500/`).
        verify_sha256 (`bool`, defaults to `False`): check every file read against the
            `SHA256SUMS.txt` of `data_dir` (files it does not list are counted and logged).
        record_ids (`tuple[int]`, *optional*): prepare only these `ecg_id`s.
    """

    task: str = "superdiagnostic"
    sampling_rate: int = 100
    verify_sha256: bool = False


class PTBXL(EcgBuilder):
    """PTB-XL: 21,799 10-s 12-lead ECGs; splits by `strat_fold` (1-8 train, 9 validation, 10 test).

    Rows with an empty `report` are kept with `report=""` and `has_report=False` (never invented text), rows without a
    `patient_id` get `UNKNOWN_PATIENT_ID`, and records whose file at the requested rate is not in `data_dir` are
    skipped with a warning that counts them (a copy may ship some records at 100 Hz only).
    """

    VERSION = _VERSION
    METADATA_FILES = (DATABASE_FILE, STATEMENTS_FILE)
    BUILDER_CONFIG_CLASS = PTBXLConfig
    BUILDER_CONFIGS = [
        PTBXLConfig(name=task, version=_VERSION, task=task, description=_DESCRIPTIONS[task]) for task in TASKS
    ]
    DEFAULT_CONFIG_NAME = "superdiagnostic"

    def _info(self) -> datasets.DatasetInfo:
        # Called by `DatasetBuilder.__init__` once the config (with overrides) exists.
        if self.config.task not in TASKS:
            raise ValueError(f"unknown PTB-XL task {self.config.task!r}; expected one of {TASKS}")
        if self.config.sampling_rate not in SAMPLING_RATES:
            raise ValueError(
                f"sampling_rate must be 100 or 500 (the rates PTB-XL ships), got {self.config.sampling_rate}"
            )
        return datasets.DatasetInfo(
            description=f"PTB-XL v1.0.3, {_DESCRIPTIONS[self.config.task]}, {self.config.sampling_rate} Hz.",
            features=ecg_features(
                n_samples=RECORD_SECONDS * self.config.sampling_rate,
                class_names=LABEL_SETS[self.config.task],
                id_dtype="int32",
                extra={"strat_fold": datasets.Value("int8"), "has_report": datasets.Value("bool")},
            ),
            homepage="https://physionet.org/content/ptb-xl/1.0.3/",
            license="cc-by-4.0",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        data_dir = Path(self.config.data_dir)
        database_path, statements_path = data_dir / DATABASE_FILE, data_dir / STATEMENTS_FILE
        for path in (database_path, statements_path):
            if not path.is_file():
                raise ValueError(
                    f"{path} not found: data_dir must be a PTB-XL copy in its PhysioNet layout "
                    f"({DATABASE_FILE}, {STATEMENTS_FILE}, records100/, records500/)"
                )
        checksums = self._read_checksums(data_dir)
        filename_column = SAMPLING_RATES[self.config.sampling_rate]
        columns = ["strat_fold", "scp_codes", filename_column, "patient_id", "report", "age", "sex"]
        database = pd.read_csv(database_path, index_col="ecg_id", usecols=["ecg_id", *columns])
        statements = pd.read_csv(statements_path, index_col=0)

        task = self.config.task
        expected_classes = list(LABEL_SETS[task])
        if class_names(statements, task) != expected_classes:
            raise ValueError(
                f"{statements_path} gives the {task!r} classes {class_names(statements, task)}, but the canonical "
                f"PTB-XL v1.0.3 list is {expected_classes}"
            )
        if self.config.record_ids is not None:
            wanted = [int(ecg_id) for ecg_id in self.config.record_ids]
            missing = sorted(set(wanted) - set(database.index))
            if missing:
                raise ValueError(f"record_ids {missing[:10]} are not in {database_path}")
            database = database.loc[wanted]

        code_labels = statement_labels(statements, task)
        records_by_split = {"train": [], "validation": [], "test": []}
        unverified = dropped = 0
        absent = []  # records of the database whose file at this rate is not in data_dir
        for ecg_id, *values in database[columns].itertuples(name=None):
            row = dict(zip(columns, values))
            fold = int(row["strat_fold"])
            split = FOLD_TO_SPLIT.get(fold)
            try:
                labels = record_labels(row["scp_codes"], code_labels)
                if split is None:
                    raise ValueError(f"strat_fold {fold} is not in 1-10")
            except (UnknownStatementError, ValueError) as error:
                self._skip_or_raise(BadRecordError(database_path, f"ecg_id {ecg_id}: {error}"), split)
                continue
            if not labels and task != "pretraining":
                dropped += 1
                continue
            record_path = row[filename_column]
            if not (data_dir / f"{record_path}.hea").is_file():
                absent.append(int(ecg_id))
                continue
            sha256 = None
            if checksums is not None:
                sha256 = {suffix: checksums.get(f"{record_path}{suffix}") for suffix in (".hea", ".dat")}
                unverified += sum(value is None for value in sha256.values())
            records_by_split[split].append(
                {
                    "ecg_id": int(ecg_id),
                    "patient_id": UNKNOWN_PATIENT_ID if pd.isna(row["patient_id"]) else int(row["patient_id"]),
                    "record_path": record_path,
                    "report": row["report"].strip() if isinstance(row["report"], str) else "",
                    "labels": labels,
                    "strat_fold": fold,
                    "age": row["age"],
                    "sex": row["sex"],
                    "sha256": sha256,
                }
            )
        if absent:
            logger.warning(
                "PTB-XL at %d Hz: skipped %d of %d records whose %s file is not in %s (e.g. ecg_id %s); this copy "
                "ships them at another rate only (the 100 Hz records are in records100/).",
                self.config.sampling_rate,
                len(absent),
                len(database),
                filename_column,
                data_dir,
                ", ".join(map(str, absent[:5])),
            )
        if dropped:
            logger.info("PTB-XL/%s: dropped %d records without a label of the set (by design)", task, dropped)
        if unverified:
            logger.warning(
                "PTB-XL: %d record files are not listed in %s and were not verified", unverified, CHECKSUMS_FILE
            )
        return self._make_split_generators({split: pd.DataFrame(rows) for split, rows in records_by_split.items()})

    def _read_checksums(self, data_dir: Path) -> dict[str, str] | None:
        """Reads SHA256SUMS.txt and verifies the metadata tables it lists (when `verify_sha256`)."""
        if not self.config.verify_sha256:
            return None
        sums_path = data_dir / CHECKSUMS_FILE
        if not sums_path.is_file():
            raise ValueError(f"verify_sha256=True but {sums_path} does not exist")
        checksums = read_sha256sums(sums_path)
        for name in (DATABASE_FILE, STATEMENTS_FILE):
            if name in checksums:
                verify_sha256(data_dir / name, checksums[name])
        return checksums

    def _example_from_record(self, record: dict) -> dict:
        base_path = os.path.join(self.config.data_dir, record["record_path"])
        header_path = base_path + ".hea"
        if record["sha256"] is not None:
            for suffix, expected in record["sha256"].items():
                if expected is not None:
                    verify_sha256(base_path + suffix, expected)
        header = read_header(header_path)
        n_samples = RECORD_SECONDS * self.config.sampling_rate
        if header.n_sig != N_LEADS or header.sig_len != n_samples or header.sampling_rate != self.config.sampling_rate:
            raise BadRecordError(
                header_path,
                f"expected {N_LEADS} signals x {n_samples} samples at {self.config.sampling_rate} Hz, header declares "
                f"{header.n_sig} x {header.sig_len} at {header.sampling_rate:g} Hz",
            )
        signal = read_digital_signal(header, header_path, verify_checksums=self.config.verify_signal_checksums)
        class_list = LABEL_SETS[self.config.task]
        return {
            "ecg_id": record["ecg_id"],
            "patient_id": record["patient_id"],
            "record_path": record["record_path"],
            "signal": signal,
            "adc_gain": header.adc_gains,
            "baseline": header.baselines,
            "lead_names": header.lead_names,
            "sampling_rate": self.config.sampling_rate,
            "report": record["report"],
            "has_report": bool(record["report"]),
            "labels": record["labels"],
            "multi_hot": multi_hot(record["labels"], class_list),
            "age": parse_age(record["age"]),
            "sex": normalize_sex(record["sex"]),
            "strat_fold": record["strat_fold"],
        }


def load_ptbxl(
    data_dir: str | os.PathLike,
    task: str = "superdiagnostic",
    sampling_rate: int = 100,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    skip_bad_records: bool = False,
    download_mode: str | None = None,
    **config_kwargs,
) -> datasets.DatasetDict:
    """Prepares (or reuses) PTB-XL for one label set and returns its splits.

    Args:
        data_dir (`str` or `os.PathLike`): a PTB-XL copy in the PhysioNet layout (e.g. `data/ptbxl-sample`).
        task (`str`, *optional*, defaults to `"superdiagnostic"`): `all`, `diagnostic`,
            `subdiagnostic`, `superdiagnostic`, `form`, `rhythm` or `pretraining`.
        sampling_rate (`int`, *optional*, defaults to 100): 100 or 500 Hz.
        cache_dir (`str`, *optional*): where the Arrow files go (default: the `datasets` cache).
        num_proc (`int`, *optional*): worker processes for preparation.
        skip_bad_records (`bool`, *optional*, defaults to `False`): skip and count bad records
            (listed in the result's `skipped_records`) instead of raising [`BadRecordError`].
        download_mode (`str`, *optional*): `"force_redownload"` rebuilds the cache.
        config_kwargs: other [`PTBXLConfig`] fields, e.g. `record_ids=(1, 2, 3)`, `verify_sha256=True`.

    Returns:
        `datasets.DatasetDict` with `train` (folds 1-8), `validation` (fold 9) and `test` (fold 10),
        and a `skipped_records` attribute (list of `{"split", "path", "reason"}`).
    """
    builder = PTBXL(
        config_name=task,
        data_dir=os.fspath(data_dir),
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        sampling_rate=sampling_rate,
        skip_bad_records=skip_bad_records,
        **config_kwargs,
    )
    return load_builder(builder, num_proc=num_proc, download_mode=download_mode)


def download_ptbxl(target_dir: str | os.PathLike) -> Path:
    """Downloads and extracts the official PTB-XL v1.0.3 archive from PhysioNet (~1.8 GB zipped).

    Opt-in network access; verify afterwards with `load_ptbxl(..., verify_sha256=True)`.

    Returns:
        `Path`: the extracted folder, to pass as `data_dir`.
    """
    download_and_extract(PHYSIONET_ARCHIVE_URL, target_dir)
    return Path(target_dir) / PHYSIONET_ARCHIVE_URL.rsplit("/", 1)[-1].removesuffix(".zip")
