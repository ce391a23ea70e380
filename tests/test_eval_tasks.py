# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`eval_merit.py` and its task modules, end to end on the real PTB-XL sample with a tiny random checkpoint.

The checkpoint is untrained, so the scores are near chance: the tests check the protocol (splits, thresholds from
validation only, one test evaluation per model, baselines, outputs, model card), not the numbers.
"""

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from dataset_scripts.registry import class_descriptions
from merit_evaluation import cli as eval_merit
from merit_evaluation import thresholds as thresholds_module
from merit_evaluation.data import load_evaluation_dataset, preprocess_split, split_labels
from merit_evaluation.harness import EvaluationHarness, TrainingOptions
from merit_evaluation.metrics import macro_roc_auc
from merit_evaluation.results import RESULTS_END_MARKER, RESULTS_START_MARKER, read_results
from merit_evaluation.robustness import ShiftSetting, shift_settings, shift_transform
from merit_evaluation.training import train_with_early_stopping
from merit_evaluation.zero_shot import ClassEmbeddingCache, class_text_embeddings, zero_shot_scores
from merit_training.model_card import (
    MODEL_CARD_PLACEHOLDERS,
    MODEL_CARD_TEMPLATE_PATH,
    describe_architecture,
    describe_preprocessing,
    fill_model_card_template,
    template_placeholders,
)
from modeling_merit import (
    MeritConfig,
    MeritFeatureExtractor,
    MeritForECGClassification,
    MeritForPreTraining,
)


PTBXL_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ptbxl-sample"
SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]
N_VALIDATION, N_TEST = 168, 181  # folds 9 and 10 of the sample, minus records without a superdiagnostic label
METRICS = ("macro_auroc", "macro_f1", "fmax")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, processor):
    """A tiny random MERIT pretraining checkpoint saved with its processor."""
    directory = tmp_path_factory.mktemp("checkpoint")
    torch.manual_seed(1234)  # not a seed of the random-init baseline, whose encoder would then be the same
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def splits(cache_dir):
    return load_evaluation_dataset("ptbxl", PTBXL_SAMPLE, "superdiagnostic", cache_dir=cache_dir)


def cli(checkpoint, output_dir, cache_dir, *tasks, extra=()):
    """Fast settings: 20 bootstrap resamples, at most 3 epochs."""
    return [
        "--model_name_or_path", str(checkpoint), "--task", *tasks, "--dataset", "ptbxl",
        "--data_dir", str(PTBXL_SAMPLE), "--output_dir", str(output_dir), "--cache_dir", str(cache_dir),
        "--n_bootstrap", "20", *extra,
    ]  # fmt: skip


def check_row(row, task, baseline=None):
    assert row.task == task and row.dataset == "ptbxl" and row.label_set == "superdiagnostic"
    assert row.baseline == baseline and row.split == "test" and row.n_test == N_TEST
    assert row.thresholds_source == "validation"
    assert sorted(row.per_class_auroc) == SUPERCLASSES
    for name in METRICS:
        metric = row.metrics[name]
        assert 0.0 <= metric.value <= 1.0
        # a percentile interval need not contain the point estimate (e.g. Fmax, a maximum, is biased upwards)
        assert metric.ci_low is not None and 0.0 <= metric.ci_low <= metric.ci_high <= 1.0
    assert row.bootstrap["n_resamples"] == 20


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_merit.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for arguments in (eval_merit.ModelArguments, eval_merit.DataArguments, eval_merit.EvaluationArguments):
        for argument in fields(arguments):
            assert f"--{argument.name}" in help_text
            assert argument.metadata.get("help"), f"--{argument.name} has no help"
    for flag in ("--no_baselines", "--no_save_models", "linear-probe", "zero-shot", "robustness", "finetune"):
        assert flag in help_text


@pytest.mark.parametrize(
    "tasks, extra, flag",
    [
        (["linear-probe"], ["--prompts", "prompts.json"], "--prompts"),
        (["zero-shot"], ["--label_fractions", "0.1"], "--label_fractions"),
        (["linear-probe"], ["--label_fractions", "0", "1"], "--label_fractions"),
        (["linear-probe"], ["--label_fractions", "0.5", "0.5"], "--label_fractions"),
        (["linear-probe"], ["--label_set", "rhythms"], "--label_set"),
        (["zero-shot"], ["--epochs", "3"], "--epochs"),
        (["zero-shot"], ["--learning_rate", "0.1"], "--learning_rate"),
        (["linear-probe"], ["--patience", "0"], "--patience"),
        (["linear-probe"], ["--shifts", "gaussian_noise"], "--shifts"),
        (["linear-probe"], ["--push_to_hub"], "--push_to_hub"),
        (["linear-probe"], ["--hub_model_id", "user/model"], "--hub_model_id"),
        (["linear-probe"], ["--dataset_sampling_rate", "250"], "--dataset_sampling_rate"),
        (["linear-probe"], ["--seeds", "1", "1"], "--seeds"),
        (["linear-probe", "linear-probe"], [], "--task"),
        (["linear-probe"], ["--model_card", "missing.md"], "--model_card"),
    ],
)
def test_invalid_flag_combinations_fail_early(tmp_path, monkeypatch, tasks, extra, flag):
    monkeypatch.chdir(tmp_path)
    Path("prompts.json").write_text("{}")
    output_dir = tmp_path / "out"
    # the model path does not exist: reaching any loading step would raise something else
    with pytest.raises(ValueError, match=flag):
        eval_merit.main(cli(tmp_path / "no-model", output_dir, tmp_path / "cache", *tasks, extra=extra))
    assert not output_dir.exists()


def test_run_demo_evaluation_arguments(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(eval_merit, "main", lambda arguments: calls.append(arguments) or [])
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# card\n")
    assert eval_merit.run_demo_evaluation(tmp_path, PTBXL_SAMPLE) == []
    model_args, data_args, eval_args = eval_merit.parse_arguments(calls[0])  # valid flags
    assert model_args.model_name_or_path == str(tmp_path) and data_args.label_set == "superdiagnostic"
    assert eval_args.task == ["linear-probe", "zero-shot", "retrieval"] and eval_args.label_fractions == [0.1, 1.0]
    assert eval_args.baselines and not eval_args.save_models
    assert eval_args.output_dir == str(tmp_path / "results") and eval_args.model_card == str(tmp_path / "README.md")


def test_unknown_choices_are_rejected_by_the_parser(tmp_path, capsys):
    for bad in (["--task", "probe"], ["--dataset", "mimic"]):
        arguments = cli(tmp_path, tmp_path / "out", tmp_path, "linear-probe") + bad
        with pytest.raises(SystemExit):
            eval_merit.main(arguments)
        assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filled_card_text(checkpoint, processor):
    config = MeritConfig.from_pretrained(checkpoint)
    values = {
        "model_id": "merit-tests/tiny",
        "pretraining_dataset_id": "ptbxl-sample",
        "architecture": describe_architecture(config),
        "preprocessing": describe_preprocessing(processor.feature_extractor),
        "training_data": "Untrained (random weights).",
        "training_configuration": "None.",
    }
    return fill_model_card_template(MODEL_CARD_TEMPLATE_PATH.read_text(encoding="utf-8"), values)


@pytest.mark.slow
def test_linear_probe_and_zero_shot_end_to_end(checkpoint, cache_dir, tmp_path, capsys, monkeypatch, splits, processor,
                                               filled_card_text):  # fmt: skip
    card_path = tmp_path / "README.md"
    card_path.write_text(filled_card_text, encoding="utf-8")
    fitted = []
    fit_thresholds = thresholds_module.fit_thresholds

    def recording_fit_thresholds(*, validation_labels, validation_scores):
        fitted.append(np.array(validation_labels))
        return fit_thresholds(validation_labels=validation_labels, validation_scores=validation_scores)

    monkeypatch.setattr(thresholds_module, "fit_thresholds", recording_fit_thresholds)
    output_dir = tmp_path / "eval"
    extra = ["--label_fractions", "0.1", "1.0", "--epochs", "3", "--patience", "2", "--model_card", str(card_path)]
    rows = eval_merit.main(cli(checkpoint, output_dir, cache_dir, "linear-probe", "zero-shot", extra=extra))

    # rows: 2 fractions x (MERIT, random-init) + zero-shot
    assert [(row.task, row.fraction, row.baseline) for row in rows] == [
        ("linear-probe", 0.1, None), ("linear-probe", 0.1, "random-init"),
        ("linear-probe", 1.0, None), ("linear-probe", 1.0, "random-init"),
        ("zero-shot", 1.0, None),
    ]  # fmt: skip
    for row in rows:
        check_row(row, row.task, row.baseline)
    assert [row.to_dict() for row in read_results(output_dir / "results.json")] == [row.to_dict() for row in rows]
    # a ROC / per-class AUROC figure next to results.json for each MERIT row, none for the baselines
    assert sorted(path.name for path in output_dir.glob("roc_*.png")) == [
        "roc_linear-probe_frac0.1_seed0.png", "roc_linear-probe_frac1_seed0.png", "roc_zero-shot_frac1_seed0.png",
    ]  # fmt: skip

    # thresholds: only ever fitted on the validation labels (one fit per trained probe and one for zero-shot)
    validation_labels = split_labels(splits["validation"])
    assert len(fitted) == 5
    for labels in fitted:
        np.testing.assert_array_equal(labels, validation_labels)

    # the table and its small-test-set note are printed and written
    printed = capsys.readouterr().out
    assert "| linear-probe | ptbxl | superdiagnostic | 0.1 | 0 | MERIT |" in printed
    assert "baseline: random-init" in printed
    assert f"only {N_TEST} records" in printed
    assert (output_dir / "results.md").read_text(encoding="utf-8").strip() == printed.strip()

    # the saved probe is a reusable MeritForECGClassification that reproduces its test row
    probe_dir = output_dir / "models" / "linear-probe_fraction-1_seed-0"
    probe = MeritForECGClassification.from_pretrained(probe_dir).eval()
    assert probe.config.freeze_ecg_encoder and probe.config.id2label[3] == "NORM"
    saved_thresholds = json.loads((probe_dir / "thresholds.json").read_text())
    assert saved_thresholds["source"] == "validation" and list(saved_thresholds["thresholds"]) == SUPERCLASSES
    test_inputs = preprocess_split(splits["test"], processor.feature_extractor).with_format("torch")[:]
    with torch.no_grad():
        scores = torch.sigmoid(probe(test_inputs["input_values"], test_inputs["lead_mask"]).logits).numpy()
    probe_row = rows[2]
    assert macro_roc_auc(split_labels(splits["test"]), scores) == pytest.approx(probe_row.metrics["macro_auroc"].value)
    assert not (output_dir / "models" / "linear-probe_fraction-1_seed-0_random-init").exists()

    # zero-shot class embeddings were cached on disk
    assert len(list((cache_dir / "merit_class_embeddings").glob("*.npy"))) == 1

    # the model card got a model-index (MERIT rows only) and the table with its note between the markers
    card = ModelCard.load(card_path)
    results = card.data.eval_results
    assert len(results) == 3 * 3  # 3 MERIT rows x 3 metrics
    assert {result.metric_type for result in results} == {"roc_auc", "f1", "fmax"}
    assert {result.dataset_config for result in results} == {"superdiagnostic"}
    assert card.data.model_name == "merit-tests/tiny"  # the model-index is named after the card's model_name
    between = card.text.split(RESULTS_START_MARKER)[1].split(RESULTS_END_MARKER)[0]
    assert "baseline: random-init" in between and f"only {N_TEST} records" in between
    assert "Not evaluated yet" not in card.text


@pytest.mark.slow
def test_finetune_end_to_end(checkpoint, cache_dir, tmp_path):
    extra = ["--label_fractions", "0.1", "--epochs", "2", "--patience", "1", "--batch_size", "32", "--no_save_models"]
    rows = eval_merit.main(cli(checkpoint, tmp_path / "eval", cache_dir, "finetune", extra=extra))
    assert [(row.task, row.fraction, row.baseline) for row in rows] == [
        ("finetune", 0.1, None), ("finetune", 0.1, "supervised-scratch")
    ]  # fmt: skip
    for row in rows:
        check_row(row, "finetune", row.baseline)
    assert not (tmp_path / "eval" / "models").exists()


@pytest.mark.slow
def test_robustness_uses_the_checkpoint_classifier_and_reports_skipped_shifts(
    cache_dir, tmp_path, processor, monkeypatch, capsys, splits
):
    classifier_dir = tmp_path / "classifier"
    config = MeritConfig.from_preset(
        "tiny", id2label=dict(enumerate(SUPERCLASSES)), label2id={n: i for i, n in enumerate(SUPERCLASSES)}
    )
    torch.manual_seed(1)
    MeritForECGClassification(config).save_pretrained(classifier_dir)
    processor.save_pretrained(classifier_dir)
    import merit_evaluation.robustness as robustness_module

    trained = []
    original = robustness_module.train_linear_probe

    def recording_train_linear_probe(*args, **kwargs):
        trained.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(robustness_module, "train_linear_probe", recording_train_linear_probe)
    extra = ["--shifts", "gaussian_noise", "powerline_interference", "--epochs", "2", "--patience", "1"]
    rows = eval_merit.main(cli(classifier_dir, tmp_path / "eval", cache_dir, "robustness", extra=extra))

    assert len(trained) == 1 and "random-init" in trained[0]["description"]  # MERIT's own head was not retrained
    classifier = MeritForECGClassification.from_pretrained(classifier_dir).eval()
    test_inputs = preprocess_split(splits["test"], processor.feature_extractor).with_format("torch")[:]
    with torch.no_grad():
        scores = torch.sigmoid(classifier(test_inputs["input_values"], test_inputs["lead_mask"]).logits).numpy()
    clean_auroc = macro_roc_auc(split_labels(splits["test"]), scores)
    assert rows[0].shift == "none" and rows[0].metrics["macro_auroc"].value == pytest.approx(clean_auroc)
    settings = [("none", None)] + [("gaussian_noise", snr) for snr in (24, 12, 6, 0)]
    assert [(row.shift, row.severity, row.baseline) for row in rows] == [
        (shift, severity, baseline) for baseline in (None, "random-init") for shift, severity in settings
    ]
    for row in rows:
        check_row(row, "robustness", row.baseline)
    printed = capsys.readouterr().out
    assert "powerline_interference (severities 0.05, 0.1, 0.2, 0.5) was skipped" in printed
    assert "Nyquist" in printed


def test_zero_shot_needs_a_text_tower(tmp_path, processor, cache_dir):
    classifier_dir = tmp_path / "classifier"
    MeritForECGClassification(MeritConfig.from_preset("tiny", num_labels=5)).save_pretrained(classifier_dir)
    processor.save_pretrained(classifier_dir)
    with pytest.raises(ValueError, match="--task zero-shot needs a checkpoint with a trained text tower"):
        eval_merit.main(cli(classifier_dir, tmp_path / "eval", cache_dir, "zero-shot"))


def test_prompts_file_must_match_the_classes(checkpoint, cache_dir, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"NORM": "normal ecg", "MI": ["myocardial infarction", "old infarct"]}))
    with pytest.raises(ValueError, match=r"missing classes \['CD', 'HYP', 'STTC'\]"):
        eval_merit.main(cli(checkpoint, tmp_path / "eval", cache_dir, "zero-shot", extra=["--prompts", str(prompts)]))


# ---------------------------------------------------------------------------------------------------------------
# Building blocks of the tasks
# ---------------------------------------------------------------------------------------------------------------


def test_harness_keeps_test_labels_to_test_row_and_checks_threshold_inputs(splits, processor):
    harness = EvaluationHarness(
        splits, processor.feature_extractor, dataset="ptbxl", label_set="superdiagnostic", model_name_or_path="m",
        model_revision=None, batch_size=64, device="cpu", n_bootstrap=0,
    )  # fmt: skip
    assert harness.class_names == SUPERCLASSES and harness.n_test == N_TEST
    with pytest.raises(ValueError, match="test_row"):
        harness.labels("test")
    with pytest.raises(ValueError, match="validation scores of shape"):
        harness.fit_thresholds(np.zeros((N_TEST, 5)))  # test-sized scores cannot be passed as validation scores


def test_load_classifier_keeps_the_encoder_and_replaces_a_head_of_other_classes(tmp_path):
    from merit_evaluation.harness import load_classifier

    torch.manual_seed(0)
    other = MeritForECGClassification(MeritConfig.from_preset("tiny", num_labels=2))
    other.save_pretrained(tmp_path)
    loaded = load_classifier(str(tmp_path), SUPERCLASSES, freeze_ecg_encoder=True)
    assert loaded.classifier.out_features == 5 and loaded.config.id2label[4] == "STTC"
    for name, value in other.ecg_model.state_dict().items():
        torch.testing.assert_close(loaded.ecg_model.state_dict()[name], value)
    assert not any(parameter.requires_grad for parameter in loaded.ecg_model.parameters())


def test_early_stopping_restores_the_best_epoch():
    model = torch.nn.Linear(1, 1, bias=False)
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])
    weights_after_epoch = []

    def validation_score():
        weights_after_epoch.append(model.weight.item())
        return next(scores)

    result = train_with_early_stopping(
        model, [torch.ones(1, 1)], compute_loss=lambda batch: model(batch).sum(), validation_score=validation_score,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=10, patience=2,
    )  # fmt: skip
    # epoch 2 is best; epochs 3 and 4 do not improve, so training stops before epoch 5's 0.9
    assert (result.best_epoch, result.best_score, result.epochs_run) == (2, 0.7, 4)
    assert model.weight.item() == pytest.approx(weights_after_epoch[1])
    assert not model.training


def test_training_options_reject_bad_values():
    with pytest.raises(ValueError, match="learning rates"):
        TrainingOptions(epochs=1, patience=1, learning_rates=[], weight_decays=[0.0], batch_size=1)
    with pytest.raises(ValueError, match="weight decays"):
        TrainingOptions(epochs=1, patience=1, learning_rates=[0.1], weight_decays=[-1.0], batch_size=1)
    grid = TrainingOptions(2, 1, [0.1, 0.01], [0.0, 1.0], 8).grid()
    assert grid == [(0.1, 0.0), (0.1, 1.0), (0.01, 0.0), (0.01, 1.0)]


def test_preprocessing_matches_the_processor_on_physical_signals(splits, processor):
    from dataset_scripts import physical_signal

    processed = preprocess_split(splits["test"].select(range(3)), processor.feature_extractor)
    row = splits["test"][1]
    expected = processor(ecg=[physical_signal(row)], sampling_rate=row["sampling_rate"], lead_names=row["lead_names"])
    processed = processed.with_format("numpy")[:]
    np.testing.assert_array_equal(processed["input_values"][1], expected["input_values"][0])
    assert processed["input_values"].shape == (3, 12, 1000) and processed["lead_mask"].shape == (3, 12)


def test_shift_transform_marks_removed_leads_missing(splits, processor):
    records = splits["test"].select(range(4))
    feature_extractor = processor.feature_extractor
    dropped = preprocess_split(records, feature_extractor, shift_transform(ShiftSetting("drop_random_leads", 3), 0))
    np.testing.assert_array_equal(dropped.with_format("numpy")[:]["lead_mask"].sum(axis=1), [9, 9, 9, 9])
    # header lead names are upper case (AVR, AVL, AVF): the limb subset must still be found by name
    limb = preprocess_split(records, feature_extractor, shift_transform(ShiftSetting("keep_lead_subset", "limb"), 0))
    np.testing.assert_array_equal(limb.with_format("numpy")[:]["lead_mask"][0], [1] * 6 + [0] * 6)
    # the seed depends on the record, not on the batch: the same record gives the same noise in any batch
    noisy = shift_transform(ShiftSetting("gaussian_noise", 6), seed=0)
    signal = np.ones((12, 1000), dtype=np.float32)
    first, _ = noisy(signal, 100.0, list("ABCDEFGHIJKL"), 7)
    again, _ = noisy(signal, 100.0, list("ABCDEFGHIJKL"), 7)
    other, _ = noisy(signal, 100.0, list("ABCDEFGHIJKL"), 8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_shift_settings_skip_what_cannot_apply():
    settings, skipped = shift_settings(["powerline_interference", "sampling_rate"], [100.0])
    assert settings == [ShiftSetting("sampling_rate", rate) for rate in (100, 250, 500)]
    assert list(skipped) == ["powerline_interference (severities 0.05, 0.1, 0.2, 0.5)"]
    settings, skipped = shift_settings(["powerline_interference"], [500.0])
    assert len(settings) == 4 and not skipped


def test_zero_shot_scores_and_class_embedding_cache(checkpoint, processor, tmp_path):
    from modeling_merit import MeritModel

    model = MeritModel.from_pretrained(checkpoint).eval()
    prompts = {"NORM": ["normal ecg", "sinus rhythm"], "MI": ["myocardial infarction"]}
    cache = ClassEmbeddingCache(tmp_path)
    embeddings = class_text_embeddings(model, processor, prompts, "cpu", cache)
    assert embeddings.shape == (2, model.config.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    with torch.no_grad():
        tokens = processor(text=["normal ecg", "sinus rhythm"], return_tensors="pt")
        prompt_embeddings = torch.nn.functional.normalize(model.get_text_features(**tokens), dim=-1)
    expected = torch.nn.functional.normalize(prompt_embeddings.mean(dim=0), dim=-1).numpy()
    np.testing.assert_allclose(embeddings[0], expected, rtol=1e-5, atol=1e-6)

    # a second computation (new cache object, same folder) reads the file and never calls the text tower
    def fail(*args, **kwargs):
        raise AssertionError("class embeddings were recomputed")

    model.get_text_features = fail
    cached = class_text_embeddings(model, processor, prompts, "cpu", ClassEmbeddingCache(tmp_path))
    np.testing.assert_array_equal(cached, embeddings)

    ecg = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    classes = np.array([[1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    expected_scores = [[1.0, 0.85355339], [0.5, 0.85355339], [0.0, 0.14644661]]  # (1 + cosine) / 2
    np.testing.assert_allclose(zero_shot_scores(ecg, classes), expected_scores)


def test_class_descriptions_of_every_dataset():
    ptbxl = class_descriptions("ptbxl", PTBXL_SAMPLE, "superdiagnostic", SUPERCLASSES)
    assert ptbxl["MI"] == "myocardial infarction" and list(ptbxl) == SUPERCLASSES
    cpsc = class_descriptions("cpsc2018", PTBXL_SAMPLE, "default", ["AF", "Normal", "PVC"])
    assert cpsc == {"AF": "atrial fibrillation", "Normal": "sinus rhythm", "PVC": "ventricular ectopics"}
    chapman = class_descriptions("chapman", PTBXL_SAMPLE, "default", ["LBBB", "PAC"])
    assert chapman["PAC"] == "premature atrial contraction or supraventricular premature beats"
    assert chapman["LBBB"] == "complete left bundle branch block or left bundle branch block"
    with pytest.raises(ValueError, match=r"classes \['XYZ'\]"):
        class_descriptions("chapman", PTBXL_SAMPLE, "default", ["XYZ"])


@pytest.mark.slow
def test_linear_probe_on_a_variable_length_challenge_corpus(tmp_path, checkpoint):
    """CPSC2018 layout: 500 Hz records of different lengths, labels from SNOMED-CT codes, prompts from its table."""
    from dataset_layouts import random_digital_signal, write_challenge_record

    rng = np.random.default_rng(0)
    codes = {"Normal": "426783006", "AF": "164889003", "RBBB": "59118001"}
    for index in range(60):
        name = list(codes)[index % 3]
        length = int(rng.integers(6, 13)) * 500
        signal = random_digital_signal(rng, 12, length)
        write_challenge_record(tmp_path / "cpsc", f"A{index:04d}", [codes[name]], signal)
    arguments = [
        "--model_name_or_path", str(checkpoint), "--task", "linear-probe", "zero-shot", "--dataset", "cpsc2018",
        "--data_dir", str(tmp_path / "cpsc"), "--output_dir", str(tmp_path / "eval"),
        "--cache_dir", str(tmp_path / "cache"), "--label_fractions", "1.0", "--epochs", "2", "--n_bootstrap", "10",
        "--no_baselines",
    ]  # fmt: skip
    rows = eval_merit.main(arguments)
    assert [(row.task, row.label_set) for row in rows] == [("linear-probe", "default"), ("zero-shot", "default")]
    cpsc_classes = ["AF", "I-AVB", "LBBB", "Normal", "PAC", "PVC", "RBBB", "STD", "STE"]  # the whole label table
    for row in rows:
        assert sorted(row.per_class_auroc) == cpsc_classes
        present = {name for name, value in row.per_class_auroc.items() if value is not None}
        assert present == {"AF", "Normal", "RBBB"}  # classes without test positives are left out, not zeroed
    assert rows[0].n_test == rows[1].n_test > 0


# ---------------------------------------------------------------------------------------------------------------
# Model card template
# ---------------------------------------------------------------------------------------------------------------


def test_model_card_template_placeholders_are_documented_and_filled(filled_card_text):
    template = MODEL_CARD_TEMPLATE_PATH.read_text(encoding="utf-8")
    assert template_placeholders(template) == set(MODEL_CARD_PLACEHOLDERS)
    for name in MODEL_CARD_PLACEHOLDERS:  # the notes block documents every placeholder
        assert f"{{{{{name}}}}}" in template.split("template-notes-end")[0]
    assert not template_placeholders(filled_card_text) and "template-notes" not in filled_card_text
    card = ModelCard(filled_card_text)
    assert card.data.license == "apache-2.0" and card.data.datasets == ["ptbxl-sample"]
    assert card.data.model_name == "merit-tests/tiny"
    assert "Resampled to 100 Hz" in card.text and "hidden size 64, 2 layers" in card.text
    assert RESULTS_START_MARKER in card.text and "PTB-XL attribution" in card.text
    with pytest.raises(ValueError, match=r"missing \['training_data'\]"):
        fill_model_card_template(template, {n: "x" for n in MODEL_CARD_PLACEHOLDERS if n != "training_data"})
    with pytest.raises(ValueError, match=r"unknown \['extra'\]"):
        fill_model_card_template(template, {**dict.fromkeys(MODEL_CARD_PLACEHOLDERS, "x"), "extra": "x"})


def test_describe_preprocessing_follows_the_processor_config():
    text = describe_preprocessing(MeritFeatureExtractor(sampling_rate=500, num_samples=5000, bandpass=[0.5, 40.0]))
    assert "Resampled to 500 Hz" in text and "band-pass 0.5-40 Hz" in text and "5000 samples" in text
    assert "No band-pass filter" in describe_preprocessing(MeritFeatureExtractor())
