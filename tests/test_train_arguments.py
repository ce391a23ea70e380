"""`train_merit.py` arguments: `--help` documents every flag, and invalid combinations fail before any work starts."""

import dataclasses
import subprocess
import sys

import pytest
from train_helpers import REPO_ROOT, subprocess_env

import train_merit
from merit_training.arguments import (
    DataArguments,
    ModelArguments,
    TrainingArguments,
    evaluates_after_training,
    resolved_data_dir,
    validate_arguments,
)


# The flags that the rest of the project and its documentation rely on (issue 4).
REQUIRED_FLAGS = [
    "--model_preset", "--config_file", "--model_name_or_path", "--text_model_name_or_path", "--dataset_name",
    "--data_dir", "--max_train_steps", "--num_train_epochs", "--per_device_train_batch_size",
    "--gradient_accumulation_steps", "--learning_rate", "--checkpointing_steps", "--resume_from_checkpoint",
    "--output_dir", "--push_to_hub", "--hub_model_id", "--hub_token", "--hub_private_repo",
]  # fmt: skip


def test_help_lists_and_documents_every_flag():
    help_text = train_merit.build_parser().format_help()
    for flag in REQUIRED_FLAGS:
        assert f"{flag} " in help_text, f"{flag} missing from --help"
    for arguments in (ModelArguments, DataArguments, TrainingArguments):
        for field in dataclasses.fields(arguments):
            assert f"--{field.name} " in help_text
            assert len(field.metadata.get("help", "")) > 10, f"--{field.name} has no help text"
    assert "accelerate launch train_merit.py" in help_text  # the usage examples of the module docstring


def test_defaults_are_valid_and_run_the_demo():
    model_args, data_args, training_args = train_merit.parse_arguments([])
    assert (model_args.model_preset, data_args.dataset_name, training_args.push_to_hub) == ("compact", "ptbxl", False)
    assert resolved_data_dir(data_args) == str(REPO_ROOT / "data" / "ptbxl-sample")
    assert evaluates_after_training(data_args, training_args)  # the demo continues with its evaluation
    assert (training_args.num_train_epochs, training_args.decoder_learning_rate) == (5, 3e-3)  # the demo recipe


def test_a_decoder_rate_of_zero_or_none_means_no_rate_of_its_own(tmp_path):
    """0 (the flag) or None (an older run's saved flags) are valid: the decoder then trains at --learning_rate in the
    main groups, the layout that resuming runs saved before the default needs."""
    _, _, training_args = train_merit.parse_arguments(["--decoder_learning_rate", "0"])
    assert training_args.decoder_learning_rate == 0
    for value in (0.0, None):
        training_args.decoder_learning_rate = value
        validate_arguments(*train_merit.parse_arguments([])[:2], training_args)


@pytest.mark.parametrize(
    "flags, expected",
    [([], True), (["--evaluate_after_training", "false"], False), (["--dataset_name", "org/ecg-reports"], False)],
)
def test_evaluation_after_training_defaults_to_on_for_ptbxl_only(flags, expected):
    _, data_args, training_args = train_merit.parse_arguments(flags)
    assert evaluates_after_training(data_args, training_args) is expected


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--model_name_or_path", "x", "--config_file", "y"], ["--model_name_or_path", "--config_file"]),
        (["--model_preset", "huge"], ["--model_preset"]),
        (["--config_file", "/does/not/exist.json"], ["--config_file"]),
        (["--config_overrides", "[1, 2]"], ["--config_overrides"]),
        # a tower field at the top level would be stored as an inert attribute and change nothing
        (["--config_overrides", '{"decoder_mode": "joint"}'], ['{"ecg_config": {"decoder_mode": ...}}']),
        (["--config_overrides", '{"ecg_config": {"mask_ration": 0.5}}'], ["mask_ration"]),
        (["--report_sentence_dropout", "1.0"], ["--report_sentence_dropout"]),
        (["--text_projection_head", "identity"], ["--text_projection_head"]),
        (["--decoder_mode", "diagonal"], ["--decoder_mode", "axial, joint, lead_wise"]),
        (
            ["--decoder_mode", "axial", "--model_name_or_path", "ckpt"],
            ["--decoder_mode axial", "--model_name_or_path"],
        ),
        (["--decoder_mode", "joint", "--config_file", "c.json"], ["--decoder_mode joint", "--config_file"]),
        (["--model_preset", "tiny", "--model_name_or_path", "m"], ["--model_preset tiny applies to a new model"]),
        (
            ["--contrastive_view", "masked", "--config_overrides", '{"contrastive_view": "full"}'],
            ["--contrastive_view masked and --config_overrides contrastive_view='full' disagree"],
        ),
        (
            ["--decoder_mode", "lead_wise", "--config_overrides", '{"ecg_config": {"decoder_mode": "axial"}}'],
            ["--decoder_mode lead_wise and --config_overrides ecg_config.decoder_mode='axial' disagree"],
        ),
        (["--model_preset", "tiny", "--config_file", "c.json"], ["--model_preset tiny", "--config_file already"]),
        (["--ecg_scaling", "minmax"], ["--ecg_scaling"]),
        (["--ecg_scaling", "none", "--model_name_or_path", "ckpt"], ["--ecg_scaling none", "--model_name_or_path"]),
        (
            ["--ecg_scaling", "per_lead_zscore", "--model_name_or_path", "ckpt"],
            ["--ecg_scaling per_lead_zscore", "--model_name_or_path"],
        ),
        (
            ["--text_model_name_or_path", "scratch", "--model_name_or_path", "ckpt"],
            ["--text_model_name_or_path", "--model_name_or_path"],
        ),
        (["--dataset_name", "mimic_iv_ecg"], ["--dataset_name mimic_iv_ecg", "--data_dir"]),
        (["--data_dir", "/does/not/exist"], ["--data_dir"]),
        (["--ptbxl_sampling_rate", "250"], ["--ptbxl_sampling_rate"]),
        (["--per_device_train_batch_size", "0"], ["--per_device_train_batch_size"]),
        (["--gradient_accumulation_steps", "0"], ["--gradient_accumulation_steps"]),
        (["--checkpointing_steps", "0"], ["--checkpointing_steps"]),
        (["--max_train_steps", "-3"], ["--max_train_steps"]),
        (["--max_train_samples", "0"], ["--max_train_samples"]),
        (["--learning_rate", "0"], ["--learning_rate"]),
        (["--decoder_learning_rate=-1e-3"], ["--decoder_learning_rate", "0: the decoder trains at"]),
        (["--warmup_ratio", "1.5"], ["--warmup_ratio"]),
        (["--mixed_precision", "fp8"], ["--mixed_precision"]),
        (["--report_to", "tensorbored"], ["--report_to"]),
        (["--push_to_hub"], ["--push_to_hub", "--hub_model_id"]),
        (["--hub_model_id", "org/merit"], ["--hub_model_id", "--push_to_hub"]),
        (["--hub_private_repo"], ["--hub_private_repo", "--push_to_hub"]),
        (["--resume_from_checkpoint", "/does/not/exist"], ["--resume_from_checkpoint"]),
        (["--resume_from_checkpoint", "latest"], ["--resume_from_checkpoint latest", "--output_dir"]),
        (
            ["--dataset_name", "org/ecg-reports", "--evaluate_after_training", "true"],
            ["--evaluate_after_training", "--dataset_name ptbxl"],
        ),
    ],
)
def test_invalid_combinations_name_the_flags(tmp_path, flags, named):
    parsed = train_merit.build_parser().parse_args_into_dataclasses(
        args=[*flags, "--output_dir", str(tmp_path / "out")]
    )
    with pytest.raises(ValueError, match="Invalid arguments") as caught:
        validate_arguments(*parsed)
    for flag in named:
        assert flag in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path):
    parsed = train_merit.build_parser().parse_args_into_dataclasses(
        args=["--model_preset", "huge", "--learning_rate", "-1", "--push_to_hub", "--output_dir", str(tmp_path)]
    )
    with pytest.raises(ValueError) as caught:
        validate_arguments(*parsed)
    assert all(flag in str(caught.value) for flag in ("--model_preset", "--learning_rate", "--hub_model_id"))


@pytest.mark.slow
def test_cli_rejects_invalid_flags_before_any_work(tmp_path):
    output_dir = tmp_path / "never-created"
    result = subprocess.run(
        [sys.executable, "train_merit.py", "--push_to_hub", "--per_device_train_batch_size", "0", "--output_dir", str(output_dir)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--hub_model_id" in result.stderr and "--per_device_train_batch_size" in result.stderr
    assert "Generating" not in result.stderr and "Processes:" not in result.stderr  # no data or model work started
    assert not output_dir.exists()


def test_a_model_path_that_is_no_model_is_named_before_any_work(tmp_path):
    """Before: a missing folder was tried as a Hub id ("Repo id must be in the form 'repo_name' ..."), and a
    resumable checkpoint folder gave "Unrecognized model ... Should have a model_type key"."""
    from merit_evaluation import cli as evaluation_cli
    from merit_training.report_generation import parse_report_arguments

    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "training_state.json").write_text("{}")
    missing = str(tmp_path / "missing")
    out = ["--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"--model_name_or_path .*missing does not exist: there is no such folder"):
        train_merit.parse_arguments(["--model_name_or_path", missing, *out])
    with pytest.raises(ValueError, match="--text_model_name_or_path .*missing does not exist"):
        train_merit.parse_arguments(["--text_model_name_or_path", missing, *out])
    with pytest.raises(ValueError, match="--language_model_name_or_path .*missing does not exist"):
        parse_report_arguments(
            ["--model_name_or_path", str(REPO_ROOT), "--language_model_name_or_path", missing, *out]
        )
    evaluation = ["--task", "zero-shot", "--dataset", "ptbxl", "--data_dir", "data/ptbxl-sample", *out]
    with pytest.raises(ValueError, match="is a resumable training checkpoint, not a model; the model exported by"):
        evaluation_cli.run_evaluation(
            *evaluation_cli.parse_arguments(["--model_name_or_path", str(checkpoint), *evaluation])
        )
    with pytest.raises(ValueError, match="does not exist: there is no such folder"):
        evaluation_cli.run_evaluation(*evaluation_cli.parse_arguments(["--model_name_or_path", missing, *evaluation]))
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # a model that is not MERIT's (was: "BertTokenizer has no attribute feature_size" after the data was loaded)
    from merit_training.model_setup import default_text_model

    probe = ["--task", "linear-probe", *evaluation[2:]]
    with pytest.raises(ValueError, match=r"holds a bert model .*evaluates MERIT checkpoints"):
        evaluation_cli.run_evaluation(
            *evaluation_cli.parse_arguments(["--model_name_or_path", default_text_model(), *probe])
        )
    assert train_merit.parse_arguments(["--text_model_name_or_path", "scratch", *out])  # not a path


def test_a_recipe_flag_and_the_same_value_in_config_overrides_agree(tmp_path):
    out = ["--output_dir", str(tmp_path / "out")]
    model_args, _, _ = train_merit.parse_arguments(
        [
            "--contrastive_view",
            "masked",
            "--config_overrides",
            '{"contrastive_view": "masked", "ecg_config": {"mask_ratio": 0.6}}',
            *out,
        ]
    )
    assert model_args.contrastive_view == "masked"
    train_merit.parse_arguments(
        ["--config_overrides", '{"contrastive_view": "masked"}', *out]
    )  # the flag at its default
