# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`eval_merit.py --task report-generation` end to end on the PTB-XL sample with a tiny random
`MeritForReportGeneration` (tiny MERIT encoder + tiny Llama), and the runner's building blocks.

The model is untrained, so the scores are meaningless: the tests check the protocol (every generation before the
first read of the test reports, the baselines change only the ECG side, the outputs), not the numbers.
"""

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from merit_evaluation import cli as eval_merit
from merit_evaluation import report_generation
from merit_evaluation.clinical_efficacy import compute_clinical_efficacy
from merit_evaluation.metrics import MetricValue
from merit_evaluation.report_generation import (
    ALIGNMENT_BASELINE,
    BASELINES,
    ReportGenerationHarness,
    aligned_retrieval_reports,
    derangement,
    load_report_dataset,
    nearest_neighbour_reports,
    random_init_encoder,
    run_report_generation,
)
from merit_evaluation.report_metrics import tokenize_report
from merit_evaluation.results import RESULTS_START_MARKER, read_results
from merit_training.report_generation import report_language
from modeling_merit import (
    MeritConfig,
    MeritFeatureExtractor,
    MeritForPreTraining,
    MeritForReportGeneration,
    MeritProcessor,
    MeritReportGenerationConfig,
)


PTBXL_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ptbxl-sample"
MAX_NEW_TOKENS = 4


@pytest.fixture(scope="module")
def model(tokenizer):
    """A tiny random report generator: the `tiny` MERIT encoder, a 1-layer Llama over the MiniLM vocabulary."""
    torch.manual_seed(0)
    config = MeritReportGenerationConfig(
        ecg_config=MeritConfig.from_preset("tiny").ecg_config.to_dict(),
        text_config={
            "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id,
        },
        projector_hidden_size=16,
        prompt_ids_before_ecg=[tokenizer.cls_token_id],
        prompt_ids_after_ecg=tokenizer.convert_tokens_to_ids(["report", ":"]),
    )  # fmt: skip
    return MeritForReportGeneration(config).eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, processor):
    directory = tmp_path_factory.mktemp("report-checkpoint")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory, model, processor):
    """Another report generator with the same architecture and processor, differently initialised."""
    directory = tmp_path_factory.mktemp("other-checkpoint")
    torch.manual_seed(1)
    MeritForReportGeneration(model.config).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def pretraining_checkpoint(tmp_path_factory, processor):
    """A tiny random MERIT pretraining checkpoint (both towers) with the generator's processor."""
    directory = tmp_path_factory.mktemp("pretraining-checkpoint")
    torch.manual_seed(2)
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def splits(cache_dir):
    return load_report_dataset(PTBXL_SAMPLE, cache_dir=cache_dir)


def make_harness(splits, processor, n_bootstrap=10, language="all"):
    return ReportGenerationHarness(
        splits,
        processor.feature_extractor,
        dataset="ptbxl",
        model_name_or_path="tiny",
        model_revision=None,
        batch_size=32,
        device="cpu",
        n_bootstrap=n_bootstrap,
        bertscore=False,
        report_language=language,
    )


@pytest.mark.slow
def test_cli_end_to_end(checkpoint, other_checkpoint, pretraining_checkpoint, cache_dir, splits, tmp_path):
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: apache-2.0\n---\n# tiny report generator\n", encoding="utf-8")
    output_dir = tmp_path / "eval"
    rows = eval_merit.main(
        [
            "--task", "report-generation", "--model_name_or_path", str(checkpoint), "--data_dir", str(PTBXL_SAMPLE),
            "--output_dir", str(output_dir), "--cache_dir", str(cache_dir), "--n_bootstrap", "20",
            "--max_new_tokens", str(MAX_NEW_TOKENS), "--report_examples", "3", "--model_card", str(card),
            "--baseline_checkpoints", f"random-init-bridge={other_checkpoint}",
            "--retrieval_checkpoint", str(pretraining_checkpoint),
        ]
    )  # fmt: skip
    n_scored = sum(bool(tokenize_report(report)) for report in splits["test"]["report"])
    assert [row.baseline for row in rows] == [None, *BASELINES, ALIGNMENT_BASELINE, "random-init-bridge"]
    for row in rows:
        assert row.task == "report-generation" and row.label_set == "report" and row.n_test == n_scored
        for name in ("rougeL", "meteor", "bleu4", "bertscore_f1", "cider_d", "rouge1", "rouge2", "bleu1"):
            metric = row.metrics[name]
            assert metric.ci_low is not None and metric.ci_low <= metric.value <= metric.ci_high
        assert row.details["bertscore"].startswith("all-MiniLM-L6-v2, layer 6 of 6")
    assert [row.to_dict() for row in read_results(output_dir / "results.json")] == [row.to_dict() for row in rows]
    table = (output_dir / "results.md").read_text()
    assert "ROUGE-L" in table and "baseline: nearest-neighbour" in table and "all-MiniLM-L6-v2" in table
    assert "CE-F1 micro" in table and "Paired bootstrap differences" in table and "ceiling" in table
    assert table.index("| MERIT") < table.index("Paired bootstrap") < table.index("Example reports")  # examples last
    lines = (output_dir / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(splits["test"])
    assert set(json.loads(lines[0])["generations"]) == {"MERIT", *BASELINES, ALIGNMENT_BASELINE, "random-init-bridge"}
    differences = json.loads((output_dir / "paired_differences.json").read_text())
    with Image.open(output_dir / "ce_per_class.png") as image:  # per-class CE-F1 of every generator
        assert image.format == "PNG"
    assert "ce_per_class.png" in table
    others = (*BASELINES, ALIGNMENT_BASELINE, "random-init-bridge")
    assert set(differences["seed 0"]) == {f"MERIT - {name}" for name in others}
    examples = (output_dir / "examples.md").read_text()
    assert examples.count("**Test record") == 3 and "- reference:" in examples and "- MERIT:" in examples
    card_text = card.read_text()
    assert RESULTS_START_MARKER in card_text and "ECG report generation" in card_text
    # both retrievals return training reports only
    train_reports = set(splits["train"]["report"])
    for name in ("nearest-neighbour", ALIGNMENT_BASELINE):
        assert name in examples
        assert all(report in train_reports for report in _retrieved(examples, name))


def _retrieved(examples_markdown: str, name: str) -> list[str]:
    prefix = f"- {name}: "
    return [
        ast.literal_eval(line[len(prefix) :]) for line in examples_markdown.splitlines() if line.startswith(prefix)
    ]


@pytest.mark.slow
def test_test_reports_are_read_once_after_every_generation(model, processor, splits, monkeypatch):
    harness = make_harness(splits, processor)
    events = []
    read_references = ReportGenerationHarness._split_references
    reads_from_dataset = []

    def spy_references(self, split):
        events.append(("read", split))
        if split not in self._references:
            reads_from_dataset.append(split)
        return read_references(self, split)

    original_generate = model.generate

    def spy_generate(*args, **kwargs):
        events.append(("generate", None))
        return original_generate(*args, **kwargs)

    monkeypatch.setattr(ReportGenerationHarness, "_split_references", spy_references)
    monkeypatch.setattr(model, "generate", spy_generate)
    with pytest.raises(ValueError, match="only read by"):
        harness.references("test")
    rows = run_report_generation(
        harness, model, processor, seeds=[0, 1], baselines=True, max_new_tokens=MAX_NEW_TOKENS, n_examples=2
    ).rows
    first_test_read = events.index(("read", "test"))
    assert ("generate", None) in events[:first_test_read]
    assert ("generate", None) not in events[first_test_read:]
    assert reads_from_dataset.count("test") == 1
    assert len(rows) == 2 * (1 + len(BASELINES))


def test_baselines_change_only_the_ecg_side(model, processor, splits):
    harness = make_harness(splits, processor)
    trained_encoder = model.ecg_model
    trained_state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    examples = run_report_generation(
        harness, model, processor, seeds=[3], baselines=True, max_new_tokens=MAX_NEW_TOKENS, n_examples=2
    ).examples
    assert model.ecg_model is trained_encoder  # restored after the random-init baseline
    assert all(torch.equal(tensor, trained_state[name]) for name, tensor in model.state_dict().items())
    assert set(examples[0]) == {"reference", "MERIT", *BASELINES}

    rng_state = torch.random.get_rng_state()
    random_encoder = random_init_encoder(trained_encoder, seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert type(random_encoder) is type(trained_encoder)
    assert not torch.equal(next(random_encoder.parameters()), next(trained_encoder.parameters())), (
        "the random-init encoder must not be the trained one"
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(random_encoder.parameters(), random_init_encoder(trained_encoder, seed=3).parameters())
    )


def test_language_filter_scores_and_retrieves_only_that_language(model, processor, splits):
    harness = make_harness(splits, processor, language="de")
    outcome = run_report_generation(
        harness, model, processor, seeds=[0], baselines=True, max_new_tokens=MAX_NEW_TOKENS, n_examples=3
    )
    rows, examples = outcome.rows, [record["generations"] for record in outcome.generations]
    german = [report for report in splits["test"]["report"] if report_language(report) == "de"]
    assert 0 < len(german) < harness.n_test
    for row in rows:
        assert row.label_set == "report-de" and row.n_test == len(german)
        assert row.details["unscored_test_records"] == str(harness.n_test - len(german))
    assert len(examples) == harness.n_test  # every record is generated for, whatever its language
    assert all(report_language(example["nearest-neighbour"]) == "de" for example in examples)
    assert report_language(examples[0]["most-frequent-report"]) == "de"


def test_generations_differences_and_clinical_efficacy(model, processor, splits, tmp_path):
    """Every generation is kept (generations.jsonl), the CE metrics are in every row, and the paired differences are
    the differences of the rows' own point estimates."""
    harness = make_harness(splits, processor, n_bootstrap=50)
    outcome = run_report_generation(
        harness, model, processor, seeds=[0, 1], baselines=True, max_new_tokens=MAX_NEW_TOKENS, n_examples=3
    )
    test = splits["test"]
    names = test.features["labels"].feature.names
    path = tmp_path / "generations.jsonl"
    report_generation.write_generations(path, outcome.generations)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [record["record_id"] for record in records] == test["ecg_id"]
    assert [record["reference"] for record in records] == test["report"]
    assert records[5]["statements"] == [names[index] for index in test[5]["labels"]]
    seed_dependent = {"ecg-shuffled (seed 1)", "random-init-encoder (seed 1)"}
    for record, example in zip(records, outcome.examples):
        assert {name: record["generations"][name] for name in example if name != "reference"} == {
            name: text for name, text in example.items() if name != "reference"
        }
    assert set(records[0]["generations"]) <= {"MERIT", *BASELINES} | seed_dependent
    assert {"MERIT", *BASELINES} <= set(records[0]["generations"])
    train_reports = [report for report in splits["train"]["report"] if tokenize_report(report)]
    mode = max(set(train_reports), key=train_reports.count)
    assert {record["generations"]["most-frequent-report"] for record in records} == {mode}
    assert all(record["scored"] == bool(tokenize_report(record["reference"])) for record in records)

    rows = {(row.baseline, row.seed): row for row in outcome.rows}
    for row in outcome.rows:
        assert {"ce_f1_micro", "ce_f1_macro", "ce_precision_micro", "ce_recall_micro"} <= set(row.metrics)
        assert "NORM" in row.details["ce_per_class_f1"]
    for seed in (0, 1):
        assert set(outcome.paired_differences[seed]) == set(BASELINES)
        for baseline, differences in outcome.paired_differences[seed].items():
            for metric in ("ce_f1_micro", "rougeL", "bleu4"):
                expected = rows[(None, seed)].metrics[metric].value - rows[(baseline, seed)].metrics[metric].value
                assert differences[metric].value == pytest.approx(expected, abs=1e-12)
                assert differences[metric].ci_low <= differences[metric].value <= differences[metric].ci_high
    # the most-frequent report is one fixed text: its rows' CE equals the extractor on that text for every record
    statements = [[names[index] for index in labels] for labels in test["labels"]]
    scored = [index for index, report in enumerate(test["report"]) if tokenize_report(report)]
    expected = compute_clinical_efficacy([mode] * len(scored), [statements[i] for i in scored], n_bootstrap=0)
    assert rows[("most-frequent-report", 0)].metrics["ce_f1_micro"].value == pytest.approx(
        expected.metrics["ce_f1_micro"].value
    )
    table = report_generation.paired_differences_to_markdown(outcome.paired_differences[0], 0)
    assert "MERIT − nearest-neighbour" in table and "(ECG-blind)" in table and "excludes 0:" in table
    assert outcome.ceiling is not None and outcome.ceiling.n_samples == len(scored)


def test_derangement_moves_every_record():
    for n_records in (2, 3, 10, 53):
        permutation = derangement(n_records, seed=5)
        assert sorted(permutation.tolist()) == list(range(n_records))
        assert (permutation != np.arange(n_records)).all()
    assert derangement(10, seed=5).tolist() == derangement(10, seed=5).tolist()


def test_nearest_neighbour_retrieves_the_most_similar_training_report():
    train_features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    train_reports = ["right", "up", "diagonal", "left"]  # the last is not usable: never retrieved
    test_features = np.array([[2.0, 0.1], [0.1, 3.0], [1.0, 0.9], [-1.0, 0.01]])
    usable = np.array([True, True, True, False])
    assert nearest_neighbour_reports(train_features, test_features, train_reports, usable) == [
        "right", "up", "diagonal", "up",
    ]  # fmt: skip


def test_ecg_text_retrieval_returns_the_training_report_nearest_in_the_shared_space(splits, processor):
    from modeling_merit import MeritModel  # what AutoModel loads from a pretraining checkpoint

    torch.manual_seed(3)
    dual_model = MeritModel(MeritConfig.from_preset("tiny")).eval()
    test_inputs = make_harness(splits, processor).processed("test").select(range(6))
    train_reports = [
        "sinus rhythm. normal ecg.",
        "atrial fibrillation.",
        "left bundle branch block.",
        "",
        "sinus rhythm. normal ecg.",
    ]
    usable = np.array([True, True, True, False, True])  # the empty one is never retrieved
    retrieved = aligned_retrieval_reports(dual_model, processor, test_inputs, train_reports, usable, 4, "cpu")

    candidates = train_reports[:3]
    with torch.no_grad():
        batch = test_inputs.with_format("torch")[:]
        ecg = torch.nn.functional.normalize(
            dual_model.get_ecg_features(batch["input_values"], batch["lead_mask"]), dim=-1
        )
        tokens = processor(text=candidates, return_tensors="pt")
        text = torch.nn.functional.normalize(
            dual_model.get_text_features(tokens["input_ids"], tokens["attention_mask"]), dim=-1
        )
    assert retrieved == [candidates[index] for index in (ecg @ text.T).argmax(dim=1).tolist()]
    with pytest.raises(ValueError, match="No training record has a usable"):
        aligned_retrieval_reports(dual_model, processor, test_inputs, train_reports, np.zeros(5, bool), 4, "cpu")


def test_ecg_text_retrieval_gives_each_ecg_its_own_nearest_report(splits, processor, monkeypatch):
    """With report embeddings set to three of the ECGs' own embeddings, those ECGs retrieve "their" report: which ECG
    gets which report is tested, not only the argmax of a random model (which may pick one report for every ECG)."""
    from merit_evaluation import retrieval
    from modeling_merit import MeritModel

    torch.manual_seed(3)
    dual_model = MeritModel(MeritConfig.from_preset("tiny")).eval()
    test_inputs = make_harness(splits, processor).processed("test").select(range(6))
    ecg = retrieval.pool_ecg_embeddings(dual_model, test_inputs, 4, "cpu")
    owners = [0, 3, 5]
    monkeypatch.setattr(retrieval, "report_embeddings", lambda *args, **kwargs: ecg[owners])
    reports = ["report of ECG 0", "report of ECG 3", "report of ECG 5"]
    retrieved = aligned_retrieval_reports(dual_model, processor, test_inputs, reports, np.ones(3, bool), 4, "cpu")
    assert [retrieved[index] for index in owners] == reports
    assert retrieved == [reports[index] for index in (ecg @ ecg[owners].T).argmax(axis=1)]


def test_a_retrieval_checkpoint_without_a_text_tower_is_rejected(checkpoint, tmp_path, cache_dir):
    with pytest.raises(
        ValueError,
        match="--retrieval_checkpoint needs a MERIT pretraining or dual-encoder checkpoint with its text tower",
    ):
        report_generation.run_report_generation_task(
            str(checkpoint), PTBXL_SAMPLE, tmp_path, cache_dir=cache_dir, bertscore=False,
            retrieval_checkpoint=str(checkpoint),
        )  # fmt: skip


def test_argument_checks(checkpoint, tmp_path):
    base = ["--model_name_or_path", str(checkpoint), "--data_dir", str(PTBXL_SAMPLE), "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match="runs alone"):
        eval_merit.parse_arguments([*base, "--task", "report-generation", "zero-shot"])
    with pytest.raises(ValueError, match="no\n?.*--label_set|takes no"):
        eval_merit.parse_arguments([*base, "--task", "report-generation", "--label_set", "superdiagnostic"])
    with pytest.raises(ValueError, match="--dataset is required"):
        eval_merit.parse_arguments([*base, "--task", "linear-probe"])
    with pytest.raises(ValueError, match="distinct names other than"):
        eval_merit.parse_arguments([*base, "--task", "report-generation", "--baseline_checkpoints", "ecg-shuffled=x"])
    with pytest.raises(ValueError, match="NAME=PATH"):
        eval_merit.parse_arguments([*base, "--task", "report-generation", "--baseline_checkpoints", "no-path"])
    with pytest.raises(ValueError, match="--baseline_checkpoints, --retrieval_checkpoint and --generate_kwargs only"):
        eval_merit.parse_arguments([*base, "--task", "zero-shot", "--dataset", "ptbxl", "--report_language", "de"])
    with pytest.raises(ValueError, match="--retrieval_checkpoint and --generate_kwargs only apply"):
        eval_merit.parse_arguments([*base, "--task", "zero-shot", "--dataset", "ptbxl", "--retrieval_checkpoint", "x"])
    with pytest.raises(ValueError, match="distinct names other than"):
        eval_merit.parse_arguments(
            [*base, "--task", "report-generation", "--baseline_checkpoints", f"{ALIGNMENT_BASELINE}=x"]
        )
    with pytest.raises(ValueError, match="--report_split validation applies to --task report-generation or --task "):
        eval_merit.parse_arguments(
            [*base, "--task", "zero-shot", "retrieval", "--dataset", "ptbxl", "--report_split", "validation"]
        )
    with pytest.raises(ValueError, match="must be a JSON object"):
        eval_merit.parse_arguments([*base, "--task", "report-generation", "--generate_kwargs", "num_beams=3"])
    with pytest.raises(ValueError, match="may not set 'num_return_sequences'"):
        eval_merit.parse_arguments(
            [*base, "--task", "report-generation", "--generate_kwargs", '{"num_return_sequences": 2}']
        )
    _, data_args, eval_args = eval_merit.parse_arguments(
        [*base, "--task", "report-generation", "--generate_kwargs", '{"num_beams": 2, "repetition_penalty": 1.2}']
    )
    assert data_args.dataset == "ptbxl"
    assert eval_merit.report_generate_kwargs(eval_args) == {"num_beams": 2, "repetition_penalty": 1.2}


def test_a_classification_checkpoint_is_rejected(tmp_path, processor, cache_dir):
    from modeling_merit import MeritForPreTraining

    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(tmp_path / "merit")
    processor.save_pretrained(tmp_path / "merit")
    with pytest.raises(ValueError, match="MeritForReportGeneration checkpoint"):
        report_generation.run_report_generation_task(
            str(tmp_path / "merit"), PTBXL_SAMPLE, tmp_path, cache_dir=cache_dir, bertscore=False
        )
    shutil.rmtree(tmp_path / "merit")


@pytest.mark.slow
def test_evaluates_a_checkpoint_exported_by_train_merit(tmp_path, tokenizer, cache_dir):
    """The real pipeline: `train_merit.py --task report_generation` exports a generator (tiny MERIT + tiny Llama),
    `eval_merit.py --task report-generation` evaluates it and fills the exported model card."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import train_merit

    torch.manual_seed(0)
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(tmp_path / "merit")
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(tmp_path / "merit")
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, bos_token_id=None,
            eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        )
    ).save_pretrained(tmp_path / "llm")  # fmt: skip
    tokenizer.save_pretrained(tmp_path / "llm")
    train_merit.main(
        [
            "--task", "report_generation", "--model_name_or_path", str(tmp_path / "merit"),
            "--language_model_name_or_path", str(tmp_path / "llm"), "--output_dir", str(tmp_path / "bridge"),
            "--cache_dir", str(cache_dir), "--max_train_samples", "8", "--max_eval_samples", "4",
            "--per_device_train_batch_size", "4", "--report_to", "none", "--config_overrides",
            '{"projector_hidden_size": 16, "num_prefix_tokens": 2, "generation_defaults": {"repetition_penalty": 1.3}}',
            "--lora_rank", "2",
        ]
    )  # fmt: skip
    rows = eval_merit.main(
        [
            "--task", "report-generation", "--model_name_or_path", str(tmp_path / "bridge"),
            "--data_dir", str(PTBXL_SAMPLE), "--output_dir", str(tmp_path / "eval"), "--cache_dir", str(cache_dir),
            "--n_bootstrap", "0", "--max_new_tokens", "2", "--no_baselines",
            "--model_card", str(tmp_path / "bridge" / "README.md"),
        ]
    )  # fmt: skip
    assert [row.baseline for row in rows] == [None]
    assert {"rougeL", "meteor", "bleu4", "bertscore_f1"} <= set(rows[0].metrics)
    saved = json.loads((tmp_path / "bridge" / "config.json").read_text())
    assert saved["generation_defaults"] == {"repetition_penalty": 1.3}  # decoding set at training travels with it
    card = (tmp_path / "bridge" / "README.md").read_text()
    assert "ECG report generation" in card
    assert "**Test record 0**" in card and "- reference: " in card and "- MERIT: " in card  # what users read


def test_validation_split_and_decoding_arguments(model, processor, splits, tmp_path, cache_dir, checkpoint):
    """--report_split validation scores the validation records (the test fold is not read) and --generate_kwargs
    reaches every generation: beam search gives the model's own beam-search reports."""
    rows, notes = report_generation.run_report_generation_task(
        str(checkpoint), PTBXL_SAMPLE, tmp_path, cache_dir=cache_dir, bertscore=False, n_bootstrap=0,
        max_new_tokens=MAX_NEW_TOKENS, n_examples=1, split="validation", generate_kwargs={"num_beams": 2},
        baselines=False,
    )  # fmt: skip
    validation = splits["validation"]
    assert [row.split for row in rows] == ["validation"]
    assert rows[0].n_test == sum(bool(tokenize_report(report)) for report in validation["report"])
    assert "validation split (fold 9)" in notes[0]
    examples = (tmp_path / "examples.md").read_text()
    assert "**Validation record 0**" in examples and "Test record" not in examples  # no fold is misnamed
    records = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert [record["record_id"] for record in records] == validation["ecg_id"]
    harness = make_harness(splits, processor)
    inputs = harness.processed("validation").with_format("torch", columns=["input_values", "lead_mask"])[:2]
    beams = model.generate(
        inputs["input_values"], lead_mask=inputs["lead_mask"], max_new_tokens=MAX_NEW_TOKENS, num_beams=2
    )
    expected = [text.strip() for text in processor.batch_decode(beams, skip_special_tokens=True)]
    assert [record["generations"]["MERIT"] for record in records[:2]] == expected
    with pytest.raises(ValueError, match="one report per record"):
        report_generation.generate_reports(
            model, processor, harness.processed("validation"), batch_size=4, device="cpu", max_new_tokens=2,
            generate_kwargs={"num_return_sequences": 2},
        )  # fmt: skip


def test_most_frequent_report_and_paired_differences_file(tmp_path):
    reports = ["b", "a", "a", "b", "c", "c", "c"]
    usable = np.array([True, True, True, True, False, False, False])  # "c" is the mode but not usable
    assert report_generation.most_frequent_report(reports, usable) == "b"  # tie between a and b: the first seen
    with pytest.raises(ValueError, match="No training record"):
        report_generation.most_frequent_report(reports, np.zeros(7, dtype=bool))
    differences = {
        0: {"nearest-neighbour": {"rougeL": MetricValue(0.1, -0.05, 0.2), "ce_f1_macro": MetricValue(float("nan"))}}
    }
    report_generation.write_paired_differences(tmp_path / "d.json", differences)
    assert json.loads((tmp_path / "d.json").read_text()) == {
        "seed 0": {
            "MERIT - nearest-neighbour": {
                "rougeL": {"value": 0.1, "ci_low": -0.05, "ci_high": 0.2},
                "ce_f1_macro": {"value": None, "ci_low": None, "ci_high": None},
            }
        }
    }
    table = report_generation.paired_differences_to_markdown(differences[0], 0)
    assert "+0.100 (-0.050 to +0.200)" in table and "*" not in table.split("\n")[4] and "excludes 0: none." in table
    differences[0]["ecg-shuffled"] = {"rougeL": MetricValue(0.2, 0.1, 0.3), "bleu4": MetricValue(-0.2, -0.3, -0.1)}
    table = report_generation.paired_differences_to_markdown(differences[0], 0)
    assert table.endswith("excludes 0:\n- vs ecg-shuffled: MERIT above on rougeL; below on bleu4\n")
