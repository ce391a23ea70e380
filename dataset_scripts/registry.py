"""The datasets MERIT trains and evaluates on, by name: one `DatasetSpec` per dataset in `DATASETS`.

A spec holds every fact about a dataset that training and evaluation need: how to load it (its builder), its label
sets and default label set, whether its records have reports (and in which config), the sampling rates it ships
at, where the text descriptions of its classes come from (zero-shot prompts), extra prompt tables in the language
of its reports, and the copy shipped with the repository. Nothing outside this module switches on a dataset's name:
adding a dataset is its builder in `dataset_scripts/<name>/` plus one entry here.

```python
>>> from dataset_scripts.registry import DATASETS, load_dataset_splits
>>> DATASETS["ptbxl"].label_sets
('all', 'diagnostic', 'subdiagnostic', 'superdiagnostic', 'form', 'rhythm')
>>> splits = load_dataset_splits("ptbxl", "data/ptbxl-sample", "superdiagnostic")   # train / validation / test
```

A new dataset (or a test's fake one) is registered with `DATASETS[spec.name] = spec`; the argument choices below
(`DatasetNames`) and every loader read `DATASETS` when they run, so it is offered from then on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .challenge import read_label_descriptions
from .ptbxl.descriptions import (
    GERMAN_TEMPLATES,
    PTBXL_REPORT_LANGUAGE_DESCRIPTIONS,
    PTBXL_REPORT_STYLE_PROMPTS,
    ptbxl_copy_class_descriptions,
)
from .ptbxl.labels import BENCHMARK_TASKS


if TYPE_CHECKING:
    import datasets


Loader = Callable[[str, str, "int | None", "str | None", "int | None"], "datasets.DatasetDict"]
"""`(data_dir, config, sampling_rate, cache_dir, num_proc) -> DatasetDict` with `train`, `validation` (and `test`).
`config` is one of the spec's `configs`; `sampling_rate` is one of its `sampling_rates`, or `None` for a dataset
stored at its records' own rate."""

DescriptionSource = Callable[[str, str], dict[str, str]]
"""`(data_dir, label_set) -> {class name: description}` for every class of the label set."""

REPOSITORY_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
"""`data/` of a source checkout: the excerpts shipped with the repository (not part of the installed package)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Everything training and evaluation know about one dataset.

    Args:
        name (`str`): the registry key, as given to `--dataset_name` (training) and `--dataset` (evaluation).
        display_name (`str`): the name in result tables and the model card's `model-index`, e.g. `"PTB-XL"`.
        loader (`Loader`): builds the `DatasetDict` from a copy of the dataset in `data_dir`.
        label_sets (`tuple[str, ...]`, defaults to `()`): the classification label sets (configs with `labels` and
            `multi_hot`); empty for an unlabelled dataset, which evaluation does not offer.
        default_label_set (`str`, *optional*): the label set used when none is given; required with `label_sets`.
        report_config (`str`, *optional*): the config pairing every record with its report (pretraining,
            report generation); `None` when the records have no reports.
        sampling_rates (`tuple[int, ...]`, defaults to `()`): the rates (Hz) a copy ships its records at, the first
            being the default (PTB-XL: `(100, 500)`); empty when each record is read at its own stored rate.
        default_data_dir (`Path`, *optional*): the copy used when no data folder is given (the repository's
            excerpt); `None`: a data folder is required.
        class_descriptions (`DescriptionSource`, *optional*): the text description of every class of a label set,
            from the dataset's own label table (zero-shot prompts); `None`: prompts use the bare class names.
        report_language_descriptions (`Mapping[str, Mapping[str, str]]`, defaults to `{}`): label set -> class ->
            description in the language of the dataset's reports, put into `report_language_templates` and added
            to the English prompts (PTB-XL: German).
        report_language_templates (`tuple[str, ...]`, defaults to `()`): templates with one `{description}` field.
        report_style_prompts (`Mapping[str, Mapping[str, tuple[str, ...]]]`, defaults to `{}`): label set -> class
            -> whole prompts worded like the dataset's reports (PTB-XL: its English reports), used by the
            `report-style` and `both` prompt styles (`merit_evaluation.prompts.PROMPT_STYLES`).
    """

    name: str
    display_name: str
    loader: Loader
    label_sets: tuple[str, ...] = ()
    default_label_set: str | None = None
    report_config: str | None = None
    sampling_rates: tuple[int, ...] = ()
    default_data_dir: Path | None = None
    class_descriptions: DescriptionSource | None = None
    report_language_descriptions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    report_language_templates: tuple[str, ...] = ()
    report_style_prompts: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self):
        problems = []
        if not self.label_sets and self.report_config is None:
            problems.append("it needs label_sets, a report_config or both (got neither)")
        if self.label_sets and self.default_label_set not in self.label_sets:
            problems.append(
                f"default_label_set must be one of label_sets {list(self.label_sets)}, got {self.default_label_set!r}"
            )
        if not self.label_sets and self.default_label_set is not None:
            problems.append(f"default_label_set {self.default_label_set!r} is given without label_sets")
        if self.report_config is not None and self.report_config in self.label_sets:
            problems.append(
                f"report_config {self.report_config!r} is also a label set; give the configs distinct names"
            )
        unknown = sorted(set(self.report_language_descriptions) - set(self.label_sets))
        if unknown:
            problems.append(f"report_language_descriptions name label sets {unknown} that are not in label_sets")
        unknown = sorted(set(self.report_style_prompts) - set(self.label_sets))
        if unknown:
            problems.append(f"report_style_prompts name label sets {unknown} that are not in label_sets")
        empty = sorted(
            f"{label_set}/{name}"
            for label_set, table in self.report_style_prompts.items()
            for name, prompts in table.items()
            if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts)
        )
        if empty:
            problems.append(f"report_style_prompts of {empty} must be tuples of non-empty strings")
        if bool(self.report_language_descriptions) != bool(self.report_language_templates):
            problems.append(
                "report_language_descriptions and report_language_templates go together; give both or neither"
            )
        if problems:
            raise ValueError(f"Invalid DatasetSpec {self.name!r}: " + "; ".join(problems) + ".")

    @property
    def is_labelled(self) -> bool:
        """Whether the dataset has classification label sets (evaluation offers only these datasets)."""
        return bool(self.label_sets)

    @property
    def has_reports(self) -> bool:
        """Whether its records come with reports (pretraining and report generation need them)."""
        return self.report_config is not None

    @property
    def configs(self) -> tuple[str, ...]:
        """Every config `loader` accepts: the label sets, then the report config."""
        return self.label_sets + (() if self.report_config is None else (self.report_config,))


# ----------------------------------------------------------------------------------------------------------- loaders


def _load_ptbxl(data_dir, config, sampling_rate, cache_dir, num_proc):
    from .ptbxl import load_ptbxl

    return load_ptbxl(data_dir, task=config, sampling_rate=sampling_rate, cache_dir=cache_dir, num_proc=num_proc)


def _load_mimic_iv_ecg(data_dir, config, sampling_rate, cache_dir, num_proc):
    from .mimic_iv_ecg import load_mimic_iv_ecg

    return load_mimic_iv_ecg(data_dir, cache_dir=cache_dir, num_proc=num_proc)


def _load_cpsc2018(data_dir, config, sampling_rate, cache_dir, num_proc):
    from .cpsc2018 import load_cpsc2018

    return load_cpsc2018(data_dir, cache_dir=cache_dir, num_proc=num_proc)


def _load_chapman(data_dir, config, sampling_rate, cache_dir, num_proc):
    from .chapman import load_chapman

    return load_chapman(data_dir, cache_dir=cache_dir, num_proc=num_proc)


# ------------------------------------------------------------------------------------------------ class descriptions


def _cpsc2018_descriptions(data_dir, label_set):
    from .cpsc2018 import LABEL_TABLE

    return read_label_descriptions(LABEL_TABLE)  # the builder's table: the same for every copy


def _chapman_descriptions(data_dir, label_set):
    from .chapman import LABEL_TABLE

    return read_label_descriptions(LABEL_TABLE)


# ----------------------------------------------------------------------------------------------------------- registry

CHALLENGE_LABEL_SET = "default"
"""The only label set of the Challenge-layout datasets: every class of the dataset's SNOMED-CT label table."""

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="ptbxl",
            display_name="PTB-XL",
            loader=_load_ptbxl,
            label_sets=tuple(BENCHMARK_TASKS),
            default_label_set="superdiagnostic",
            report_config="pretraining",
            sampling_rates=(100, 500),
            default_data_dir=REPOSITORY_DATA_DIR / "ptbxl-sample",
            class_descriptions=ptbxl_copy_class_descriptions,
            report_language_descriptions=PTBXL_REPORT_LANGUAGE_DESCRIPTIONS,
            report_language_templates=GERMAN_TEMPLATES,
            report_style_prompts=PTBXL_REPORT_STYLE_PROMPTS,
        ),
        DatasetSpec(
            name="mimic_iv_ecg", display_name="MIMIC-IV-ECG", loader=_load_mimic_iv_ecg, report_config="pairs"
        ),
        DatasetSpec(
            name="cpsc2018",
            display_name="CPSC2018",
            loader=_load_cpsc2018,
            label_sets=(CHALLENGE_LABEL_SET,),
            default_label_set=CHALLENGE_LABEL_SET,
            class_descriptions=_cpsc2018_descriptions,
        ),
        DatasetSpec(
            name="chapman",
            display_name="Chapman-Shaoxing-Ningbo",
            loader=_load_chapman,
            label_sets=(CHALLENGE_LABEL_SET,),
            default_label_set=CHALLENGE_LABEL_SET,
            class_descriptions=_chapman_descriptions,
        ),
    )
}
"""Every dataset MERIT knows by name, in the order the command lines list them."""

DEFAULT_DATASET = "ptbxl"
"""The dataset of the offline demo, whose excerpt ships in `data/ptbxl-sample`: the default of `train_merit.py
--dataset_name` (both tasks) and of `eval_merit.py --task report-generation`."""


# -------------------------------------------------------------------------------------------------------------- views


class DatasetNames(Sequence):
    """The names of the registered datasets whose spec passes `predicate`, in registry order, read from `DATASETS`
    each time (`in`, `len`, iteration): as argparse `choices`, a dataset registered after the parser's argument
    dataclasses were defined is still offered.

    Args:
        predicate (`Callable[[DatasetSpec], bool]`): which specs to list.
    """

    def __init__(self, predicate: Callable[[DatasetSpec], bool]):
        self._predicate = predicate

    def _names(self) -> list[str]:
        return [name for name, spec in DATASETS.items() if self._predicate(spec)]

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


LABELLED_DATASETS = DatasetNames(lambda spec: spec.is_labelled)
"""Datasets with classification label sets: the `--dataset` choices of `eval_merit.py`."""

REPORT_DATASETS = DatasetNames(lambda spec: spec.has_reports)
"""Datasets whose records have reports: the registered choices of pretraining and report generation."""

LABELLED_REPORT_DATASETS = DatasetNames(lambda spec: spec.is_labelled and spec.has_reports)
"""Datasets with reports and label sets: training's evaluation after pretraining, report-generation evaluation."""


# ---------------------------------------------------------------------------------------------------------- functions


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a registered dataset; raises a `ValueError` listing the registered names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}.")
    return DATASETS[name]


def display_name(name: str) -> str:
    """The display name of a registered dataset (e.g. `"PTB-XL"` for `ptbxl`), or `name` itself."""
    return DATASETS[name].display_name if name in DATASETS else name


def load_dataset_splits(
    name: str,
    data_dir: str | os.PathLike,
    config: str | None = None,
    sampling_rate: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
) -> datasets.DatasetDict:
    """Prepares (or reuses) a registered dataset through its builder and returns its splits.

    Args:
        name (`str`): a key of `DATASETS`.
        data_dir (`str` or `os.PathLike`): the copy of the dataset in its PhysioNet layout.
        config (`str`, *optional*): a label set or the report config (`DatasetSpec.configs`); defaults to the
            default label set, or the report config of an unlabelled dataset.
        sampling_rate (`int`, *optional*): one of the spec's `sampling_rates` (default: the first); must be `None`
            for a dataset read at its records' own rate.
        cache_dir (`str` or `os.PathLike`, *optional*): where the prepared Arrow files go.
        num_proc (`int`, *optional*): worker processes for the preparation.

    Returns:
        `datasets.DatasetDict` with `train`, `validation` and (when the dataset has one) `test`.
    """
    spec = dataset_spec(name)
    config = config if config is not None else spec.default_label_set or spec.report_config
    if config not in spec.configs:
        raise ValueError(
            f"{spec.display_name} ({name}) has no config {config!r}; expected a label set {list(spec.label_sets)}"
            + (f" or the report config {spec.report_config!r}." if spec.has_reports else ".")
        )
    if sampling_rate is None and spec.sampling_rates:
        sampling_rate = spec.sampling_rates[0]
    if sampling_rate is not None and sampling_rate not in spec.sampling_rates:
        shipped = f"at {list(spec.sampling_rates)} Hz" if spec.sampling_rates else "at each record's own stored rate"
        raise ValueError(
            f"{spec.display_name} ({name}) ships its records {shipped}, got sampling_rate={sampling_rate}; "
            + ("pick one of those." if spec.sampling_rates else "leave sampling_rate unset.")
        )
    return spec.loader(
        os.fspath(data_dir),
        config,
        sampling_rate,
        None if cache_dir is None else os.fspath(cache_dir),
        num_proc,
    )


def class_descriptions(
    name: str, data_dir: str | os.PathLike, label_set: str, class_names: Sequence[str]
) -> dict[str, str]:
    """A text description of every class, from the dataset's own label table, in the order of `class_names`.

    PTB-XL: `dataset_scripts.ptbxl.descriptions.ptbxl_class_descriptions` on the `scp_statements.csv` of `data_dir`.
    CPSC2018 / Chapman: the `description` column of the builder's SNOMED-CT table (`snomed_classes.csv`); a class
    that several codes map to gets their descriptions joined with " or " (e.g. Chapman `PAC`: "premature atrial
    contraction or supraventricular premature beats").

    Args:
        name (`str`): a key of `DATASETS` whose spec has `class_descriptions`.
        data_dir (`str` or `os.PathLike`): the dataset copy (PTB-XL: holds `scp_statements.csv`).
        label_set (`str`): the evaluated label set.
        class_names (`Sequence[str]`): the evaluated classes, in column order.

    Returns:
        `dict[str, str]`: class name -> description.
    """
    spec = dataset_spec(name)
    if spec.class_descriptions is None:
        raise ValueError(
            f"{spec.display_name} ({name}) has no class descriptions in the registry; give its classes prompts "
            "with a prompts file, or add a `class_descriptions` source to its DatasetSpec."
        )
    descriptions = spec.class_descriptions(os.fspath(data_dir), label_set)
    missing = [class_name for class_name in class_names if class_name not in descriptions]
    if missing:
        raise ValueError(f"No description for the {name} classes {missing} in its label table.")
    return {class_name: descriptions[class_name] for class_name in class_names}
