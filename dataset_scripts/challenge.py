"""Shared builder for datasets in the PhysioNet/CinC Challenge 2020/2021 layout (CPSC2018, Chapman).

Each record is a WFDB header plus a MATLAB v4 `.mat` file holding `val` (leads x time, int16), e.g.

```
A0001 12 500 7500 05-Feb-2020 11:39:16
A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I
...
#Age: 74
#Sex: Male
#Dx: 59118001
```

Diagnoses are SNOMED-CT codes on the `#Dx:` line, mapped to class names by a label table (CSV
with columns `snomed_ct_code`, `abbreviation`, `description`, `class_name`; several codes may map
to one class). Records are found by walking `data_dir` for `*.hea`, so both the Challenge layout
(`training/cpsc_2018/g1/A0001.hea`) and the stand-alone PhysioNet releases
(`WFDBRecords/01/010/JS00001.hea`) work. Record lengths vary and are kept whole.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from .common import (
    SPLITS,
    EcgBuilder,
    EcgBuilderConfig,
    ecg_features,
    multi_hot,
    normalize_sex,
    parse_age,
    read_split_file,
    stratified_split,
)
from .wfdb_io import BadRecordError, WfdbHeader, read_digital_signal, read_header


logger = logging.getLogger(__name__)

N_LEADS = 12
UNKNOWN_CODE_POLICIES = ("error", "ignore")


def read_label_table(path: str | os.PathLike) -> dict[str, str]:
    """Reads a SNOMED-CT label table: code -> class name.

    Raises:
        `ValueError`: missing columns or a code listed twice.
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"snomed_ct_code", "class_name"} <= set(table.columns):
        raise ValueError(
            f"label table {path} needs columns `snomed_ct_code` and `class_name`, got {list(table.columns)}"
        )
    duplicated = table["snomed_ct_code"][table["snomed_ct_code"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"label table {path} lists SNOMED-CT codes more than once: {duplicated}")
    return dict(zip(table["snomed_ct_code"].str.strip(), table["class_name"].str.strip()))


def read_label_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """Reads the `description` column of a SNOMED-CT label table: class name -> description, sorted by class name.

    A class that several codes map to gets their descriptions joined with " or " (e.g. Chapman `PAC`: "premature
    atrial contraction or supraventricular premature beats"). Rows without a class name are left out.

    Raises:
        `ValueError`: the table has no `class_name` or `description` column.
    """
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"class_name", "description"} <= set(table.columns):
        raise ValueError(
            f"label table {path} needs columns `class_name` and `description` for class descriptions, got "
            f"{list(table.columns)}"
        )
    return {
        class_name: " or ".join(dict.fromkeys(group["description"].str.strip()))
        for class_name, group in table.groupby("class_name", sort=True)
        if class_name
    }


def parse_challenge_comments(header: WfdbHeader, path: str) -> dict:
    """Reads `#Age:`, `#Sex:` and `#Dx:` from a Challenge header's comments.

    Returns:
        `dict` with `age` (`float` or `None`), `sex` (`"male"`, `"female"` or `None`) and
        `codes` (`list[str]`, the SNOMED-CT codes in header order).

    Raises:
        [`BadRecordError`]: no `#Dx:` line, or a code that is not a number.
    """
    fields = {}
    for comment in header.comments:
        key, separator, value = comment.partition(":")
        if separator:
            fields[key.strip().lower()] = value.strip()
    if "dx" not in fields:
        raise BadRecordError(path, "no `#Dx:` line (SNOMED-CT diagnoses)")
    codes = [code.strip() for code in fields["dx"].split(",") if code.strip()]
    malformed = [code for code in codes if not code.isdigit()]
    if malformed or not codes:
        raise BadRecordError(path, f"malformed `#Dx:` codes {malformed or fields['dx']!r}; expected SNOMED-CT numbers")
    return {"age": parse_age(fields.get("age")), "sex": normalize_sex(fields.get("sex")), "codes": codes}


def find_headers(data_dir: str | os.PathLike) -> list[Path]:
    """All `.hea` files under `data_dir`, in a deterministic (sorted) order."""
    headers = []
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        headers.extend(Path(root) / name for name in sorted(files) if name.endswith(".hea"))
    return headers


@dataclass
class ChallengeConfig(EcgBuilderConfig):
    """Options of the Challenge-layout builders.

    Attributes:
        label_table (`str`, *optional*): a SNOMED-CT -> class CSV replacing the shipped table.
        unknown_codes (`str`, *optional*): what to do with `#Dx` codes absent from the table:
            `"error"` (a bad record: raise, or skip with `skip_bad_records`) or `"ignore"` (they
            stay in `snomed_codes` but give no label; their count is logged). Defaults per dataset.
        drop_unlabelled (`bool`, defaults to `True`): drop records with no class of the table.
        split_fractions (`tuple[float, float, float]`, defaults to `(0.7, 0.1, 0.2)`): train /
            validation / test shares of the seeded stratified split.
        seed (`int`, defaults to 42): the split seed.
        split_file (`str`, *optional*): a CSV with `ecg_id` (record name) and `split` columns that
            replaces the seeded split; records it does not list are dropped (and counted).
        record_ids (`tuple[str]`, *optional*): prepare only these record names.
    """

    label_table: str | None = None
    unknown_codes: str | None = None
    drop_unlabelled: bool = True
    split_fractions: tuple = (0.7, 0.1, 0.2)
    seed: int = 42
    split_file: str | None = None


class ChallengeBuilder(EcgBuilder):
    """Base builder for the Challenge layout; subclasses set the table, the policy and `_info` text."""

    BUILDER_CONFIG_CLASS = ChallengeConfig
    DEFAULT_LABEL_TABLE: Path
    DEFAULT_UNKNOWN_CODES: str

    @property
    def code_to_class(self) -> dict[str, str]:
        if not hasattr(self, "_code_to_class"):
            self._code_to_class = read_label_table(self.config.label_table or self.DEFAULT_LABEL_TABLE)
        return self._code_to_class

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.code_to_class.values()) - {""})

    @property
    def unknown_codes(self) -> str:
        policy = self.config.unknown_codes or self.DEFAULT_UNKNOWN_CODES
        if policy not in UNKNOWN_CODE_POLICIES:
            raise ValueError(f"unknown_codes must be one of {UNKNOWN_CODE_POLICIES}, got {policy!r}")
        return policy

    def _features(self) -> datasets.Features:
        return ecg_features(
            n_samples=None,
            class_names=self.class_names,
            id_dtype="string",
            extra={"snomed_codes": datasets.List(datasets.Value("string"))},
        )

    def _labels(self, codes: list[str], path: str, unmapped: Counter) -> list[str]:
        """The sorted class names of a record's codes, applying the unknown-code policy."""
        unknown = [code for code in codes if code not in self.code_to_class]
        if unknown:
            if self.unknown_codes == "error":
                raise BadRecordError(path, f"SNOMED-CT codes {unknown} are not in the label table")
            unmapped.update(unknown)
        return sorted({self.code_to_class[code] for code in codes if self.code_to_class.get(code)})

    def _split_generators(self, dl_manager):
        data_dir = Path(self.config.data_dir)
        if not data_dir.is_dir():
            raise ValueError(f"data_dir {data_dir} is not a directory")
        headers = find_headers(data_dir)
        if not headers:
            raise ValueError(
                f"no WFDB headers (*.hea) found under {data_dir}; expected the PhysioNet Challenge layout"
            )
        by_name = {}
        for header_path in headers:
            if header_path.stem in by_name:
                raise ValueError(
                    f"record name {header_path.stem} appears twice: {by_name[header_path.stem]}, {header_path}"
                )
            by_name[header_path.stem] = header_path
        if self.config.record_ids is not None:
            wanted = [str(record_id) for record_id in self.config.record_ids]
            missing = sorted(set(wanted) - set(by_name))
            if missing:
                raise ValueError(f"record_ids {missing[:10]} have no header under {data_dir}")
            by_name = {name: by_name[name] for name in wanted}

        rows, unmapped, unlabelled = [], Counter(), 0
        for name, header_path in by_name.items():
            try:
                comments = parse_challenge_comments(read_header(header_path), str(header_path))
                labels = self._labels(comments["codes"], str(header_path), unmapped)
            except BadRecordError as error:
                self._skip_or_raise(error, None)
                continue
            if not labels and self.config.drop_unlabelled:
                unlabelled += 1
                continue
            record_path = header_path.relative_to(data_dir).with_suffix("").as_posix()
            rows.append({"ecg_id": name, "record_path": record_path, "labels": labels})
        if unmapped:
            logger.warning(
                "%s: ignored %d diagnoses whose SNOMED-CT codes are not in the label table (most common: %s)",
                self.dataset_name,
                sum(unmapped.values()),
                unmapped.most_common(5),
            )
        if unlabelled:
            logger.info("%s: dropped %d records without a class of the label table", self.dataset_name, unlabelled)
        records = pd.DataFrame(rows, columns=["ecg_id", "record_path", "labels"])

        if self.config.split_file is not None:
            splits = records["ecg_id"].map(read_split_file(self.config.split_file))
            if splits.isna().any():
                logger.warning(
                    "%s: %d records are not in the split file %s and were dropped",
                    self.dataset_name,
                    int(splits.isna().sum()),
                    self.config.split_file,
                )
        else:
            fractions = dict(zip(SPLITS, self.config.split_fractions))
            splits = pd.Series(
                stratified_split(records["ecg_id"].tolist(), records["labels"].tolist(), fractions, self.config.seed),
                index=records.index,
                dtype=object,
            )
        return self._make_split_generators({split: records[splits == split] for split in SPLITS})

    def _example_from_record(self, record: dict) -> dict:
        header_path = os.path.join(self.config.data_dir, record["record_path"] + ".hea")
        header = read_header(header_path)
        if header.n_sig != N_LEADS:
            raise BadRecordError(header_path, f"expected {N_LEADS} signals, header declares {header.n_sig}")
        if header.sampling_rate != int(header.sampling_rate):
            raise BadRecordError(header_path, f"non-integer sampling rate {header.sampling_rate}")
        comments = parse_challenge_comments(header, header_path)
        signal = read_digital_signal(header, header_path, verify_checksums=self.config.verify_signal_checksums)
        return {
            "ecg_id": record["ecg_id"],
            "patient_id": record["ecg_id"],
            "record_path": record["record_path"],
            "signal": signal,
            "adc_gain": header.adc_gains,
            "baseline": header.baselines,
            "lead_names": header.lead_names,
            "sampling_rate": int(header.sampling_rate),
            "report": "",
            "labels": record["labels"],
            "multi_hot": multi_hot(record["labels"], self.class_names),
            "age": comments["age"],
            "sex": comments["sex"],
            "snomed_codes": comments["codes"],
        }
