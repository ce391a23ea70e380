# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Report-generation evaluation (`eval_merit.py --task report-generation`).

A `MeritForReportGeneration` checkpoint writes a report for every test record of a dataset with reports (its registry
spec's `report_config`; by default PTB-XL, fold 10 of the `pretraining` configuration: every record with its
report), greedily, and the reports are scored against the
records' own reports with `merit_evaluation.report_metrics` (BLEU-1..4, ROUGE-1/2/L, METEOR, CIDEr-D, BERTScore,
bootstrap intervals). Baselines run in the same harness with the same LLM, projector, prompt, decoding and
metrics; only the ECG side changes:

- `ecg-shuffled`: every test record gets the prefix of another test record's ECG (a random cyclic derangement,
  seeded): the generation an ECG-blind model would give with the real distribution of prefixes;
- `ecg-constant`: every record gets the prefix of one flat-line ECG (all-zero model input, every lead present);
- `random-init-encoder`: the trained projector and LLM with a randomly initialised ECG encoder of the same
  architecture (seeded): what the bridge makes of features that carry no learned ECG knowledge;
- `nearest-neighbour`: no generation; each test record gets the training report of the training record whose
  pooled encoder embedding (`model.ecg_model(...).pooler_output`) has the highest cosine similarity;
- `most-frequent-report`: no generation and no ECG; every test record gets the most frequent training report (ties:
  the one seen first), the label-free floor of every metric.
- `ecg-text-retrieval` (only with a MERIT pretraining checkpoint, `alignment_model`; `eval_merit.py
  --retrieval_checkpoint`): no generation; each test record gets the training report whose embedding in that
  checkpoint's ECG-text space is the most cosine-similar to the ECG's (the contrastive alignment used as a report
  retriever, as the retrieval task ranks reports), where `nearest-neighbour` compares ECGs with ECGs.

**Clinical efficacy**: when the dataset's labels are PTB-XL statements (`clinical_efficacy.reads_ptbxl_statements`),
every row also has the `ce_*` metrics of `merit_evaluation.clinical_efficacy` (the statements extracted from each
generated report against the record's own statements), and the notes give the extractor's ceiling on the same test
references.

**Paired comparisons**: for every baseline, the paired bootstrap interval of (MERIT - baseline) per metric
(`merit_evaluation.metrics.paired_bootstrap_differences`, the same resamples for both): `paired_differences.json`
and a table under the results, with the differences whose interval excludes 0 named.

**Every generation is kept**: `generations.jsonl` holds one line per test record: `record_id`, `reference`,
`statements` (the record's PTB-XL statements, when the dataset has them), `scored` (whether the record was scored)
and `generations`: the report of `MERIT` and of every baseline (a seed-dependent baseline's other seeds as
`"<name> (seed <seed>)"`).

Other report generators can join the same harness as named baselines (`baseline_models`; `eval_merit.py
--baseline_checkpoints NAME=PATH`), e.g. a bridge trained the same way on a randomly initialised encoder
(`random-init-bridge`): the `random-init-encoder` baseline above only swaps the encoder under the trained bridge,
while a bridge trained on random features measures what the LLM learns without ECG knowledge. Their processors
must preprocess ECGs exactly like the evaluated checkpoint's.

Evaluation hygiene as in `merit_evaluation.harness`: `ReportGenerationHarness.test_row` is the only place that reads
the test reports (once, cached), after every generation; training reports are only used by the retrieval
baseline. Test records whose reference has no token (an empty report) are generated for but not scored; their
number is in the row's `details`.

Languages: PTB-XL reports are German, English, Swedish and mixed. `report_language="all"` (default) scores every
record; `"en"`, `"de"` or `"sv"` (for a bridge trained with `train_merit.py --report_language`) still generates for
every test record, but scores only those whose reference `merit_training.report_generation.report_language` detects
as that language, and retrieves only training reports of that language (so the language of a test report is
read after generation, like the report itself). The rows' `label_set` is `report` or `report-<language>`.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dataset_scripts.registry import DEFAULT_DATASET, REPORT_DATASETS, dataset_spec, load_dataset_splits
from merit_training.report_generation import REPORT_LANGUAGES, load_ecg_text_checkpoint, report_language

from .clinical_efficacy import ClinicalEfficacyStatistics, reads_ptbxl_statements
from .data import preprocess_ecg_inputs
from .harness import extract_pooled_features
from .metrics import MetricValue, paired_bootstrap_differences
from .report_metrics import BertScorer, ReportStatistics, report_metrics_from_statistics, tokenize_report
from .results import METRIC_DISPLAY_NAMES, ResultRow


logger = logging.getLogger(__name__)

REPORT_TASK = "report-generation"
REPORT_LABEL_SET = "report"
"""`label_set` of report-generation rows: the target is the free-text report."""
BASELINES = ("ecg-shuffled", "ecg-constant", "random-init-encoder", "nearest-neighbour", "most-frequent-report")
"""Report-generation baselines, in the order they are evaluated (see the module docstring)."""

InputTransform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""`(input_values, lead_mask, record_indices) -> (input_values, lead_mask)`, applied per batch before the model."""


def load_report_dataset(
    data_dir, dataset: str = DEFAULT_DATASET, sampling_rate: int | None = None, cache_dir=None
) -> datasets.DatasetDict:
    """Every ECG-report pair of a registered dataset (its spec's `report_config`; PTB-XL: the `pretraining`
    configuration, folds 1-8 / 9 / 10). Records whose report is empty (e.g. PTB-XL records rebuilt from the label
    matrix, `has_report=False`) are dropped from every split, as in report-generation training: they could never be
    scored, and generating for them would only cost time."""
    spec = dataset_spec(dataset)
    if not spec.has_reports:
        raise ValueError(
            f"{spec.display_name} ({dataset}) has no reports to evaluate report generation on; expected one of "
            f"{list(REPORT_DATASETS)}."
        )
    splits = load_dataset_splits(
        dataset, data_dir, spec.report_config, sampling_rate=sampling_rate, cache_dir=cache_dir
    )
    return datasets.DatasetDict(
        {
            name: split.filter(lambda report: bool(str(report).strip()), input_columns="report")
            for name, split in splits.items()
        }
    )


def derangement(n_records: int, seed: int) -> np.ndarray:
    """A seeded permutation `p` of `range(n_records)` with `p[i] != i` for every `i` (when `n_records > 1`): a
    random order, each record taking the next one's place in it."""
    order = np.random.default_rng(seed).permutation(n_records)
    permutation = np.empty(n_records, dtype=np.int64)
    permutation[order] = np.roll(order, -1)
    return permutation


class ReportGenerationHarness:
    """Dataset splits, preprocessing and the test-once rule of one report-generation evaluation.

    Args:
        splits (`datasets.DatasetDict`): `train`, `validation`, `test` with a `report` column.
        feature_extractor (`MeritFeatureExtractor`): the checkpoint's feature extractor.
        dataset (`str`): dataset name written to the results.
        model_name_or_path (`str`), model_revision (`str`, *optional*): the checkpoint, written to the results.
        batch_size (`int`): records per preprocessing / generation batch.
        device (`str` or `torch.device`): where the models run.
        n_bootstrap (`int`): bootstrap resamples of the test metrics.
        bertscore (`bool` or `BertScorer`): as in `compute_report_metrics` (created once and shared by every row).
        report_language (`str`, defaults to `"all"`): `all`, or the language whose reports are scored and retrieved
            (see the module docstring).
        scored_split (`str`, defaults to `"test"`): the name written to the rows' `split`: `"validation"` when the
            `test` split handed in is the dataset's validation split (choosing settings without the test fold).
    """

    def __init__(
        self,
        splits: datasets.DatasetDict,
        feature_extractor,
        *,
        dataset: str,
        model_name_or_path: str,
        model_revision: str | None,
        batch_size: int,
        device: str | torch.device,
        n_bootstrap: int,
        bertscore: bool | BertScorer = True,
        report_language: str = "all",
        scored_split: str = "test",
    ):
        if report_language not in REPORT_LANGUAGES:
            raise ValueError(f"`report_language` must be one of {REPORT_LANGUAGES}, got {report_language!r}.")
        missing = [name for name in ("train", "test") if name not in splits]
        if missing:
            raise ValueError(f"The dataset lacks the splits {missing}; expected train, validation and test.")
        for name in ("train", "test"):
            if len(splits[name]) == 0 or "report" not in splits[name].column_names:
                raise ValueError(
                    f"The {name} split must hold records with a `report` column; it is empty or has none."
                )
        self.splits = splits
        self.feature_extractor = feature_extractor
        self.dataset = dataset
        self.model_name_or_path = model_name_or_path
        self.model_revision = model_revision
        self.batch_size = batch_size
        self.device = device
        self.n_bootstrap = n_bootstrap
        self.bertscore = BertScorer(device=str(device)) if bertscore is True else bertscore
        self.report_language = report_language
        self.scored_split = scored_split
        self._references: dict[str, list[str]] = {}
        self._statements: dict[str, list[list[str]] | None] = {}
        self.statistics: dict[tuple[str | None, int], ReportStatistics] = {}
        self._processed: dict[str, datasets.Dataset] = {}
        self._features: dict[tuple, np.ndarray] = {}

    @property
    def label_set(self) -> str:
        """`label_set` of the rows: `report`, or `report-<language>` with a language filter."""
        return REPORT_LABEL_SET if self.report_language == "all" else f"{REPORT_LABEL_SET}-{self.report_language}"

    def scorable(self, reports: Sequence[str]) -> np.ndarray:
        """Which reports are scored (as references) or retrieved: a token, and the chosen language."""
        return np.array(
            [
                bool(tokenize_report(report))
                and (self.report_language == "all" or report_language(report) == self.report_language)
                for report in reports
            ],
            dtype=bool,
        )

    @property
    def n_test(self) -> int:
        """Number of test records."""
        return len(self.splits["test"])

    def references(self, split: str) -> list[str]:
        """The reports of `train` or `validation` (test reports stay in `test_row`)."""
        if split == "test":
            raise ValueError("Test reports are only read by `ReportGenerationHarness.test_row`.")
        return self._split_references(split)

    def _split_references(self, split: str) -> list[str]:
        if split not in self._references:
            self._references[split] = [str(report) for report in self.splits[split]["report"]]
        return self._references[split]

    def _split_statements(self, split: str) -> list[list[str]] | None:
        """Each record's PTB-XL statement codes, or `None` when the split's labels are not PTB-XL statements."""
        if split not in self._statements:
            records = self.splits[split]
            statements = None
            if "labels" in records.column_names:
                names = records.features["labels"].feature.names
                if reads_ptbxl_statements(names):
                    statements = [[names[index] for index in labels] for labels in records["labels"]]
            self._statements[split] = statements
        return self._statements[split]

    def processed(self, split: str) -> datasets.Dataset:
        """A split run through the feature extractor (`input_values`, `lead_mask`), cached per split."""
        if split not in self._processed:
            self._processed[split] = preprocess_ecg_inputs(
                self.splits[split], self.feature_extractor, self.batch_size, f"Preprocessing {split}"
            )
        return self._processed[split]

    def features(self, encoder_key: str, ecg_model: torch.nn.Module, split: str) -> np.ndarray:
        """Pooled encoder features `(n_records, hidden_size)` of a split, once per `(encoder_key, split)`."""
        key = (encoder_key, split)
        if key not in self._features:
            self._features[key] = extract_pooled_features(
                ecg_model, self.processed(split), self.batch_size, self.device, f"Features {encoder_key} {split}"
            )
        return self._features[key]

    def test_row(self, predictions: Sequence[str], *, seed: int, baseline: str | None = None) -> ResultRow:
        """Score generated test reports: the only read of the test reports.

        Args:
            predictions (`Sequence[str]`): one generated report per test record, in the split's order.
            seed (`int`): bootstrap seed, written to the row.
            baseline (`str`, *optional*): the baseline's name; `None` for MERIT.

        Returns:
            `ResultRow` with every metric of `merit_evaluation.report_metrics` and its interval.
        """
        if len(predictions) != self.n_test:
            raise ValueError(f"Expected one prediction per test record ({self.n_test}), got {len(predictions)}.")
        references = self._split_references("test")
        scored = self.scored_test_records()
        statements = self._split_statements("test")
        statistics = ReportStatistics(
            [predictions[index] for index in scored],
            [references[index] for index in scored],
            bertscore=self.bertscore,
            scp_codes=None if statements is None else [statements[index] for index in scored],
        )
        self.statistics[(baseline, seed)] = statistics
        result = report_metrics_from_statistics(statistics, n_bootstrap=self.n_bootstrap, seed=seed)
        details = {
            **result.details,
            "report_language": self.report_language,
            "unscored_test_records": str(self.n_test - len(scored)),
        }
        return ResultRow(
            task=REPORT_TASK,
            dataset=self.dataset,
            label_set=self.label_set,
            fraction=1.0,
            seed=seed,
            model=self.model_name_or_path,
            model_revision=self.model_revision,
            baseline=baseline,
            n_test=result.n_samples,
            metrics=result.metrics,
            per_class_auroc={},
            thresholds_source=None,
            bootstrap=result.bootstrap,
            details=details,
            split=self.scored_split,
        )

    def scored_test_records(self) -> list[int]:
        """Indices of the test records that are scored (a non-empty reference of the chosen language)."""
        scored = np.flatnonzero(self.scorable(self._split_references("test"))).tolist()
        if not scored:
            raise ValueError(
                f"No test record has a non-empty report of language {self.report_language!r}; nothing can be scored."
            )
        return scored

    def clinical_efficacy_ceiling(self) -> ClinicalEfficacyStatistics | None:
        """The CE extractor on the scored test references vs their statements (after `test_row`); `None` when the
        dataset has no PTB-XL statements."""
        if "test" not in self._references:
            raise ValueError(
                "The extractor's ceiling is computed only after the generations were scored (`test_row`)."
            )
        statements = self._split_statements("test")
        if statements is None:
            return None
        scored = self.scored_test_records()
        return ClinicalEfficacyStatistics.from_texts(
            [self._references["test"][index] for index in scored], [statements[index] for index in scored]
        )

    def paired_differences(self, seed: int, baseline: str | None = None) -> dict[str, dict[str, MetricValue]]:
        """Paired bootstrap intervals of (MERIT - other) per metric, for every other model scored with `seed`.

        Args:
            seed (`int`): the rows' seed (also the bootstrap seed, so both systems see the same resamples).
            baseline (`str`, *optional*): only this one.

        Returns:
            `{other name: {metric: MetricValue(difference, ci_low, ci_high)}}`.
        """
        if (None, seed) not in self.statistics:
            raise ValueError(f"MERIT was not scored with seed {seed}; run `test_row` for it first.")
        merit = self.statistics[(None, seed)]
        return {
            name: paired_bootstrap_differences(
                merit.values, statistics.values, merit.n_samples, n_bootstrap=self.n_bootstrap, seed=seed
            )
            for (name, row_seed), statistics in self.statistics.items()
            if name is not None and row_seed == seed and baseline in (None, name)
        }

    def example_references(self, n_examples: int) -> list[str]:
        """The first `n_examples` test reports, for printing next to the generations (after `test_row`)."""
        if "test" not in self._references:
            raise ValueError("Example references are shown only after the generations were scored (`test_row`).")
        return self._references["test"][:n_examples]


def generate_reports(
    model,
    processor,
    processed: datasets.Dataset,
    *,
    batch_size: int,
    device: str | torch.device,
    max_new_tokens: int,
    input_transform: InputTransform | None = None,
    description: str = "Generating",
    generate_kwargs: Mapping | None = None,
) -> list[str]:
    """Greedy reports of every record of a preprocessed split.

    Args:
        model (`MeritForReportGeneration`): its `generate(input_values, lead_mask=..., max_new_tokens=...)` returns
            the new token ids only.
        processor: the checkpoint's processor (`batch_decode`).
        processed (`datasets.Dataset`): `input_values`, `lead_mask` (from `ReportGenerationHarness.processed`).
        batch_size (`int`), device: generation batches and where they run.
        max_new_tokens (`int`): longest generated report, in LLM tokens.
        input_transform (`InputTransform`, *optional*): replaces the ECG side of each batch (the baselines).
        description (`str`): progress-bar label.
        generate_kwargs (`Mapping`, *optional*): more arguments of the language model's `generate` (decoding, e.g.
            `num_beams`, `repetition_penalty`, `no_repeat_ngram_size`); greedy without them. One report per record:
            `num_return_sequences` other than 1 is refused.

    Returns:
        `list[str]`: one report per record, stripped of special tokens and surrounding white space.
    """
    generate_kwargs = {"do_sample": False, **(generate_kwargs or {})}
    if generate_kwargs.get("num_return_sequences", 1) != 1 or "max_new_tokens" in generate_kwargs:
        raise ValueError(
            "`generate_kwargs` of the evaluation may not set `num_return_sequences` (one report per record) or "
            f"`max_new_tokens` (pass `max_new_tokens` itself); got {generate_kwargs}."
        )
    model.eval().to(device)
    loader = DataLoader(processed.with_format("torch", columns=["input_values", "lead_mask"]), batch_size=batch_size)
    reports = []
    with torch.inference_mode():
        for batch_index, batch in enumerate(tqdm(loader, desc=description, leave=False)):
            input_values, lead_mask = batch["input_values"], batch["lead_mask"]
            if input_transform is not None:
                start = batch_index * batch_size
                indices = torch.arange(start, start + input_values.shape[0])
                input_values, lead_mask = input_transform(input_values, lead_mask, indices)
            token_ids = model.generate(
                input_values.to(device),
                lead_mask=lead_mask.to(device),
                max_new_tokens=max_new_tokens,
                **generate_kwargs,
            )
            reports += [text.strip() for text in processor.batch_decode(token_ids, skip_special_tokens=True)]
    return reports


def _shuffled_inputs(processed: datasets.Dataset, seed: int) -> InputTransform:
    permutation = torch.from_numpy(derangement(len(processed), seed))
    columns = processed.with_format("torch", columns=["input_values", "lead_mask"])

    def transform(input_values, lead_mask, indices):
        other = columns[permutation[indices].tolist()]
        return other["input_values"], other["lead_mask"]

    return transform


def _constant_input(input_values, lead_mask, indices):
    return torch.zeros_like(input_values), torch.ones_like(lead_mask)


def random_init_encoder(ecg_model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A randomly initialised encoder of the same class and config, seeded; global random state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return type(ecg_model)(ecg_model.config)


def nearest_neighbour_reports(
    train_features: np.ndarray, test_features: np.ndarray, train_reports: Sequence[str], usable: np.ndarray
) -> list[str]:
    """For every test record, the report of the usable training record with the most cosine-similar features.

    Args:
        train_features (`np.ndarray` of shape `(n_train, hidden_size)`), test_features (`(n_test, hidden_size)`).
        train_reports (`Sequence[str]`): the `n_train` training reports.
        usable (`np.ndarray` of shape `(n_train,)`, bool): which training reports may be retrieved
            (`ReportGenerationHarness.scorable`).
    """
    if not usable.any():
        raise ValueError("No training record has a usable (non-empty, chosen-language) report to retrieve.")

    def normalised(features):
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    similarity = normalised(test_features) @ normalised(train_features[usable]).T
    candidates = np.flatnonzero(usable)
    return [train_reports[candidates[index]] for index in similarity.argmax(axis=1)]


ALIGNMENT_BASELINE = "ecg-text-retrieval"
RESERVED_NAMES = ("MERIT", *BASELINES, ALIGNMENT_BASELINE)
"""Names no `baseline_models` entry may take: MERIT's row and the built-in baselines."""


def aligned_retrieval_reports(
    dual_model,
    dual_processor,
    test_inputs: datasets.Dataset,
    train_reports: Sequence[str],
    usable: np.ndarray,
    batch_size: int,
    device,
) -> list[str]:
    """For every test ECG, the usable training report closest to it in a MERIT checkpoint's ECG-text space.

    Args:
        dual_model (`MeritModel`): both towers and projections (what `AutoModel` loads from a pretraining checkpoint).
        dual_processor (`MeritProcessor`): its processor (tokenises the reports).
        test_inputs (`datasets.Dataset`): the preprocessed test ECGs (`ReportGenerationHarness.processed`).
        train_reports (`Sequence[str]`): the training reports.
        usable (`np.ndarray` of shape `(n_train,)`, bool): which may be retrieved (`ReportGenerationHarness.scorable`).
        batch_size (`int`), device: of the forward passes.

    Returns:
        `list[str]`: one training report per test record; each distinct report is embedded once (identical reports
        would tie; the first is kept).
    """
    from .retrieval import pool_ecg_embeddings, report_embeddings

    candidates = list(dict.fromkeys(report for report, keep in zip(train_reports, usable) if keep))
    if not candidates:
        raise ValueError("No training record has a usable (non-empty, chosen-language) report to retrieve.")
    ecg = pool_ecg_embeddings(dual_model, test_inputs, batch_size, device, description=f"{ALIGNMENT_BASELINE} ECGs")
    text = report_embeddings(dual_model, dual_processor, candidates, batch_size, device)
    return [candidates[index] for index in (ecg @ text.T).argmax(axis=1)]


def most_frequent_report(train_reports: Sequence[str], usable: np.ndarray) -> str:
    """The most frequent usable training report (ties: the one seen first), the label-free baseline.

    Args:
        train_reports (`Sequence[str]`): the training reports.
        usable (`np.ndarray` of shape `(n_train,)`, bool): which may be used (`ReportGenerationHarness.scorable`).
    """
    candidates = [report for report, keep in zip(train_reports, usable) if keep]
    if not candidates:
        raise ValueError("No training record has a usable (non-empty, chosen-language) report to count.")
    counts = Counter(candidates)
    return max(counts, key=lambda report: (counts[report], -candidates.index(report)))


@dataclass
class ReportGenerationOutcome:
    """What `run_report_generation` returns.

    Attributes:
        rows (`list[ResultRow]`): one per model and seed, MERIT first.
        examples (`list[dict[str, str]]`): for the first `n_examples` test records, `reference` and each model's
            report (first seed).
        generations (`list[dict]`): one entry per test record (the lines of `generations.jsonl`, see the module
            docstring).
        paired_differences (`dict[int, dict[str, dict[str, MetricValue]]]`): per seed, per baseline, per metric,
            the paired bootstrap interval of (MERIT - baseline).
        ceiling (`ClinicalEfficacyStatistics`, *optional*): the CE extractor on the scored test references.
    """

    rows: list[ResultRow]
    examples: list[dict[str, str]]
    generations: list[dict]
    paired_differences: dict[int, dict[str, dict[str, MetricValue]]]
    ceiling: ClinicalEfficacyStatistics | None = None


def run_report_generation(
    harness: ReportGenerationHarness,
    model,
    processor,
    *,
    seeds: Sequence[int],
    baselines: bool,
    max_new_tokens: int,
    n_examples: int = 5,
    baseline_models: Mapping[str, tuple] | None = None,
    generate_kwargs: Mapping | None = None,
    alignment_model: tuple | None = None,
) -> ReportGenerationOutcome:
    """Generate for the test split with MERIT and each baseline, then score every generation.

    Every generation (and retrieval) runs before the first read of the test reports.

    Args:
        harness (`ReportGenerationHarness`): data, preprocessing and scoring.
        model (`MeritForReportGeneration`): the evaluated checkpoint (`model.ecg_model` is its encoder).
        processor: its processor (`batch_decode`).
        seeds (`Sequence[int]`): bootstrap seeds; also the seeds of the shuffled and random-init baselines.
        baselines (`bool`): evaluate the baselines of `BASELINES` too.
        max_new_tokens (`int`): longest generated report, in LLM tokens.
        n_examples (`int`, defaults to 5): test records shown in the returned examples.
        baseline_models (`Mapping[str, tuple]`, *optional*): more report generators, `name -> (model, processor)`,
            evaluated as baselines called `name` on the same preprocessed test ECGs (with or without `baselines`).
        generate_kwargs (`Mapping`, *optional*): decoding arguments of every generation (see `generate_reports`).
        alignment_model (`tuple`, *optional*): `(model, processor)` of a MERIT pretraining checkpoint with the same
            ECG preprocessing: adds the `ecg-text-retrieval` baseline (see the module docstring).

    Returns:
        `ReportGenerationOutcome`: rows, examples, every generation and the paired differences.
    """
    taken = [name for name in baseline_models or {} if name in RESERVED_NAMES]
    if taken:
        raise ValueError(f"Baseline model names {taken} are taken; the built-in names are {list(RESERVED_NAMES)}.")
    test_inputs = harness.processed("test")
    settings = dict(
        batch_size=harness.batch_size,
        device=harness.device,
        max_new_tokens=max_new_tokens,
        generate_kwargs=generate_kwargs,
    )
    train_reports = harness.references("train")  # what the retrieval baselines may return
    usable = harness.scorable(train_reports)
    generations: dict[tuple[str | None, int], list[str]] = {}
    merit_reports = generate_reports(model, processor, test_inputs, description="Generating (MERIT)", **settings)
    for seed in seeds:
        generations[(None, seed)] = merit_reports
    if baselines:
        constant = generate_reports(
            model, processor, test_inputs, input_transform=_constant_input, description="ecg-constant", **settings
        )
        train_features = harness.features("merit", model.ecg_model, "train")
        test_features = harness.features("merit", model.ecg_model, "test")
        retrieved = nearest_neighbour_reports(train_features, test_features, train_reports, usable)
        most_frequent = [most_frequent_report(train_reports, usable)] * harness.n_test
        trained_encoder = model.ecg_model
        for seed in seeds:
            generations[("ecg-shuffled", seed)] = generate_reports(
                model,
                processor,
                test_inputs,
                input_transform=_shuffled_inputs(test_inputs, seed),
                description=f"ecg-shuffled seed {seed}",
                **settings,
            )
            generations[("ecg-constant", seed)] = constant
            model.ecg_model = random_init_encoder(trained_encoder, seed)
            try:
                generations[("random-init-encoder", seed)] = generate_reports(
                    model, processor, test_inputs, description=f"random-init-encoder seed {seed}", **settings
                )
            finally:
                model.ecg_model = trained_encoder
            generations[("nearest-neighbour", seed)] = retrieved
            generations[("most-frequent-report", seed)] = most_frequent
    if alignment_model is not None:
        retrieved_by_text = aligned_retrieval_reports(
            *alignment_model, test_inputs, train_reports, usable, harness.batch_size, harness.device
        )
        for seed in seeds:
            generations[(ALIGNMENT_BASELINE, seed)] = retrieved_by_text
    for name, (baseline_model, baseline_processor) in (baseline_models or {}).items():
        reports = generate_reports(baseline_model, baseline_processor, test_inputs, description=name, **settings)
        for seed in seeds:
            generations[(name, seed)] = reports

    rows = [harness.test_row(reports, seed=seed, baseline=name) for (name, seed), reports in generations.items()]
    shown = min(n_examples, harness.n_test)
    examples = [{"reference": reference} for reference in harness.example_references(shown)]
    for (name, seed), reports in generations.items():
        if seed == seeds[0]:
            for example, report in zip(examples, reports[:shown]):
                example[name or "MERIT"] = report
    return ReportGenerationOutcome(
        rows=rows,
        examples=examples,
        generations=generation_records(harness, generations, seeds),
        paired_differences={seed: harness.paired_differences(seed) for seed in seeds},
        ceiling=harness.clinical_efficacy_ceiling(),
    )


def generation_records(
    harness: ReportGenerationHarness, generations: Mapping[tuple[str | None, int], list[str]], seeds: Sequence[int]
) -> list[dict]:
    """One `generations.jsonl` entry per test record (see the module docstring); after `test_row`."""
    test = harness.splits["test"]
    record_ids = test["ecg_id"] if "ecg_id" in test.column_names else list(range(harness.n_test))
    references = harness.example_references(harness.n_test)
    statements = harness._split_statements("test")
    scored = set(harness.scored_test_records())
    records = []
    for index, (record_id, reference) in enumerate(zip(record_ids, references)):
        record = {"record_id": record_id, "reference": reference}
        if statements is not None:
            record["statements"] = statements[index]
        record["scored"] = index in scored
        texts = {}
        for (name, seed), reports in generations.items():
            key = name or "MERIT"
            if seed == seeds[0]:
                texts[key] = reports[index]
            elif reports != generations[(name, seeds[0])]:
                texts[f"{key} (seed {seed})"] = reports[index]
        record["generations"] = texts
        records.append(record)
    return records


def examples_to_markdown(examples: list[dict[str, str]], split: str = "test") -> str:
    """The example generations as markdown: one block per record of `split`, the reference first."""
    blocks = []
    for index, example in enumerate(examples):
        lines = [f"**{split.capitalize()} record {index}**", ""]
        lines += [f"- {name}: {report!r}" for name, report in example.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


PAIRED_TABLE_METRICS = ("ce_f1_micro", "ce_f1_macro", "meteor", "rougeL", "bleu4", "cider_d", "bertscore_f1")
"""Metrics of the printed paired-difference table (`paired_differences.json` holds every metric)."""
ECG_BLIND_BASELINES = ("ecg-shuffled", "ecg-constant", "most-frequent-report")
"""Baselines that do not see the record's ECG."""


def paired_differences_to_markdown(
    differences: Mapping[str, Mapping[str, MetricValue]], seed: int, confidence_level: float = 0.95, split="test"
) -> str:
    """The paired differences of one seed as a markdown table, then the ones whose interval excludes 0."""
    metric_names = [name for name in PAIRED_TABLE_METRICS if any(name in metrics for metrics in differences.values())]
    header = ["Difference"] + [METRIC_DISPLAY_NAMES.get(name, name) for name in metric_names]
    lines = [
        f"Paired bootstrap differences ({split} split, seed {seed}, {confidence_level:.0%} intervals; * excludes 0):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    significant: dict[str, dict[str, list[str]]] = {}
    for name, metrics in differences.items():
        label = f"MERIT − {name}" + (" (ECG-blind)" if name in ECG_BLIND_BASELINES else "")
        cells = [label]
        for metric_name in metric_names:
            metric = metrics.get(metric_name)
            if metric is None or metric.value is None or np.isnan(metric.value):
                cells.append("–")
                continue
            excludes = metric.ci_low is not None and (metric.ci_low > 0 or metric.ci_high < 0)
            interval = "" if metric.ci_low is None else f" ({metric.ci_low:+.3f} to {metric.ci_high:+.3f})"
            cells.append(f"{metric.value:+.3f}{interval}{' *' if excludes else ''}")
        lines.append("| " + " | ".join(cells) + " |")
        for metric_name, metric in metrics.items():
            if metric.ci_low is not None and (metric.ci_low > 0 or metric.ci_high < 0):
                direction = "above" if metric.ci_low > 0 else "below"
                significant.setdefault(name, {"above": [], "below": []})[direction].append(metric_name)
    lines += ["", "MERIT − baseline differences whose interval excludes 0:" + ("" if significant else " none.")]
    for name, directions in significant.items():
        parts = [f"{direction} on {', '.join(names)}" for direction, names in directions.items() if names]
        lines.append(f"- vs {name}: MERIT " + "; ".join(parts))
    return "\n".join(lines) + "\n"


GENERATIONS_FILE = "generations.jsonl"
PAIRED_DIFFERENCES_FILE = "paired_differences.json"


def write_generations(path, records: list[dict]) -> None:
    """`generations.jsonl`: one JSON object per test record (see the module docstring)."""
    with open(path, "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_paired_differences(path, differences: Mapping[int, Mapping[str, Mapping[str, MetricValue]]]) -> None:
    """`paired_differences.json`: `{"seed <s>": {"MERIT - <baseline>": {metric: {value, ci_low, ci_high}}}}` (an
    undefined value, e.g. a macro average without any positive class, is `null`)."""

    def finite(number):
        return None if number is None or math.isnan(number) else number

    content = {
        f"seed {seed}": {
            f"MERIT - {name}": {
                metric: {
                    "value": finite(value.value),
                    "ci_low": finite(value.ci_low),
                    "ci_high": finite(value.ci_high),
                }
                for metric, value in metrics.items()
            }
            for name, metrics in per_baseline.items()
        }
        for seed, per_baseline in differences.items()
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2, allow_nan=False)
        file.write("\n")


SMALL_TEST_SET = 200
"""Below this many scored test records the printed table carries a note that the scores are noisy."""


CE_FIGURE_FILE = "ce_per_class.png"


def write_clinical_efficacy_figure(path, generations: list[dict], ceiling: ClinicalEfficacyStatistics, title: str):
    """`ce_per_class.png`: per CE class with a positive record, the F1 of every generator of `generations` (the
    `generations.jsonl` entries; first seed, scored records) and the extractor's ceiling on the same references."""
    from merit_plotting import plot_clinical_efficacy

    scored = [record for record in generations if record["scored"]]
    names = [name for name in scored[0]["generations"] if " (seed " not in name]
    statements = [record["statements"] for record in scored]
    per_class = {
        name: ClinicalEfficacyStatistics.from_texts(
            [record["generations"][name] for record in scored], statements
        ).per_class()
        for name in names
    }
    ceiling_per_class = ceiling.per_class()
    support = {label: values["support"] for label, values in ceiling_per_class.items() if values["support"]}
    plot_clinical_efficacy(
        {name: {label: values["f1"] for label, values in classes.items()} for name, classes in per_class.items()},
        support,
        {label: values["f1"] for label, values in ceiling_per_class.items()},
        path,
        title=title,
    )


def run_report_generation_task(
    model_name_or_path: str,
    data_dir,
    output_dir,
    *,
    dataset: str = DEFAULT_DATASET,
    revision: str | None = None,
    cache_dir=None,
    device: str | torch.device = "cpu",
    sampling_rate: int | None = None,
    seeds: Sequence[int] = (0,),
    n_bootstrap: int = 1000,
    batch_size: int = 64,
    baselines: bool = True,
    max_new_tokens: int = 64,
    n_examples: int = 5,
    bertscore: bool | BertScorer = True,
    report_language: str = "all",
    baseline_checkpoints: Mapping[str, str] | None = None,
    split: str = "test",
    generate_kwargs: Mapping | None = None,
    retrieval_checkpoint: str | None = None,
) -> tuple[list[ResultRow], list[str]]:
    """`eval_merit.py --task report-generation`: load the checkpoint and the dataset's reports, run
    `run_report_generation`, write every generation (`<output_dir>/generations.jsonl`), the paired differences
    (`paired_differences.json`) and the example generations (`examples.md`).

    Args:
        model_name_or_path (`str`): a `MeritForReportGeneration` checkpoint with its processor.
        data_dir: a copy of `dataset` (e.g. the PTB-XL excerpt `data/ptbxl-sample`).
        dataset (`str`, defaults to the registry's `DEFAULT_DATASET`, `ptbxl`): a registered dataset with reports.
        output_dir: where `examples.md` goes (`eval_merit.py` writes `results.json` there too).
        revision, cache_dir: Hub revision and cache of the checkpoint (and the prepared dataset).
        device, sampling_rate, seeds, n_bootstrap, batch_size, baselines, max_new_tokens, n_examples: see
            `eval_merit.py --help` (`sampling_rate=None`: the dataset's default rate).
        bertscore (`bool` or `BertScorer`, defaults to `True`): as in `compute_report_metrics`.
        report_language (`str`, defaults to `"all"`): see the module docstring.
        baseline_checkpoints (`Mapping[str, str]`, *optional*): `name -> path` of other report-generation
            checkpoints evaluated as named baselines (same revision and cache settings).
        split (`str`, defaults to `"test"`): the scored split: `test`, or `validation` to choose decoding and
            training settings without touching the test fold (the rows' `split` says which).
        generate_kwargs (`Mapping`, *optional*): decoding arguments of every generation (`generate_reports`).
        retrieval_checkpoint (`str`, *optional*): a MERIT pretraining checkpoint (e.g. the one the generator's
            encoder comes from) for the `ecg-text-retrieval` baseline (same revision and cache settings).

    Returns:
        `(rows, notes)`: the result rows and the lines printed under the table (notes, the CE ceiling, the paired
        differences of the first seed, then the examples).
    """
    from pathlib import Path

    from transformers import AutoModel, AutoProcessor

    import modeling_merit  # noqa: F401  (registers the MERIT Auto classes)

    hub_kwargs = {"revision": revision, "cache_dir": cache_dir}

    def load(path: str) -> tuple:
        loaded = AutoModel.from_pretrained(path, **hub_kwargs)
        if not hasattr(loaded, "ecg_model") or not hasattr(loaded, "generate"):
            raise ValueError(
                f"--task report-generation needs MeritForReportGeneration checkpoints; {path} loads as "
                f"{type(loaded).__name__}."
            )
        return loaded, AutoProcessor.from_pretrained(path, **hub_kwargs)

    model, processor = load(model_name_or_path)
    baseline_models = {name: load(path) for name, path in (baseline_checkpoints or {}).items()}
    preprocessing = [
        (f"The baseline checkpoint {name!r} ({baseline_checkpoints[name]})", baseline_processor)
        for name, (_, baseline_processor) in baseline_models.items()
    ]
    alignment_model = None
    if retrieval_checkpoint is not None:
        alignment_model = load_ecg_text_checkpoint(
            retrieval_checkpoint,
            "--retrieval_checkpoint",
            "pass the checkpoint the generator's encoder came from.",
            **hub_kwargs,
        )
        preprocessing.append((f"--retrieval_checkpoint ({retrieval_checkpoint})", alignment_model[1]))
    for which, other_processor in preprocessing:
        if other_processor.feature_extractor.to_dict() != processor.feature_extractor.to_dict():
            raise ValueError(
                f"{which} preprocesses ECGs differently from {model_name_or_path}; it must share the evaluated "
                "checkpoint's feature extractor: pass the checkpoint the generator's encoder came from (or one saved "
                "with the same processor)."
            )
    if split not in ("test", "validation"):
        raise ValueError(f"`split` must be 'test' or 'validation', got {split!r}.")
    splits = load_report_dataset(data_dir, dataset, sampling_rate=sampling_rate, cache_dir=cache_dir)
    if split == "validation":  # the validation records take the place of the test split; the test fold is not read
        splits = datasets.DatasetDict({"train": splits["train"], "test": splits["validation"]})
    local = Path(model_name_or_path).exists()
    harness = ReportGenerationHarness(
        splits,
        processor.feature_extractor,
        dataset=dataset,
        model_name_or_path=model_name_or_path,
        model_revision=None if local else getattr(model.config, "_commit_hash", None) or revision,
        batch_size=batch_size,
        device=device,
        n_bootstrap=n_bootstrap,
        bertscore=bertscore,
        report_language=report_language,
        scored_split=split,
    )
    logger.info(
        "Report generation with %s on %s (%d train, %d test records) on %s.",
        model_name_or_path,
        dataset_spec(dataset).display_name,
        len(splits["train"]),
        harness.n_test,
        device,
    )
    outcome = run_report_generation(
        harness,
        model,
        processor,
        seeds=seeds,
        baselines=baselines,
        max_new_tokens=max_new_tokens,
        n_examples=n_examples,
        baseline_models=baseline_models,
        generate_kwargs=generate_kwargs,
        alignment_model=alignment_model,
    )
    rows = outcome.rows
    output_dir = Path(output_dir)
    write_generations(output_dir / GENERATIONS_FILE, outcome.generations)
    write_paired_differences(output_dir / PAIRED_DIFFERENCES_FILE, outcome.paired_differences)
    notes = [f"Note: BERTScore is {rows[0].details['bertscore']}."] if "bertscore" in rows[0].details else []
    if split == "validation":
        notes.insert(
            0, "Note: these rows score the validation split (fold 9), for choosing settings; not test numbers."
        )
    n_scored = min(row.n_test for row in rows)
    if n_scored < SMALL_TEST_SET:
        notes.append(
            f"Note: only {n_scored} {split} reports were scored (< {SMALL_TEST_SET}) and the training split has "
            f"{len(splits['train'])} records: expect noisy scores with wide confidence intervals, not comparable "
            "with published report-generation numbers."
        )
    if outcome.ceiling is not None:
        write_clinical_efficacy_figure(
            output_dir / CE_FIGURE_FILE,
            outcome.generations,
            outcome.ceiling,
            f"Per-class CE-F1, {split} split ({outcome.ceiling.n_samples} reports), seed {seeds[0]}",
        )
        ceiling = outcome.ceiling.values(np.ones((1, outcome.ceiling.n_samples)))
        notes.append(
            "Note: CE (clinical efficacy) = PTB-XL statements extracted from each generated report "
            "(merit_evaluation/clinical_efficacy.py) vs the record's own statements; micro/macro over NORM, MI, STTC, "
            f"CD, HYP, SR, AFIB, SBRAD, STACH, SARRH. The extractor's ceiling on these references: CE-F1 micro "
            f"{ceiling['ce_f1_micro'][0]:.3f}, macro {ceiling['ce_f1_macro'][0]:.3f}, superclasses micro "
            f"{ceiling['ce_super_f1_micro'][0]:.3f}."
        )
        notes.append(f"Per-class CE-F1 of every generator, with the extractor's ceiling: {CE_FIGURE_FILE}.")
    if seeds[0] in outcome.paired_differences and outcome.paired_differences[seeds[0]]:
        table = paired_differences_to_markdown(outcome.paired_differences[seeds[0]], seeds[0], split=split)
        notes.append(table.rstrip("\n"))
    if outcome.examples:
        text = examples_to_markdown(outcome.examples, split)
        (output_dir / "examples.md").write_text(text, encoding="utf-8")
        notes.append(
            f"Example reports ({split} split, seed {seeds[0]}; every generation: {GENERATIONS_FILE}):\n\n{text}"
        )
    return rows, notes
