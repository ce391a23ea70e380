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
  pooled encoder embedding (`model.ecg_model(...).pooler_output`) has the highest cosine similarity.

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

import logging
from collections.abc import Callable, Mapping, Sequence

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dataset_scripts.registry import DEFAULT_DATASET, REPORT_DATASETS, dataset_spec, load_dataset_splits
from merit_training.report_generation import REPORT_LANGUAGES, report_language

from .data import preprocess_split
from .harness import extract_pooled_features
from .report_metrics import BertScorer, compute_report_metrics, tokenize_report
from .results import ResultRow


logger = logging.getLogger(__name__)

REPORT_TASK = "report-generation"
REPORT_LABEL_SET = "report"
"""`label_set` of report-generation rows: the target is the free-text report."""
BASELINES = ("ecg-shuffled", "ecg-constant", "random-init-encoder", "nearest-neighbour")
"""Report-generation baselines, in the order they are evaluated (see the module docstring)."""

InputTransform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""`(input_values, lead_mask, record_indices) -> (input_values, lead_mask)`, applied per batch before the model."""


def load_report_dataset(
    data_dir, dataset: str = DEFAULT_DATASET, sampling_rate: int | None = None, cache_dir=None
) -> datasets.DatasetDict:
    """Every record of a registered dataset with its report (its spec's `report_config`; PTB-XL: the `pretraining`
    configuration, folds 1-8 / 9 / 10)."""
    spec = dataset_spec(dataset)
    if not spec.has_reports:
        raise ValueError(
            f"{spec.display_name} ({dataset}) has no reports to evaluate report generation on; expected one of "
            f"{list(REPORT_DATASETS)}."
        )
    return load_dataset_splits(dataset, data_dir, spec.report_config, sampling_rate=sampling_rate, cache_dir=cache_dir)


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
        self._references: dict[str, list[str]] = {}
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

    def processed(self, split: str) -> datasets.Dataset:
        """A split run through the feature extractor (`input_values`, `lead_mask`), cached per split."""
        if split not in self._processed:
            records = self.splits[split].remove_columns(
                [name for name in ("report", "multi_hot") if name in self.splits[split].column_names]
            )
            self._processed[split] = preprocess_split(
                records, self.feature_extractor, batch_size=self.batch_size, description=f"Preprocessing {split}"
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
        scored = np.flatnonzero(self.scorable(references)).tolist()
        if not scored:
            raise ValueError(
                f"No test record has a non-empty report of language {self.report_language!r}; nothing can be scored."
            )
        result = compute_report_metrics(
            [predictions[index] for index in scored],
            [references[index] for index in scored],
            n_bootstrap=self.n_bootstrap,
            seed=seed,
            bertscore=self.bertscore,
        )
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
        )

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

    Returns:
        `list[str]`: one report per record, stripped of special tokens and surrounding white space.
    """
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
                input_values.to(device), lead_mask=lead_mask.to(device), max_new_tokens=max_new_tokens, do_sample=False
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
) -> tuple[list[ResultRow], list[dict[str, str]]]:
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

    Returns:
        `(rows, examples)`: one `ResultRow` per model and seed (MERIT first), and for the first `n_examples` test
        records a dict with `reference` and each model's report.
    """
    taken = [name for name in baseline_models or {} if name in ("MERIT", *BASELINES)]
    if taken:
        raise ValueError(f"Baseline model names {taken} are taken; the built-in names are {('MERIT', *BASELINES)}.")
    test_inputs = harness.processed("test")
    settings = dict(batch_size=harness.batch_size, device=harness.device, max_new_tokens=max_new_tokens)
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
        train_reports = harness.references("train")
        retrieved = nearest_neighbour_reports(
            train_features, test_features, train_reports, harness.scorable(train_reports)
        )
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
    return rows, examples


def examples_to_markdown(examples: list[dict[str, str]]) -> str:
    """The example generations as markdown: one block per test record, the reference first."""
    blocks = []
    for index, example in enumerate(examples):
        lines = [f"**Test record {index}**", ""]
        lines += [f"- {name}: {report!r}" for name, report in example.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


SMALL_TEST_SET = 200
"""Below this many scored test records the printed table carries a note that the scores are noisy."""


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
) -> tuple[list[ResultRow], list[str]]:
    """`eval_merit.py --task report-generation`: load the checkpoint and the dataset's reports, run
    `run_report_generation`, write and print the example generations (`<output_dir>/examples.md`).

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

    Returns:
        `(rows, notes)`: the result rows and the lines printed under the table.
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
    for name, (_, baseline_processor) in baseline_models.items():
        if baseline_processor.feature_extractor.to_dict() != processor.feature_extractor.to_dict():
            raise ValueError(
                f"The baseline checkpoint {name!r} ({baseline_checkpoints[name]}) preprocesses ECGs differently from "
                f"{model_name_or_path}; a baseline must share the evaluated checkpoint's feature extractor."
            )
    splits = load_report_dataset(data_dir, dataset, sampling_rate=sampling_rate, cache_dir=cache_dir)
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
    )
    logger.info(
        "Report generation with %s on %s (%d train, %d test records) on %s.",
        model_name_or_path,
        dataset_spec(dataset).display_name,
        len(splits["train"]),
        harness.n_test,
        device,
    )
    rows, examples = run_report_generation(
        harness,
        model,
        processor,
        seeds=seeds,
        baselines=baselines,
        max_new_tokens=max_new_tokens,
        n_examples=n_examples,
        baseline_models=baseline_models,
    )
    if examples:
        text = examples_to_markdown(examples)
        (Path(output_dir) / "examples.md").write_text(text, encoding="utf-8")
        print(f"Example reports (test split, seed {seeds[0]}):\n\n{text}")
    notes = [f"Note: BERTScore is {rows[0].details['bertscore']}."] if "bertscore" in rows[0].details else []
    n_scored = min(row.n_test for row in rows)
    if n_scored < SMALL_TEST_SET:
        notes.append(
            f"Note: only {n_scored} test reports were scored (< {SMALL_TEST_SET}) and the training split has "
            f"{len(splits['train'])} records: expect noisy scores with wide confidence intervals, not comparable "
            "with published report-generation numbers."
        )
    return rows, notes
