"""The MERIT pipelines (`modeling_merit/pipeline_merit.py`) and the Inference Endpoints handler, on real PTB-XL records
of the excerpt with tiny random checkpoints: input forms, outputs against direct model calls and the evaluation code,
errors, what every checkpoint carries, and `trust_remote_code` loading in a fresh process."""

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from checkpoint_helpers import save_tiny_dual_checkpoint, save_tiny_superclass_classifier, tiny_report_generator

from merit_evaluation.prompts import class_prompts
from merit_evaluation.zero_shot import class_text_embeddings, project_ecg_features, zero_shot_scores
from modeling_merit import (
    ECGClassificationPipeline,
    ECGFeatureExtractionPipeline,
    ECGReportGenerationPipeline,
    MeritConfig,
    MeritECGModel,
    MeritForECGClassification,
    MeritForReportGeneration,
    MeritModel,
    ZeroShotECGClassificationPipeline,
)
from modeling_merit.handler import EndpointHandler, decode_inputs
from modeling_merit.pipeline_merit import ecg_record_arguments
from modeling_merit.zero_shot_merit import DEFAULT_TEMPLATES, build_class_prompts
from tests.infra.fake_hub import FakeHub


LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction"]
SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]
FRESH_PROCESS_SCRIPT = Path(__file__).with_name("pipelines_fresh_process.py")


@pytest.fixture(scope="module")
def record(ptbxl_sample_dir) -> str:
    """A real 500 Hz PTB-XL record (resampled to the processor's 100 Hz)."""
    return str(ptbxl_sample_dir / "records500" / "00000" / "00001_hr")


@pytest.fixture(scope="module")
def dual_checkpoint(tmp_path_factory, processor):
    return save_tiny_dual_checkpoint(tmp_path_factory.mktemp("dual"), processor, seed=0)


@pytest.fixture(scope="module")
def dual_model(dual_checkpoint):
    return MeritModel.from_pretrained(dual_checkpoint).eval()


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory, processor):
    """A classifier saved by the evaluation code, with validation thresholds (one class never positive)."""
    return save_tiny_superclass_classifier(tmp_path_factory.mktemp("classifier"), processor, seed=1)


@pytest.fixture(scope="module")
def report_checkpoint(tmp_path_factory, processor, tokenizer):
    """A tiny report generator: the tiny ECG encoder and a 2-layer Llama that reads the MiniLM vocabulary."""
    model = tiny_report_generator(tokenizer, seed=2)
    directory = tmp_path_factory.mktemp("report")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def zero_shot(dual_model, processor):
    return ZeroShotECGClassificationPipeline(model=dual_model, processor=processor, device=-1)


@pytest.fixture(scope="module")
def features(dual_model, processor):
    return ECGFeatureExtractionPipeline(model=dual_model, processor=processor, device=-1)


def scores_by_label(answer) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in answer}


# ---------------------------------------------------------------------------------------------------------------
# What checkpoints carry
# ---------------------------------------------------------------------------------------------------------------


def test_every_checkpoint_carries_its_pipelines_and_the_handler(
    dual_checkpoint, classifier_checkpoint, report_checkpoint, processor, tmp_path
):
    ecg_only = tmp_path / "ecg-only"
    MeritECGModel(MeritConfig.from_preset("tiny").ecg_config).save_pretrained(ecg_only)
    processor.feature_extractor.save_pretrained(ecg_only)
    expected = {
        dual_checkpoint: ({"zero-shot-ecg-classification", "ecg-feature-extraction"}, "AutoModel"),
        classifier_checkpoint: (
            {"ecg-classification", "ecg-feature-extraction"},
            "AutoModelForSequenceClassification",
        ),
        ecg_only: ({"ecg-feature-extraction"}, "AutoModel"),
        report_checkpoint: ({"ecg-report-generation", "ecg-feature-extraction"}, "AutoModel"),
    }
    for directory, (tasks, auto_class) in expected.items():
        config = json.loads((directory / "config.json").read_text())
        assert set(config["custom_pipelines"]) == tasks
        for info in config["custom_pipelines"].values():
            assert info["pt"] == [auto_class]
            module, class_name = info["impl"].split(".")
            assert module == "pipeline_merit" and class_name in {
                cls.__name__
                for cls in (
                    ZeroShotECGClassificationPipeline,
                    ECGClassificationPipeline,
                    ECGFeatureExtractionPipeline,
                    ECGReportGenerationPipeline,
                )
            }
        assert auto_class in config["auto_map"]
        files = {path.name for path in directory.iterdir()}
        assert {"pipeline_merit.py", "zero_shot_merit.py", "handler.py", "modeling_merit.py",
                "configuration_merit.py", "feature_extraction_merit.py"} <= files  # fmt: skip
    report_files = {path.name for path in report_checkpoint.iterdir()}
    assert {"modeling_merit_report.py", "configuration_merit_report.py"} <= report_files
    classifier_config = json.loads((classifier_checkpoint / "config.json").read_text())
    assert classifier_config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_merit.MeritForECGClassification"
    )
    assert classifier_config["decision_thresholds"] == {"CD": 0.2, "HYP": 0.5, "MI": None, "NORM": 0.9, "STTC": 0.45}


# ---------------------------------------------------------------------------------------------------------------
# Zero-shot classification
# ---------------------------------------------------------------------------------------------------------------


def test_zero_shot_matches_the_evaluation_code(zero_shot, dual_model, processor, record):
    answer = zero_shot(record, candidate_labels=LABELS)
    assert [entry["label"] for entry in answer] == sorted(LABELS, key=lambda label: -scores_by_label(answer)[label])
    assert all(0.0 <= entry["score"] <= 1.0 for entry in answer)

    # eval_merit.py --task zero-shot: pooled features -> projection -> scores against averaged template embeddings
    inputs = processor(ecg=record, return_tensors="pt")
    with torch.no_grad():
        pooled = dual_model.ecg_model(inputs["input_values"], lead_mask=inputs["lead_mask"]).pooler_output.numpy()
    prompts = build_class_prompts({label: label for label in LABELS})
    expected = zero_shot_scores(project_ecg_features(dual_model, pooled), class_text_embeddings(
        dual_model, processor, prompts, "cpu"))[0]  # fmt: skip
    got = scores_by_label(answer)
    np.testing.assert_allclose([got[label] for label in LABELS], expected, rtol=1e-6, atol=1e-7)
    assert len(prompts[LABELS[0]]) == len(DEFAULT_TEMPLATES)


def test_zero_shot_with_the_evaluation_prompts_of_a_benchmark(
    zero_shot, dual_model, processor, record, ptbxl_sample_dir
):
    """Given the prompts eval_merit.py uses for PTB-XL superclasses (its default prompt style), the pipeline scores a record
    exactly as the evaluation does."""
    prompts = class_prompts("ptbxl", ptbxl_sample_dir, "superdiagnostic", SUPERCLASSES)
    answer = scores_by_label(zero_shot(record, candidate_labels=prompts))
    inputs = processor(ecg=record, return_tensors="pt")
    with torch.no_grad():
        pooled = dual_model.ecg_model(inputs["input_values"], lead_mask=inputs["lead_mask"]).pooler_output.numpy()
    expected = zero_shot_scores(project_ecg_features(dual_model, pooled), class_text_embeddings(
        dual_model, processor, prompts, "cpu"))[0]  # fmt: skip
    np.testing.assert_allclose([answer[name] for name in SUPERCLASSES], expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="prompts of label 'NORM'"):
        zero_shot(record, candidate_labels={"NORM": []})


def test_zero_shot_hypothesis_template(zero_shot, record):
    default = scores_by_label(zero_shot(record, candidate_labels=LABELS))
    single = scores_by_label(zero_shot(record, candidate_labels=LABELS, hypothesis_template="ECG showing {}."))
    same_as_single = scores_by_label(
        zero_shot(record, candidate_labels=LABELS, hypothesis_template=["ECG showing {description}."])
    )
    assert single == same_as_single
    assert single != default  # one template instead of the average of five
    assert scores_by_label(zero_shot(record, candidate_labels=", ".join(LABELS))) == default  # comma-separated


def test_input_forms_give_the_same_answer(zero_shot, record, tmp_path):
    reference = scores_by_label(zero_shot(record, candidate_labels=LABELS))
    signal, fields = wfdb.rdsamp(record)  # (5000, 12) in mV
    rate, names = fields["fs"], fields["sig_name"]

    np.save(tmp_path / "ecg.npy", signal.T)
    np.save(tmp_path / "ecg_time_first.npy", signal)
    header = ",".join(["time", *names])
    rows = np.column_stack([np.arange(len(signal)) / rate, signal])
    np.savetxt(tmp_path / "ecg_time.csv", rows, delimiter=",", header=header, comments="", fmt="%.17g")
    np.savetxt(tmp_path / "ecg.csv", signal, delimiter=";", header=";".join(names), comments="", fmt="%.17g")
    uploads = tmp_path / "uploads"  # an upload keeps neither folder nor names: the header decides the .dat name
    uploads.mkdir()
    shutil.copy(record + ".hea", uploads / "upload_1.hea")
    shutil.copy(record + ".dat", uploads / "upload_2.dat")

    forms = {
        "record name": (record, {}),
        ".hea path": (record + ".hea", {}),
        ".dat path": (record + ".dat", {}),
        "uploaded bytes": ({"hea": Path(record + ".hea").read_bytes(), "dat": Path(record + ".dat").read_bytes()}, {}),
        "uploaded paths": ({"hea": str(uploads / "upload_1.hea"), "dat": uploads / "upload_2.dat"}, {}),
        ".npy": (str(tmp_path / "ecg.npy"), {"sampling_rate": rate, "lead_names": names}),
        ".npy channels last": (str(tmp_path / "ecg_time_first.npy"),
                               {"sampling_rate": rate, "lead_names": names, "channels_last": True}),
        ".csv with time column": (str(tmp_path / "ecg_time.csv"), {}),
        ".csv with ;": (str(tmp_path / "ecg.csv"), {"sampling_rate": rate}),
        "dict": ({"ecg": signal.T, "sampling_rate": rate, "lead_names": names}, {}),
        "dict of nested lists": ({"ecg": signal.T.tolist(), "sampling_rate": rate, "lead_names": names}, {}),
        "tensor": (torch.from_numpy(signal.T.copy()), {"sampling_rate": rate, "lead_names": names}),
    }  # fmt: skip
    for form, (ecg, arguments) in forms.items():
        got = scores_by_label(zero_shot(ecg, candidate_labels=LABELS, **arguments))
        assert got.keys() == reference.keys(), form
        np.testing.assert_allclose(
            [got[label] for label in LABELS], [reference[label] for label in LABELS], rtol=1e-6, err_msg=form
        )


def test_a_batch_answers_each_record(zero_shot, ptbxl_sample_dir):
    records = [str(ptbxl_sample_dir / "records100" / "00000" / f"0000{index}_lr") for index in (1, 2, 3)]
    batch = zero_shot(records, candidate_labels=LABELS)
    assert isinstance(batch, list) and len(batch) == 3
    for record, answer in zip(records, batch, strict=True):
        assert answer == zero_shot(record, candidate_labels=LABELS)
    assert batch[0] != batch[1]


@pytest.mark.parametrize(
    "ecg, arguments, message",
    [
        ("no/such/record", {}, "Could not read the WFDB record"),
        ("scan.png", {}, "Cannot read 'scan.png' as an ECG"),
        ("missing.npy", {}, "does not exist"),
        (np.zeros((2, 12, 1000)), {}, "2 dimensions"),
        (np.zeros((12, 1000)), {}, "`sampling_rate` is required"),
        (np.zeros((3, 1000)), {"sampling_rate": 100}, "`lead_names` is required"),
        ({"ecg": np.zeros((12, 1000)), "rate": 100}, {}, "Unknown key(s) ['rate']"),
        ({"ecg": [[1.0, 2.0], [3.0]]}, {}, "rectangular"),
        ({"signal": np.zeros((12, 1000))}, {}, "'ecg'"),
        ({"hea": b"not a header", "dat": b""}, {}, "not a WFDB header"),
        (42, {}, "Cannot read a int as an ECG"),
        ([], {}, "empty list"),
    ],
)
def test_bad_input_raises_a_value_error_that_says_what_was_wrong(zero_shot, ecg, arguments, message):
    with pytest.raises(ValueError) as error:
        zero_shot(ecg, candidate_labels=LABELS, **arguments)
    assert message in str(error.value)


def test_bad_csv_and_bad_parameters(zero_shot, record, tmp_path):
    (tmp_path / "no_header.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="header row of lead names"):
        zero_shot(str(tmp_path / "no_header.csv"), candidate_labels=LABELS, sampling_rate=100)
    (tmp_path / "typo.csv").write_text("I,II,VV1\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="Unknown lead name 'VV1'"):
        zero_shot(str(tmp_path / "typo.csv"), candidate_labels=LABELS, sampling_rate=100)

    # a time column and a sampling rate that disagree; text in a cell; decimal commas
    time = np.arange(1000) / 500
    rows = "\n".join(f"{t:.4f},{np.sin(t):.4f},{np.cos(t):.4f}" for t in time)
    (tmp_path / "timed.csv").write_text("time,I,II\n" + rows + "\n")
    with pytest.raises(ValueError, match="time column 'time' that gives 500 Hz, but `sampling_rate` says 100 Hz"):
        zero_shot(str(tmp_path / "timed.csv"), candidate_labels=LABELS, sampling_rate=100)
    assert zero_shot(str(tmp_path / "timed.csv"), candidate_labels=LABELS, sampling_rate=500) == zero_shot(
        str(tmp_path / "timed.csv"), candidate_labels=LABELS
    )
    signal = "\n".join(f"{np.sin(t):.4f},{np.cos(t):.4f}" for t in time).split("\n")
    missing = signal[:5] + ["n/a,0.5", ",0.5", "NaN,0.5"] + signal[8:]
    (tmp_path / "missing.csv").write_text("I,II\n" + "\n".join(missing) + "\n")
    assert len(zero_shot(str(tmp_path / "missing.csv"), candidate_labels=LABELS, sampling_rate=500)) == len(LABELS)
    (tmp_path / "text.csv").write_text("I,II\n" + "\n".join(signal[:5] + ["0.1,abc"] + signal[6:]) + "\n")
    with pytest.raises(ValueError, match=r"a cell that is not a number, 'abc', in column 'II'"):
        zero_shot(str(tmp_path / "text.csv"), candidate_labels=LABELS, sampling_rate=500)
    # times rounded to milliseconds at 360 Hz still give 360 Hz; times in milliseconds are named as such
    signal_360 = "\n".join(f"{t:.3f},{np.sin(t):.4f},{np.cos(t):.4f}" for t in np.arange(3600) / 360)
    (tmp_path / "ms_rounded.csv").write_text("time,I,II\n" + signal_360 + "\n")
    assert ecg_record_arguments(str(tmp_path / "ms_rounded.csv"))["sampling_rate"] == 360.0
    assert ecg_record_arguments(str(tmp_path / "ms_rounded.csv"), sampling_rate=360)["sampling_rate"] == 360
    (tmp_path / "in_ms.csv").write_text("time,I,II\n" + "\n".join(f"{1000 * t:g},0.1,0.2" for t in time) + "\n")
    with pytest.raises(ValueError, match="it looks like milliseconds; it must be in seconds"):
        ecg_record_arguments(str(tmp_path / "in_ms.csv"), sampling_rate=500)
    # quoted numbers (as spreadsheets may write them) are numbers
    (tmp_path / "quoted.csv").write_text(
        '"I","II"\n' + "\n".join(",".join(f'"{cell}"' for cell in row.split(",")) for row in signal) + "\n"
    )
    (tmp_path / "plain.csv").write_text("I,II\n" + "\n".join(signal) + "\n")
    quoted = ecg_record_arguments(str(tmp_path / "quoted.csv"), sampling_rate=500)
    np.testing.assert_array_equal(
        quoted["ecg"], ecg_record_arguments(str(tmp_path / "plain.csv"), sampling_rate=500)["ecg"]
    )
    assert quoted["lead_names"] == ["I", "II"]
    (tmp_path / "comma.csv").write_text(
        "I;II\n" + "\n".join(row.replace(",", ";").replace(".", ",") for row in signal)
    )
    with pytest.raises(ValueError, match="looks like a decimal comma"):
        zero_shot(str(tmp_path / "comma.csv"), candidate_labels=LABELS, sampling_rate=500)

    with pytest.raises(ValueError, match="needs `candidate_labels`"):
        zero_shot(record)
    with pytest.raises(ValueError, match="duplicates"):
        zero_shot(record, candidate_labels=["a", "a"])
    with pytest.raises(ValueError, match="exactly one `{description}`"):
        zero_shot(record, candidate_labels=LABELS, hypothesis_template="no field")
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['top_k'\]"):
        zero_shot(record, candidate_labels=LABELS, top_k=1)
    with pytest.raises(ValueError, match="batch_size=1"):
        zero_shot([record, record], candidate_labels=LABELS, batch_size=2)


# ---------------------------------------------------------------------------------------------------------------
# Classification, feature extraction, report generation
# ---------------------------------------------------------------------------------------------------------------


def test_classification_uses_the_validation_thresholds(classifier_checkpoint, processor, record):
    model = MeritForECGClassification.from_pretrained(classifier_checkpoint).eval()
    classifier = ECGClassificationPipeline(model=model, processor=processor, device=-1)
    answer = classifier(record)
    inputs = processor(ecg=record, return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits)[0].tolist()
    by_label = {entry["label"]: entry for entry in answer}
    assert [entry["score"] for entry in answer] == sorted(expected, reverse=True)
    thresholds = {"CD": 0.2, "HYP": 0.5, "MI": None, "NORM": 0.9, "STTC": 0.45}
    for label, score in zip(SUPERCLASSES, expected, strict=True):
        entry = by_label[label]
        assert entry["score"] == pytest.approx(score)
        assert entry["threshold"] == thresholds[label]
        assert entry["positive"] == (thresholds[label] is not None and score >= thresholds[label])

    assert len(classifier(record, top_k=2)) == 2
    assert classifier(record, top_k=2) == answer[:2]
    everything = classifier(record, threshold=0.0)
    assert all(entry["positive"] and entry["threshold"] == 0.0 for entry in everything)
    with pytest.raises(ValueError, match="`top_k` must be a positive integer"):
        classifier(record, top_k=0)
    with pytest.raises(ValueError, match="needs a MeritForECGClassification"):
        ECGClassificationPipeline(model=MeritModel(MeritConfig.from_preset("tiny")), processor=processor, device=-1)


def test_single_label_classification_and_classifier_features(processor, record, tmp_path):
    config = MeritConfig.from_preset(
        "tiny", problem_type="single_label_classification", id2label={0: "sinus", 1: "other"},
        label2id={"sinus": 0, "other": 1},
    )  # fmt: skip
    torch.manual_seed(3)
    model = MeritForECGClassification(config).eval()
    answer = ECGClassificationPipeline(model=model, processor=processor, device=-1)(record)
    assert sum(entry["score"] for entry in answer) == pytest.approx(1.0)
    assert [entry["positive"] for entry in answer] == [True, False]
    assert all(entry["threshold"] is None for entry in answer)

    inputs = processor(ecg=record, return_tensors="pt")
    with torch.no_grad():
        pooled = model.ecg_model(inputs["input_values"], lead_mask=inputs["lead_mask"]).pooler_output[0]
    embedding = ECGFeatureExtractionPipeline(model=model, processor=processor, device=-1)(record)
    np.testing.assert_allclose(embedding, pooled.numpy(), rtol=1e-5, atol=1e-6)

    model.save_pretrained(tmp_path / "not-main", is_main_process=False)  # e.g. rank 1 of a distributed run
    assert not (tmp_path / "not-main").exists() or not any((tmp_path / "not-main").iterdir())


def test_feature_extraction(features, dual_model, processor, record):
    inputs = processor(ecg=record, return_tensors="pt")
    with torch.no_grad():
        projected = dual_model.get_ecg_features(inputs["input_values"], inputs["lead_mask"])[0]
        pooled = dual_model.ecg_model(inputs["input_values"], lead_mask=inputs["lead_mask"]).pooler_output[0]
    default = features(record)
    assert isinstance(default, list) and len(default) == dual_model.config.projection_dim
    np.testing.assert_allclose(default, projected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features(record, embedding="pooled"), pooled.numpy(), rtol=1e-5, atol=1e-6)
    as_tensor = features(record, return_tensors=True)
    assert torch.is_tensor(as_tensor) and as_tensor.shape == (dual_model.config.projection_dim,)
    normalised = features(record, normalize=True, return_tensors=True)
    assert normalised.norm().item() == pytest.approx(1.0, abs=1e-5)

    ecg_only = ECGFeatureExtractionPipeline(
        model=dual_model.ecg_model, feature_extractor=processor.feature_extractor, device=-1
    )
    np.testing.assert_allclose(ecg_only(record), pooled.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="has only the pooled embedding"):
        ecg_only(record, embedding="projected")


class TinyReportModel(torch.nn.Module):
    """A stand-in with the report-generation interface: 'generates' token ids chosen by the ECG."""

    def __init__(self, vocabulary_ids: list[int]):
        super().__init__()
        self.ecg_model = MeritECGModel(MeritConfig.from_preset("tiny").ecg_config).eval()
        self.vocabulary_ids = torch.tensor(vocabulary_ids)
        self.calls = []

    @property
    def device(self):
        return torch.device("cpu")

    def generate(self, input_values, lead_mask=None, prompt=None, max_new_tokens=20, **generate_kwargs):
        self.calls.append(
            {"shape": tuple(input_values.shape), "prompt": prompt, "max_new_tokens": max_new_tokens, **generate_kwargs}
        )
        pooled = self.ecg_model(input_values, lead_mask=lead_mask).pooler_output
        choice = pooled[:, : len(self.vocabulary_ids)].argmax(dim=-1)
        return self.vocabulary_ids[choice][:, None].repeat(1, min(max_new_tokens, 3))


def test_report_generation(report_checkpoint, processor, record):
    model = MeritForReportGeneration.from_pretrained(report_checkpoint).eval()
    generator = ECGReportGenerationPipeline(model=model, processor=processor, device=-1)
    inputs = processor(ecg=record, return_tensors="pt")
    expected = model.generate(inputs["input_values"], inputs["lead_mask"], max_new_tokens=6)
    answer = generator(record, max_new_tokens=6)
    # transformers' image-to-text convention: a list of {"generated_text"} per record
    assert answer == [{"generated_text": processor.batch_decode(expected, skip_special_tokens=True)[0].strip()}]
    assert generator([record, record], max_new_tokens=6) == [answer, answer]
    prompted = model.generate(
        inputs["input_values"], inputs["lead_mask"], prompt="Describe it.", tokenizer=processor.tokenizer,
        max_new_tokens=6,
    )  # fmt: skip
    assert generator(record, prompt="Describe it.", max_new_tokens=6)[0]["generated_text"] == (
        processor.batch_decode(prompted, skip_special_tokens=True)[0].strip()
    )
    # beam search with several returned sequences: the model's own beams, best first
    beams = model.generate(
        inputs["input_values"], inputs["lead_mask"], max_new_tokens=5, num_beams=3, num_return_sequences=3
    )
    answer = generator(record, max_new_tokens=5, num_beams=3, num_return_sequences=3)
    assert answer == [
        {"generated_text": text.strip()} for text in processor.batch_decode(beams, skip_special_tokens=True)
    ]
    assert (
        generator(record, generate_kwargs={"max_new_tokens": 5, "num_beams": 3, "num_return_sequences": 3}) == answer
    )
    sampled = generator(record, max_new_tokens=4, num_return_sequences=2, generate_kwargs={"do_sample": True})
    assert len(sampled) == 2 and all(set(entry) == {"generated_text"} for entry in sampled)
    with pytest.raises(ValueError, match="`max_new_tokens` must be a positive integer"):
        generator(record, max_new_tokens=0)
    with pytest.raises(ValueError, match="`num_return_sequences` must be a positive integer"):
        generator(record, num_return_sequences=True)
    with pytest.raises(ValueError, match="given both as an argument and in `generate_kwargs`"):
        generator(record, num_beams=2, generate_kwargs={"num_beams": 2})
    with pytest.raises(ValueError, match="`generate_kwargs` must be a dict"):
        generator(record, generate_kwargs=[("num_beams", 2)])


def test_report_generation_returns_the_findings_it_was_conditioned_on(report_checkpoint, processor, record):
    model = MeritForReportGeneration.from_pretrained(report_checkpoint).eval()
    labels, phrases = ["SR", "AFIB", "MI"], ["sinus rhythm", "atrial fibrillation", "myocardial infarction"]
    model.set_findings(labels, phrases, [0.5, 0.5, 0.5], processor.tokenizer)
    inputs = processor(ecg=record, return_tensors="pt")
    _, _, pooled = model.encode_ecg(inputs["input_values"], inputs["lead_mask"], return_pooled=True)
    head = model.findings_head
    with torch.no_grad():  # standardisation fitted on pretend records; statement c scores sigmoid(+-3)
        head.standardizer.mean.copy_(pooled[0])
        head.standardizer.num_fitted_samples.fill_(2)
        head.classifier.weight.zero_()
        head.classifier.bias.copy_(torch.tensor([3.0, -3.0, 3.0]))
    generator = ECGReportGenerationPipeline(model=model, processor=processor, device=-1)
    answer = generator(record, max_new_tokens=6)
    expected = model.generate(inputs["input_values"], inputs["lead_mask"], max_new_tokens=6)
    assert answer[0]["generated_text"] == processor.batch_decode(expected, skip_special_tokens=True)[0].strip()
    score = torch.sigmoid(torch.tensor(3.0)).item()
    assert answer[0]["findings"] == [
        {"label": "SR", "phrase": "sinus rhythm", "score": pytest.approx(score)},
        {"label": "MI", "phrase": "myocardial infarction", "score": pytest.approx(score)},
    ]
    assert generator([record, record], max_new_tokens=6) == [answer, answer]


def test_report_generation_with_any_model_exposing_generate(processor, record, tokenizer):
    words = ["heart", "rhythm", "normal", "abnormal"]  # single WordPiece tokens ("sinus" is not: it would be [UNK])
    ids = tokenizer.convert_tokens_to_ids(words)
    assert tokenizer.unk_token_id not in ids
    model = TinyReportModel(ids)
    generator = ECGReportGenerationPipeline(model=model, processor=processor, device=-1)
    answer = generator(record, prompt="Describe the ECG.", max_new_tokens=5)
    assert model.calls[-1] == {"shape": (1, 12, 1000), "prompt": "Describe the ECG.", "max_new_tokens": 5}
    generator(record, generate_kwargs={"repetition_penalty": 1.3})
    assert model.calls[-1]["repetition_penalty"] == 1.3 and model.calls[-1]["max_new_tokens"] == 64
    assert len(answer) == 1
    generated = answer[0]["generated_text"].split()
    assert len(generated) == 3 and len(set(generated)) == 1 and generated[0] in words
    with pytest.raises(ValueError, match="needs a model with `generate`"):
        ECGReportGenerationPipeline(model=model.ecg_model, processor=processor, device=-1)


# ---------------------------------------------------------------------------------------------------------------
# Inference Endpoints handler
# ---------------------------------------------------------------------------------------------------------------


def test_handler_json_round_trip(dual_checkpoint, zero_shot, features, record):
    handler = EndpointHandler(str(dual_checkpoint))
    signal, fields = wfdb.rdsamp(record)
    body = json.dumps({
        "inputs": signal.T.tolist(),
        "parameters": {"sampling_rate": fields["fs"], "lead_names": fields["sig_name"], "candidate_labels": LABELS},
    })  # fmt: skip
    answer = json.loads(json.dumps(handler(json.loads(body))))
    expected = zero_shot(record, candidate_labels=LABELS)
    assert [entry["label"] for entry in answer] == [entry["label"] for entry in expected]
    np.testing.assert_allclose([e["score"] for e in answer], [e["score"] for e in expected], rtol=1e-6)

    files = {suffix: base64.b64encode(Path(f"{record}.{suffix}").read_bytes()).decode() for suffix in ("hea", "dat")}
    batch = handler(json.loads(json.dumps({"inputs": [files, files], "parameters": {"candidate_labels": LABELS}})))
    assert len(batch) == 2 and batch[0] == batch[1]
    np.testing.assert_allclose([e["score"] for e in batch[0]], [e["score"] for e in expected], rtol=1e-6)

    embedding = handler({"inputs": signal.T.tolist(), "parameters": {"sampling_rate": fields["fs"],
                                                                     "lead_names": fields["sig_name"]}})  # fmt: skip
    np.testing.assert_allclose(embedding, features(record), rtol=1e-5, atol=1e-6)


def test_handler_default_task_follows_the_checkpoint(classifier_checkpoint, report_checkpoint, record):
    signal, fields = wfdb.rdsamp(record)
    parameters = {"sampling_rate": fields["fs"], "lead_names": fields["sig_name"]}
    body = {"inputs": signal.T.tolist(), "parameters": parameters}
    classification = EndpointHandler(str(classifier_checkpoint))(json.loads(json.dumps(body)))
    assert sorted(entry["label"] for entry in classification) == SUPERCLASSES and "positive" in classification[0]
    report = EndpointHandler(str(report_checkpoint))(
        json.loads(json.dumps({**body, "parameters": {**body["parameters"], "max_new_tokens": 4}}))
    )
    assert len(report) == 1 and set(report[0]) == {"generated_text"} and report[0]["generated_text"]
    two = EndpointHandler(str(report_checkpoint))(
        {**body, "parameters": {**parameters, "max_new_tokens": 3, "num_beams": 2, "num_return_sequences": 2}}
    )
    assert len(two) == 2 and all(entry["generated_text"] for entry in two)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"ecg": [[0.0]]}, '"inputs"'),
        ({"inputs": "hello"}, "nested list leads x samples"),
        ({"inputs": {"hea": "###", "dat": ""}}, "not valid base64"),
        ({"inputs": [[0.0] * 1000] * 12, "parameters": {"task": "ecg-classification"}}, "this checkpoint's tasks"),
        ({"inputs": [[0.0] * 1000] * 12, "parameters": {"candidate_labels": ["a"], "top_k": 1}}, "Unknown parameter"),
    ],
)
def test_handler_rejects_bad_requests(dual_checkpoint, body, message):
    handler = EndpointHandler(str(dual_checkpoint))
    with pytest.raises(ValueError) as error:
        handler(body)
    assert message in str(error.value)


def test_decode_inputs_forms():
    # nested lists go to the pipeline as they are: it checks their size against its limits before converting them
    assert decode_inputs([[1, 2], [3, 4]]) == {"ecg": [[1, 2], [3, 4]]}
    assert decode_inputs([[[1, 2]], [[3, 4]]]) == [{"ecg": [[1, 2]]}, {"ecg": [[3, 4]]}]
    assert decode_inputs({"hea": base64.b64encode(b"x").decode(), "dat": ""}) == {"hea": b"x", "dat": b""}


# ---------------------------------------------------------------------------------------------------------------
# trust_remote_code in a fresh process
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pipelines_and_handler_in_a_fresh_process_match_in_process_calls(
    dual_checkpoint, classifier_checkpoint, report_checkpoint, zero_shot, features, processor, record, tmp_path
):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    output = tmp_path / "answers.json"
    result = subprocess.run(
        [sys.executable, str(FRESH_PROCESS_SCRIPT), str(dual_checkpoint), str(classifier_checkpoint),
         str(report_checkpoint), record, json.dumps(LABELS), str(output)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=480,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    remote = json.loads(output.read_text())
    assert remote["zero_shot_module"].startswith("transformers_modules.")
    assert remote["classifier_module"].startswith("transformers_modules.")

    expected = zero_shot(record, candidate_labels=LABELS)
    assert {"handler.py", "pipeline_merit.py", "processor_config.json", "requirements.txt"} <= set(
        remote["resaved_files"]
    )
    for key in ("zero_shot", "zero_shot_resaved", "handler_wfdb", "handler_nested_list"):
        assert [entry["label"] for entry in remote[key]] == [entry["label"] for entry in expected], key
        np.testing.assert_allclose(
            [e["score"] for e in remote[key]], [e["score"] for e in expected], rtol=1e-6, err_msg=key
        )
    assert remote["zero_shot_batch"] == [remote["zero_shot"]] * 2
    np.testing.assert_allclose(remote["features_projected"], features(record), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote["features_pooled"], features(record, embedding="pooled"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(remote["handler_features"], features(record), rtol=1e-5, atol=1e-6)

    model = MeritForECGClassification.from_pretrained(classifier_checkpoint).eval()
    local = ECGClassificationPipeline(model=model, processor=processor, device=-1)(record)
    assert [(e["label"], e["threshold"], e["positive"]) for e in remote["classification"]] == [
        (e["label"], e["threshold"], e["positive"]) for e in local
    ]
    np.testing.assert_allclose([e["score"] for e in remote["classification"]], [e["score"] for e in local], rtol=1e-6)

    report_model = MeritForReportGeneration.from_pretrained(report_checkpoint).eval()
    assert remote["report"] == ECGReportGenerationPipeline(model=report_model, processor=processor, device=-1)(
        record, max_new_tokens=6
    )


FROM_HUB = """
    import json, sys
    sys.modules["modeling_merit"] = None  # the local package must not be what gets loaded
    from huggingface_hub import HfApi
    from transformers import pipeline

    checkpoint, record, labels = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    api = HfApi()
    api.create_repo("user/merit-pipelines")
    api.upload_folder(repo_id="user/merit-pipelines", folder_path=checkpoint)
    classifier = pipeline("zero-shot-ecg-classification", model="user/merit-pipelines", trust_remote_code=True,
                          device=-1)
    print(json.dumps(classifier(record, candidate_labels=labels)))
"""


@pytest.mark.slow
def test_zero_shot_pipeline_from_a_hub_repository(dual_checkpoint, zero_shot, record, tmp_path):
    with FakeHub(tmp_path / "hub") as hub:
        env = hub.client_env(tmp_path / "hf_home", token=hub.token)
        env.pop("PYTHONPATH", None)
        env["OMP_NUM_THREADS"] = "1"
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(FROM_HUB), str(dual_checkpoint), record, json.dumps(LABELS)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert "handler.py" in hub.repo_files("user/merit-pipelines")
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    expected = zero_shot(record, candidate_labels=LABELS)
    assert [entry["label"] for entry in remote] == [entry["label"] for entry in expected]
    np.testing.assert_allclose([e["score"] for e in remote], [e["score"] for e in expected], rtol=1e-6)


def test_readme_pipeline_snippet_runs(dual_checkpoint, repo_root, monkeypatch):
    readme = (repo_root / "README.md").read_text()
    section = readme.split("### Pipelines and the Inference Endpoints handler", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    signal, fields = wfdb.rdsamp(str(repo_root / "data/ptbxl-sample/records500/00000/00001_hr"))
    namespace = {"checkpoint": str(dual_checkpoint), "array_leads_x_time": signal.T, "lead_names": fields["sig_name"]}
    monkeypatch.chdir(repo_root)
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert len(namespace["classifier"].model.config.custom_pipelines) == 2
