"""The dataset registry (`dataset_scripts.registry`): every per-dataset fact lives in one `DatasetSpec`, so a dataset
registered with a spec (here a fake one, built in memory) flows through training's and evaluation's argument checks
and data loading with no other change, and no module outside the registry switches on a dataset's name."""

import ast
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pytest
from train_helpers import REPO_ROOT, tiny_train_args

import train_merit
from dataset_scripts.common import ecg_features, multi_hot
from dataset_scripts.registry import DATASETS, DatasetSpec, class_descriptions, display_name, load_dataset_splits
from merit_evaluation import cli
from merit_evaluation.data import load_evaluation_dataset
from merit_evaluation.prompts import DEFAULT_PROMPT_STYLE, class_prompts
from merit_evaluation.report_generation import load_report_dataset
from merit_training.arguments import evaluates_after_training, resolved_data_dir, validate_arguments
from merit_training.data import load_pretraining_splits, zero_shot_validation_split


FAKE = "fake_ecg"
CLASSES = ["AFIB", "NORM"]
DESCRIPTIONS = {"AFIB": "atrial fibrillation", "NORM": "normal ECG"}
REPORTS = {"AFIB": "atrial fibrillation with rapid ventricular response", "NORM": "sinus rhythm, normal ECG"}
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
SPLIT_SIZES = {"train": 32, "validation": 8, "test": 8}


def fake_splits(config: str) -> datasets.DatasetDict:
    """48 random 10 s, 100 Hz records alternating between the two classes; `rhythm` is labelled, `pairs` is not."""
    labelled = config == "rhythm"
    features = ecg_features(n_samples=1000, class_names=CLASSES if labelled else None, id_dtype="int32")
    rng = np.random.default_rng(0)
    splits, ecg_id = {}, 0
    for split, size in SPLIT_SIZES.items():
        rows = []
        for index in range(size):
            name = CLASSES[index % 2]
            row = {
                "ecg_id": ecg_id, "patient_id": ecg_id, "record_path": f"records/{ecg_id:05d}",
                "signal": rng.integers(-500, 500, (12, 1000), dtype=np.int16), "adc_gain": [1000.0] * 12,
                "baseline": [0] * 12, "lead_names": LEADS, "sampling_rate": 100, "report": REPORTS[name],
                "age": 60.0, "sex": "female",
            }  # fmt: skip
            if labelled:
                row.update(labels=[name], multi_hot=multi_hot([name], CLASSES))
            rows.append(row)
            ecg_id += 1
        splits[split] = datasets.Dataset.from_list(rows, features=features)
    return datasets.DatasetDict(splits)


@pytest.fixture
def loader_calls(monkeypatch):
    """Registers the fake dataset (one `DatasetSpec`, nothing else) and records what its loader is asked for."""
    calls = []

    def loader(data_dir, config, sampling_rate, cache_dir, num_proc):
        calls.append((config, sampling_rate))
        return fake_splits(config)

    spec = DatasetSpec(
        name=FAKE,
        display_name="Fake ECG",
        loader=loader,
        label_sets=("rhythm",),
        default_label_set="rhythm",
        report_config="pairs",
        class_descriptions=lambda data_dir, label_set: dict(DESCRIPTIONS),
        report_language_descriptions={"rhythm": {"AFIB": "vorhofflimmern"}},
        report_language_templates=("{description}",),
        report_style_prompts={"rhythm": {"AFIB": ("atrial fibrillation. otherwise normal ecg.",)}},
    )
    monkeypatch.setitem(DATASETS, FAKE, spec)
    return calls


def test_every_registered_spec_names_itself_and_loads_only_its_configs(tmp_path):
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.display_name
        assert spec.configs and (spec.default_label_set in spec.label_sets if spec.is_labelled else True)
    assert display_name("ptbxl") == "PTB-XL" and display_name("org/ecg-reports") == "org/ecg-reports"
    with pytest.raises(ValueError, match=r"has no config 'rhythms'.*superdiagnostic"):
        load_dataset_splits("ptbxl", tmp_path, "rhythms")
    with pytest.raises(ValueError, match=r"\[100, 500\] Hz, got sampling_rate=250"):
        load_dataset_splits("ptbxl", tmp_path, "rhythm", sampling_rate=250)
    with pytest.raises(ValueError, match="own stored rate, got sampling_rate=500"):
        load_dataset_splits("cpsc2018", tmp_path, sampling_rate=500)
    with pytest.raises(ValueError, match=r"Unknown dataset 'ptb'; expected one of \['ptbxl'"):
        load_dataset_splits("ptb", tmp_path)


def test_an_inconsistent_spec_is_rejected_when_it_is_written():
    def loader(*args):
        raise AssertionError("never loaded")

    with pytest.raises(ValueError, match="needs label_sets, a report_config or both"):
        DatasetSpec(name="empty", display_name="Empty", loader=loader)
    with pytest.raises(ValueError, match=r"default_label_set must be one of label_sets \['a'\], got 'b'"):
        DatasetSpec(name="bad", display_name="Bad", loader=loader, label_sets=("a",), default_label_set="b")
    with pytest.raises(ValueError, match="report_language_descriptions and report_language_templates go together"):
        DatasetSpec(
            name="bad", display_name="Bad", loader=loader, label_sets=("a",), default_label_set="a",
            report_language_descriptions={"a": {"X": "x"}},
        )  # fmt: skip
    for prompts in ("x.", (), ("x.", " ")):
        with pytest.raises(ValueError, match=r"report_style_prompts of \['a/X'\] must be tuples of non-empty"):
            DatasetSpec(
                name="bad", display_name="Bad", loader=loader, label_sets=("a",), default_label_set="a",
                report_style_prompts={"a": {"X": prompts}},
            )  # fmt: skip
    with pytest.raises(ValueError, match=r"report_style_prompts name label sets \['b'\] that are not in label_sets"):
        DatasetSpec(
            name="bad", display_name="Bad", loader=loader, label_sets=("a",), default_label_set="a",
            report_style_prompts={"b": {"X": ("x.",)}},
        )  # fmt: skip


def test_a_registered_dataset_passes_training_argument_checks_from_its_spec(loader_calls, tmp_path):
    with pytest.raises(ValueError, match=f"--dataset_name {FAKE} needs --data_dir"):
        train_merit.parse_arguments(["--dataset_name", FAKE])
    with pytest.raises(ValueError, match="--zero_shot_label_set 'superdiagnostic' is not a label set"):
        train_merit.parse_arguments(
            ["--dataset_name", FAKE, "--data_dir", str(tmp_path), "--zero_shot_label_set", "superdiagnostic"]
        )
    _, data_args, training_args = train_merit.parse_arguments(["--dataset_name", FAKE, "--data_dir", str(tmp_path)])
    assert resolved_data_dir(data_args) == str(tmp_path)
    assert evaluates_after_training(data_args, training_args)  # labelled: the demo evaluation can score it

    parser = train_merit.build_parser()
    with pytest.raises(ValueError, match="--dataset_name cpsc2018 has no reports, and pretraining needs"):
        validate_arguments(
            *parser.parse_args_into_dataclasses(args=["--dataset_name", "cpsc2018", "--data_dir", str(tmp_path)])
        )
    unlabelled = ["--dataset_name", "mimic_iv_ecg", "--data_dir", str(tmp_path), "--evaluate_after_training", "true"]
    with pytest.raises(ValueError, match=f"it needs --dataset_name ptbxl or --dataset_name {FAKE}"):
        validate_arguments(*parser.parse_args_into_dataclasses(args=unlabelled))
    assert loader_calls == []  # nothing is loaded before the arguments are valid


def test_a_registered_dataset_flows_through_training_data_loading(loader_calls, tmp_path):
    splits = load_pretraining_splits(FAKE, str(tmp_path), sampling_rate=100)  # --ptbxl_sampling_rate is ignored
    assert {name: len(split) for name, split in splits.items()} == SPLIT_SIZES
    validation, class_names = zero_shot_validation_split(FAKE, str(tmp_path), splits, None)
    assert class_names == CLASSES and len(validation) == SPLIT_SIZES["validation"]
    assert loader_calls == [("pairs", None), ("rhythm", None)]  # the report config, then the default label set
    described = class_prompts(FAKE, tmp_path, "rhythm", class_names, prompt_style="descriptions")
    assert described["AFIB"][:2] == ["atrial fibrillation", "ECG showing atrial fibrillation."]
    assert described["AFIB"][-1] == "vorhofflimmern" and "vorhofflimmern" not in described["NORM"]
    # report-style prompts replace (report-style) or join (both) a class's prompts; a class without any keeps its own
    report_style = class_prompts(FAKE, tmp_path, "rhythm", class_names, prompt_style="report-style")
    assert report_style["AFIB"] == ["atrial fibrillation. otherwise normal ecg."]
    assert report_style["NORM"] == described["NORM"]
    both = class_prompts(FAKE, tmp_path, "rhythm", class_names, prompt_style="both")
    assert both["AFIB"] == described["AFIB"] + report_style["AFIB"] and both["NORM"] == described["NORM"]
    by_style = {"descriptions": described, "report-style": report_style, "both": both}
    assert class_prompts(FAKE, tmp_path, "rhythm", class_names) == by_style[DEFAULT_PROMPT_STYLE]
    with pytest.raises(ValueError, match=r"Unknown prompt style 'reports'; expected one of \['descriptions'"):
        class_prompts(FAKE, tmp_path, "rhythm", class_names, prompt_style="reports")


def test_a_registered_dataset_flows_through_evaluation_arguments_and_loading(loader_calls, tmp_path):
    base = [
        "--model_name_or_path",
        str(tmp_path / "model"),
        "--data_dir",
        str(tmp_path),
        "--output_dir",
        str(tmp_path),
    ]
    _, data_args, _ = cli.parse_arguments([*base, "--task", "zero-shot", "--dataset", FAKE])
    assert data_args.dataset == FAKE  # a --dataset choice as soon as it is registered
    with pytest.raises(ValueError, match="--label_set 'superdiagnostic' is not a label set of --dataset fake_ecg"):
        cli.parse_arguments([*base, "--task", "zero-shot", "--dataset", FAKE, "--label_set", "superdiagnostic"])
    with pytest.raises(ValueError, match="--dataset_sampling_rate only applies to a --dataset shipped at several"):
        cli.parse_arguments([*base, "--task", "zero-shot", "--dataset", FAKE, "--dataset_sampling_rate", "500"])
    _, data_args, _ = cli.parse_arguments([*base, "--task", "report-generation", "--dataset", FAKE])
    assert data_args.dataset == FAKE  # it has reports

    splits = load_evaluation_dataset(FAKE, tmp_path)
    assert {name: len(split) for name, split in splits.items()} == SPLIT_SIZES
    assert len(load_report_dataset(tmp_path, FAKE)["test"]) == SPLIT_SIZES["test"]
    assert loader_calls == [("rhythm", None), ("pairs", None)]
    assert class_descriptions(FAKE, tmp_path, "rhythm", ["NORM"]) == {"NORM": "normal ECG"}
    with pytest.raises(ValueError, match=r"No description for the fake_ecg classes \['XYZ'\]"):
        class_descriptions(FAKE, tmp_path, "rhythm", ["XYZ"])


@pytest.mark.slow
@pytest.mark.usefixtures("single_torch_thread")
def test_a_registered_dataset_trains_and_is_evaluated_end_to_end(loader_calls, tmp_path, caplog):
    """`train_merit.py --dataset_name fake_ecg`: pretraining on its reports, zero-shot validation on its label set,
    then the demo evaluation (linear probe, zero-shot and retrieval) on its test split, all through the registry."""
    caplog.set_level(logging.INFO, logger="train_merit")
    output_dir = tmp_path / "run"
    args = tiny_train_args(output_dir, tmp_path / "cache", "--max_train_steps", "2", "--eval_steps", "2")
    args[args.index("--evaluate_after_training") : args.index("--evaluate_after_training") + 2] = []  # its default
    train_merit.main([*args, "--dataset_name", FAKE, "--data_dir", str(tmp_path)])

    assert "val/zero_shot_macro_auroc" in caplog.text
    assert "`fake_ecg`, training split: 24 ECG-report pairs" in (output_dir / "README.md").read_text()
    results = json.loads((output_dir / "results" / "results.json").read_text())["results"]
    assert {(row["task"], row["dataset"], row["label_set"]) for row in results} == {
        ("linear-probe", FAKE, "rhythm"), ("zero-shot", FAKE, "rhythm"), ("retrieval", FAKE, "report"),
    }  # fmt: skip
    assert ("pairs", None) in loader_calls and ("rhythm", None) in loader_calls


def test_no_module_outside_the_registry_switches_on_a_dataset_name():
    """A comparison with a registered name (`== "ptbxl"`, `in ("cpsc2018", "chapman")`) or a table keyed by them
    belongs in the dataset's spec."""
    names = set(DATASETS)
    sources = [
        *(path for package in ("merit_training", "merit_evaluation", "merit_plotting") for path in (REPO_ROOT / package).rglob("*.py")),
        *(path for path in (REPO_ROOT / "dataset_scripts").glob("*.py") if path.name != "registry.py"),
        *REPO_ROOT.glob("*.py"), *REPO_ROOT.glob("space/*.py"), *REPO_ROOT.glob("benchmarks/*.py"),
        *REPO_ROOT.glob("metrics/*/*.py"),
    ]  # fmt: skip

    def dataset_names(node) -> set[str]:
        if isinstance(node, ast.Constant) and node.value in names:
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*map(dataset_names, node.elts))
        return set()

    switches = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            compared = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            keys = [key for key in node.keys if key is not None] if isinstance(node, ast.Dict) else []
            found = set().union(*map(dataset_names, compared + keys))
            if found:
                switches.append(f"{Path(path).relative_to(REPO_ROOT)}:{node.lineno} {sorted(found)}")
    assert switches == []
