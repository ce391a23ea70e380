"""MIMIC-IV-ECG (v1.0) ECG-report pairs as a `datasets` builder, for contrastive pretraining.

Reads the official PhysioNet layout:

```
data_dir/
  record_list.csv              subject_id, study_id, file_name, ecg_time, path
  machine_measurements.csv     subject_id, study_id, cart_id, ecg_time, report_0 ... report_17, ...
  files/p1000/p10000032/s40689238/40689238.hea / .dat
```

The report is built from `report_0 ... report_17` by [`build_report`]. Lead names are stored
exactly as in the headers, whose order puts **aVF before aVL**: the processor reorders by name.
Records are split by `subject_id`, so no subject appears in two splits.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from ..common import (
    SPLITS,
    EcgBuilder,
    EcgBuilderConfig,
    ecg_features,
    group_split,
    load_builder,
    load_builder_in_chunks,
    read_split_file,
)
from ..wfdb_io import BadRecordError, read_digital_signal, read_header


logger = logging.getLogger(__name__)

RECORD_LIST_FILE = "record_list.csv"
MEASUREMENTS_FILE = "machine_measurements.csv"
REPORT_COLUMNS = tuple(f"report_{index}" for index in range(18))
SAMPLING_RATE = 500
N_SAMPLES = 5000
N_LEADS = 12
_VERSION = datasets.Version("1.0.0")
_WHITESPACE = re.compile(r"\s+")

_CITATION = """\
@misc{gow2023mimicivecg,
  title={{MIMIC-IV-ECG}: Diagnostic Electrocardiogram Matched Subset (version 1.0)},
  author={Gow, Brian and Pollard, Tom and Nathanson, Larry A. and Johnson, Alistair and Moody, Benjamin and
          Fernandes, Chrystinne and Greenbaum, Nathaniel and Waks, Jonathan W. and Eslami, Parastou and
          Carbonati, Tanner and Chaudhari, Ashish and Herbst, Elizabeth and Moukheiber, Dana and
          Berkowitz, Seth and Mark, Roger and Horng, Steven},
  publisher={PhysioNet}, year={2023}, doi={10.13026/4nqg-sb35}
}
"""


def build_report(parts: Iterable[object], lowercase: bool = True, separator: str = ". ", min_words: int = 4) -> str:
    """Joins the machine report statements of one ECG into one text.

    Each part is converted to text, its whitespace runs collapsed to single spaces and trailing
    periods removed; empty parts (and `NaN`) are dropped; the rest are joined with `separator`.

    Args:
        parts (`Iterable`): `report_0 ... report_17` of one row (strings or `NaN`).
        lowercase (`bool`, *optional*, defaults to `True`): lowercase the result.
        separator (`str`, *optional*, defaults to `". "`): placed between parts.
        min_words (`int`, *optional*, defaults to 4): reports with fewer whitespace-separated words
            become `""` (the builder drops their records unless `min_words` is 0).

    Returns:
        `str`: the report, or `""`.

    Example:

    ```python
    >>> build_report(["Sinus rhythm", float("nan"), "  Borderline   ECG. ", ""])
    'sinus rhythm. borderline ecg'
    ```
    """
    cleaned = []
    for part in parts:
        if not isinstance(part, str):
            continue
        text = _WHITESPACE.sub(" ", part).strip().rstrip(".").strip()
        if text:
            cleaned.append(text)
    report = separator.join(cleaned)
    if lowercase:
        report = report.lower()
    return report if len(report.split()) >= min_words else ""


@dataclass
class MimicIVECGConfig(EcgBuilderConfig):
    """Options of the MIMIC-IV-ECG builder.

    Attributes:
        report_lowercase (`bool`, defaults to `True`): lowercase the reports.
        report_separator (`str`, defaults to `". "`): joins the report statements.
        report_min_words (`int`, defaults to 4): drop records whose report has fewer words (0 keeps
            every record, with `""` where there is no report).
        split_fractions (`tuple[float, float, float]`, defaults to `(0.95, 0.025, 0.025)`): the
            expected share of subjects in train / validation / test.
        seed (`int`, defaults to 42): the subject split seed.
        split_file (`str`, *optional*): a CSV with `ecg_id` (= study_id) and `split` columns that
            replaces the seeded split; records it does not list are dropped (and counted).
        record_ids (`tuple[int]`, *optional*): prepare only these study_ids.
    """

    report_lowercase: bool = True
    report_separator: str = ". "
    report_min_words: int = 4
    split_fractions: tuple = (0.95, 0.025, 0.025)
    seed: int = 42
    split_file: str | None = None


class MimicIVECG(EcgBuilder):
    """MIMIC-IV-ECG: ~800k 10-s 12-lead ECGs at 500 Hz with machine-generated reports (no labels)."""

    VERSION = _VERSION
    BUILDER_CONFIG_CLASS = MimicIVECGConfig
    BUILDER_CONFIGS = [MimicIVECGConfig(name="pairs", version=_VERSION, description="ECG-report pairs")]
    DEFAULT_CONFIG_NAME = "pairs"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="MIMIC-IV-ECG v1.0 ECG-report pairs (500 Hz, 10 s), split by subject_id.",
            features=ecg_features(
                n_samples=N_SAMPLES, class_names=None, id_dtype="int64", extra={"ecg_time": datasets.Value("string")}
            ),
            homepage="https://physionet.org/content/mimic-iv-ecg/1.0/",
            license="odbl",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        data_dir = Path(self.config.data_dir)
        record_list_path, measurements_path = data_dir / RECORD_LIST_FILE, data_dir / MEASUREMENTS_FILE
        for path in (record_list_path, measurements_path):
            if not path.is_file():
                raise ValueError(
                    f"{path} not found: data_dir must be a MIMIC-IV-ECG copy in its PhysioNet layout "
                    f"({RECORD_LIST_FILE}, {MEASUREMENTS_FILE}, files/)"
                )
        records = _read_columns(record_list_path, ["subject_id", "study_id", "ecg_time", "path"])
        if records["study_id"].duplicated().any():
            duplicated = records["study_id"][records["study_id"].duplicated()].tolist()[:10]
            raise ValueError(f"{record_list_path} lists study_ids more than once: {duplicated}")
        if self.config.record_ids is not None:
            wanted = {int(study_id) for study_id in self.config.record_ids}
            missing = sorted(wanted - set(records["study_id"]))
            if missing:
                raise ValueError(f"record_ids {missing[:10]} are not in {record_list_path}")
            records = records[records["study_id"].isin(wanted)]

        reports = self._read_reports(measurements_path, set(records["study_id"]))
        records = records.assign(report=records["study_id"].map(reports).fillna(""))
        if self.config.report_min_words > 0:
            too_short = records["report"] == ""
            if too_short.any():
                logger.info(
                    "MIMIC-IV-ECG: dropped %d records whose report has fewer than %d words (by design)",
                    int(too_short.sum()),
                    self.config.report_min_words,
                )
            records = records[~too_short]

        if self.config.split_file is not None:
            assignment = read_split_file(self.config.split_file)
            splits = records["study_id"].astype(str).map(assignment)
            if splits.isna().any():
                logger.warning(
                    "MIMIC-IV-ECG: %d records are not in the split file %s and were dropped",
                    int(splits.isna().sum()),
                    self.config.split_file,
                )
        else:
            fractions = dict(zip(SPLITS, self.config.split_fractions))
            subject_splits = group_split(records["subject_id"].tolist(), fractions, self.config.seed)
            splits = pd.Series(subject_splits, index=records.index)
        return self._make_split_generators({split: records[splits == split] for split in SPLITS})

    def _read_reports(self, measurements_path: Path, study_ids: set) -> pd.Series:
        """study_id -> report, reading the (large) measurements table in chunks."""
        header = pd.read_csv(measurements_path, nrows=0).columns
        report_columns = [column for column in REPORT_COLUMNS if column in header]
        if "study_id" not in header or not report_columns:
            raise ValueError(f"{measurements_path} must have `study_id` and `report_0 ... report_17` columns")
        reports = {}
        text_columns = dict.fromkeys(report_columns, object)
        for chunk in pd.read_csv(
            measurements_path, usecols=["study_id", *report_columns], dtype=text_columns, chunksize=100_000
        ):
            chunk = chunk[chunk["study_id"].isin(study_ids)]
            for study_id, *parts in chunk.itertuples(index=False):
                reports[study_id] = build_report(
                    parts,
                    lowercase=self.config.report_lowercase,
                    separator=self.config.report_separator,
                    min_words=self.config.report_min_words,
                )
        return pd.Series(reports, dtype=object)

    def _example_from_record(self, record: dict) -> dict:
        header_path = os.path.join(self.config.data_dir, record["path"] + ".hea")
        header = read_header(header_path)
        if header.n_sig != N_LEADS or header.sig_len != N_SAMPLES or header.sampling_rate != SAMPLING_RATE:
            raise BadRecordError(
                header_path,
                f"expected {N_LEADS} signals x {N_SAMPLES} samples at {SAMPLING_RATE} Hz, header declares "
                f"{header.n_sig} x {header.sig_len} at {header.sampling_rate:g} Hz",
            )
        signal = read_digital_signal(header, header_path, verify_checksums=self.config.verify_signal_checksums)
        return {
            "ecg_id": record["study_id"],
            "patient_id": record["subject_id"],
            "record_path": record["path"],
            "signal": signal,
            "adc_gain": header.adc_gains,
            "baseline": header.baselines,
            "lead_names": header.lead_names,
            "sampling_rate": SAMPLING_RATE,
            "report": record["report"],
            "age": None,
            "sex": None,
            "ecg_time": None if pd.isna(record["ecg_time"]) else str(record["ecg_time"]),
        }


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns
    missing = [column for column in columns if column not in header]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}; found {list(header)}")
    return pd.read_csv(path, usecols=columns)[columns]


def load_mimic_iv_ecg(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    skip_bad_records: bool = False,
    download_mode: str | None = None,
    chunk_records: int | None = None,
    **config_kwargs,
) -> datasets.DatasetDict:
    """Prepares (or reuses) the MIMIC-IV-ECG ECG-report pairs and returns their splits.

    Args:
        data_dir (`str` or `os.PathLike`): a MIMIC-IV-ECG copy in the PhysioNet layout.
        cache_dir (`str`, *optional*): where the Arrow files go (default: the `datasets` cache).
        num_proc (`int`, *optional*): worker processes for preparation.
        skip_bad_records (`bool`, *optional*, defaults to `False`): skip and count bad records.
        download_mode (`str`, *optional*): `"force_redownload"` rebuilds the cache.
        chunk_records (`int`, *optional*): prepare in resumable chunks of this many studies (in `record_list.csv`
            order, or `record_ids` order): a preparation killed midway and restarted reuses every finished chunk
            ([`load_builder_in_chunks`]). Default: one preparation, redone from the start if it is killed.
        config_kwargs: other [`MimicIVECGConfig`] fields (`report_min_words`, `split_fractions`,
            `seed`, `split_file`, `record_ids`, ...).

    Returns:
        `datasets.DatasetDict` with `train`, `validation`, `test` (no `labels`/`multi_hot` columns:
        the pairs are unlabelled) and a `skipped_records` attribute.
    """

    def make_builder(record_ids=None) -> MimicIVECG:
        kwargs = config_kwargs if record_ids is None else {**config_kwargs, "record_ids": record_ids}
        return MimicIVECG(
            data_dir=os.fspath(data_dir),
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            skip_bad_records=skip_bad_records,
            **kwargs,
        )

    if chunk_records is None:
        return load_builder(make_builder(), num_proc=num_proc, download_mode=download_mode)
    record_ids = config_kwargs.get("record_ids")
    if record_ids is None:
        if not (Path(data_dir) / RECORD_LIST_FILE).is_file():
            raise ValueError(
                f"{Path(data_dir) / RECORD_LIST_FILE} not found: data_dir must be a MIMIC-IV-ECG copy in its "
                f"PhysioNet layout ({RECORD_LIST_FILE}, {MEASUREMENTS_FILE}, files/)"
            )
        record_ids = _read_columns(Path(data_dir) / RECORD_LIST_FILE, ["study_id"])["study_id"].tolist()
    return load_builder_in_chunks(make_builder, record_ids, chunk_records, num_proc, download_mode)
