"""`train_merit.py --task report_generation` end to end on the PTB-XL excerpt with a tiny MERIT checkpoint and a tiny
Llama (one thread): the exported folder loads and generates, the stages train what they should, and an interrupted
run resumes to exactly the weights of an uninterrupted one. The real default LLM (SmolLM2) runs in a `slow` test."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

import train_merit
from merit_training.report_generation import report_language, split_task_argument, stage_schedule
from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer):
    """A tiny MERIT checkpoint (with its processor) and a tiny Llama folder using the MiniLM tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("report_checkpoints")
    torch.manual_seed(0)
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(root / "merit")
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(root / "merit")
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=256,
            bos_token_id=None,
            eos_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    return root


def run(checkpoints, output_dir, *extra):
    argv = [
        "--task",
        "report_generation",
        "--model_name_or_path",
        str(checkpoints / "merit"),
        "--language_model_name_or_path",
        str(checkpoints / "llm"),
        "--output_dir",
        str(output_dir),
        "--cache_dir",
        str(checkpoints / "datasets"),
        "--max_train_samples",
        "16",
        "--max_eval_samples",
        "4",
        "--per_device_train_batch_size",
        "4",
        "--report_to",
        "none",
        "--config_overrides",
        '{"projector_hidden_size": 32, "num_prefix_tokens": 2}',
        "--lora_rank",
        "2",
        *extra,
    ]
    return train_merit.main(argv)


def test_config_overrides_name_fields_the_config_lacks():
    from merit_training.report_generation import ReportGenerationArguments, validate_report_arguments

    arguments = ReportGenerationArguments(
        model_name_or_path="merit", config_overrides='{"num_prefix_token": 8, "ecg_config": {"mask_ratio": 0.5}}'
    )
    with pytest.raises(ValueError, match="sets `num_prefix_token`, which MeritReportGenerationConfig does not have"):
        validate_report_arguments(arguments)
    arguments.config_overrides = '{"retrieval": 1}'
    with pytest.raises(ValueError, match="retrieval"):
        validate_report_arguments(arguments)
    arguments.config_overrides = '{"num_retrieved_reports": 1, "prefix_features": "time_tokens"}'
    validate_report_arguments(arguments)


def test_task_argument_and_helpers():
    assert split_task_argument(["--task", "report-generation", "--x", "1"]) == ("report_generation", ["--x", "1"])
    assert split_task_argument(["--x=1"]) == ("pretraining", ["--x=1"])
    with pytest.raises(ValueError, match="--task must be one of"):
        split_task_argument(["--task=captioning"])
    assert report_language("sinusrhythmus normales ekg") == "de"
    assert report_language("sinus rhythm. normal ecg.") == "en"
    assert report_language("sinusrytm vänster el-axel eljest normalt ekg") == "sv"
    assert report_language("") == "other"
    assert stage_schedule(3, 4, 10, 0.1) == 0.0 and stage_schedule(4, 4, 10, 0.1) == 1.0
    assert stage_schedule(9, 4, 10, 0.1) > 0 and stage_schedule(10, 4, 10, 0.1) == 0.0


@pytest.mark.slow
def test_training_exports_a_loadable_generator_and_resumes_exactly(checkpoints, tmp_path):
    from transformers import AutoModel, AutoProcessor

    full = run(checkpoints, tmp_path / "full", "--max_train_steps", "4", "--checkpointing_steps", "2")
    model = AutoModel.from_pretrained(full).eval()
    processor = AutoProcessor.from_pretrained(full)
    assert not model.has_lora  # merged on export
    ids = model.generate(torch.randn(2, 12, 1000), max_new_tokens=4)
    assert ids.shape[0] == 2 and len(processor.batch_decode(ids, skip_special_tokens=True)) == 2

    # the encoder is untouched and the LLM changed only through the LoRA-adapted layers of the second stage
    merit = load_file(checkpoints / "merit" / "model.safetensors")
    exported = load_file(full / "model.safetensors")
    assert torch.equal(
        exported["ecg_model.embeddings.patch_embedding.weight"],
        merit["merit.ecg_model.embeddings.patch_embedding.weight"],
    )
    llm = load_file(checkpoints / "llm" / "model.safetensors")
    assert not torch.equal(
        exported["language_model.model.layers.0.self_attn.q_proj.weight"],
        llm["model.layers.0.self_attn.q_proj.weight"],
    )
    assert torch.equal(
        exported["language_model.model.embed_tokens.weight"], llm["model.embed_tokens.weight"]
    )  # no LoRA there

    projector_only = run(checkpoints, tmp_path / "projector", "--max_train_steps", "2", "--use_lora", "false")
    exported = load_file(projector_only / "model.safetensors")
    assert torch.equal(
        exported["language_model.model.layers.0.self_attn.q_proj.weight"],
        llm["model.layers.0.self_attn.q_proj.weight"],
    )

    # "interrupted after step 2" (the last projector-only step): a fresh folder holding only checkpoint-2, resumed
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    shutil.copytree(full / "checkpoint-2", interrupted / "checkpoint-2")
    resumed = run(
        checkpoints,
        interrupted,
        "--max_train_steps",
        "4",
        "--checkpointing_steps",
        "2",
        "--resume_from_checkpoint",
        "latest",
    )
    expected, got = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


@pytest.mark.slow
def test_retrieval_augmented_training_stores_its_bank(checkpoints, tmp_path):
    from transformers import AutoModel

    overrides = '{"projector_hidden_size": 32, "num_prefix_tokens": 2, "num_retrieved_reports": 2}'
    output = run(checkpoints, tmp_path / "rag", "--max_train_steps", "2", "--config_overrides", overrides)
    model = AutoModel.from_pretrained(output).eval()
    # the bank is the 16 training records: their pooled features (unit norm) and context token ids
    assert model.config.retrieval_bank_size == 16 and model.retrieval_keys.shape == (16, 64)
    torch.testing.assert_close(model.retrieval_keys.norm(dim=-1), torch.ones(16))
    assert (model.retrieval_context_ids[:, 0] >= 0).all()
    assert model.generate(torch.randn(2, 12, 1000), max_new_tokens=3).shape[0] == 2
    assert "Retrieval-augmented" in (output / "README.md").read_text()
    with pytest.raises(ValueError, match="needs a frozen encoder"):
        run(
            checkpoints,
            tmp_path / "rag-unfrozen",
            "--max_train_steps",
            "1",
            "--config_overrides",
            '{"num_retrieved_reports": 1, "freeze_ecg_encoder": false}',
        )


def test_training_records_never_retrieve_their_own_patients_reports():
    import datasets

    from merit_training.report_generation import leave_patient_out_retrieval

    class Nearest:  # a bank whose similarity is minus the distance of scalar keys
        class config:
            num_retrieved_reports = 1

        @staticmethod
        def retrieve(features, exclude):
            similarity = -(features - keys.T).abs()
            return similarity.masked_fill(exclude, -1e9).topk(1, dim=-1).indices

    keys = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    split = datasets.Dataset.from_dict({"patient_id": [7, 7, 8, -1, -1, 9]})
    # records 0 and 1 share patient 7, so each reads record 2; the two unknown patients may read each other
    for chunk_size in (2, 4, 512):  # 4: a short last chunk
        retrieved = leave_patient_out_retrieval(Nearest, keys, split, chunk_size=chunk_size)
        assert retrieved.squeeze(1).tolist() == [2, 2, 1, 4, 3, 4]
    string_ids = datasets.Dataset.from_dict({"patient_id": ["p7", "p7", "p8", "", "", "p9"]})
    assert leave_patient_out_retrieval(Nearest, keys, string_ids).squeeze(1).tolist() == [2, 2, 1, 4, 3, 4]
    without_patients = datasets.Dataset.from_dict({"record": list(range(6))})
    assert leave_patient_out_retrieval(Nearest, keys, without_patients).squeeze(1).tolist() == [1, 0, 1, 4, 3, 4]


@pytest.mark.slow
def test_retrieval_in_the_ecg_text_space_uses_the_checkpoints_alignment(checkpoints, tmp_path):
    import torch.nn.functional as F
    from transformers import AutoModel

    from merit_training.report_generation import report_embeddings

    overrides = (
        '{"projector_hidden_size": 32, "num_prefix_tokens": 2, "num_retrieved_reports": 1, '
        '"retrieval_space": "ecg-text"}'
    )
    output = run(checkpoints, tmp_path / "rag", "--max_train_steps", "1", "--config_overrides", overrides)
    model = AutoModel.from_pretrained(output).eval()
    dual = AutoModel.from_pretrained(checkpoints / "merit").eval()
    # the keys are the training reports embedded by the MERIT checkpoint; the query goes through its ECG projection
    assert model.config.retrieval_key_size == dual.config.projection_dim == model.retrieval_keys.shape[1]
    reports = model.retrieval_context_ids  # (16, length): decode to recover the stored reports' order
    assert reports.shape[0] == 16
    dual_processor = MeritProcessor.from_pretrained(checkpoints / "merit")
    tokenizer = dual_processor.tokenizer
    prefix = len(tokenizer("\nReport of a similar ECG: ", add_special_tokens=False)["input_ids"])
    texts = [tokenizer.decode([token for token in row[prefix:].tolist() if token >= 0]) for row in reports]
    expected = report_embeddings(dual, dual_processor, texts, 8, "cpu")
    torch.testing.assert_close(model.retrieval_keys, torch.from_numpy(expected), atol=2e-2, rtol=0)
    for name, tensor in dual.ecg_projection.state_dict().items():
        torch.testing.assert_close(model.retrieval_projection.state_dict()[name], tensor)
    ecg = torch.randn(2, 12, 1000)
    with torch.no_grad():
        query = F.normalize(dual.get_ecg_features(ecg), dim=-1)
    assert model.retrieve(model.encode_ecg(ecg, return_pooled=True)[2]).squeeze(1).tolist() == (
        (query @ model.retrieval_keys.T).argmax(dim=1).tolist()
    )
    assert "ECG-text space" in (output / "README.md").read_text()
    # an ECG-only checkpoint has no ECG-text space
    ecg_only = tmp_path / "ecg-only"
    dual.ecg_model.save_pretrained(ecg_only)
    dual_processor.save_pretrained(ecg_only)
    with pytest.raises(
        ValueError,
        match="retrieval_space='ecg-text' needs a MERIT pretraining or dual-encoder checkpoint with its text tower",
    ):
        run(
            checkpoints,
            tmp_path / "rag-ecg-only",
            "--model_name_or_path",
            str(ecg_only),
            "--max_train_steps",
            "1",
            "--config_overrides",
            overrides,
        )


def test_findings_classifier_learns_and_holds_out_what_it_predicts():
    from merit_training.findings import fit_findings

    generator = torch.Generator().manual_seed(0)
    pooled = torch.randn(200, 8, generator=generator)
    targets = torch.stack([pooled[:, 0] > 0, pooled[:, 1] > 1.0, pooled[:, 2] > 2.5], dim=1)
    noise = torch.rand(200, generator=generator) < 0.05  # a few flipped labels: nothing is perfectly separable
    targets[:, 0] ^= noise
    phrases = {"A": "first", "B": "second", "C": "third"}
    fitted = fit_findings(
        pooled, targets, ["A", "B", "C"], phrases, l2=0.01, folds=5, min_positives=5, seed=0, eps=1e-6
    )
    # C has fewer than 5 positives: left out; A and B are learned (out-of-fold F1 well above their base rate)
    assert int(targets[:, 2].sum()) < 5 and fitted.labels == ["A", "B"] and fitted.phrases == ["first", "second"]
    assert fitted.out_of_fold_f1[0] > 0.85 and fitted.out_of_fold_f1[1] > 0.6
    assert fitted.out_of_fold.shape == (200, 2) and fitted.weight.shape == (2, 8)
    assert all(0 < threshold < 1 for threshold in fitted.thresholds)
    # out-of-fold probabilities are not the fitted classifier's own: those are more confident on the training set
    in_sample = torch.sigmoid(fitted.standardizer(pooled) @ fitted.weight.T + fitted.bias)
    assert not torch.allclose(in_sample, fitted.out_of_fold)
    with pytest.raises(ValueError, match="lower --findings_min_positives"):
        fit_findings(pooled, targets, ["A", "B", "C"], phrases, l2=0.01, folds=5, min_positives=500, seed=0, eps=1e-6)


def test_findings_statements_come_from_the_ptbxl_statement_table(ptbxl_sample_dir, tmp_path):
    from merit_training.findings import findings_statements, findings_targets

    code_classes, phrases = findings_statements(ptbxl_sample_dir, ["superdiagnostic", "rhythm"])
    assert list(phrases)[:5] == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert phrases["SR"] == "sinus rhythm" and phrases["MI"] == "myocardial infarction"
    assert code_classes["IMI"] == {"MI"} and code_classes["SR"] == {"SR"} and code_classes["LVOLT"] == set()
    names = ["IMI", "SR", "LVOLT", "NORM"]
    targets = findings_targets(names, [[0, 1], [2], [3, 1]], code_classes, ["MI", "NORM", "SR"])
    assert targets.tolist() == [[True, False, True], [False, False, False], [False, True, True]]
    with pytest.raises(ValueError, match="scp_statements.csv not found"):
        findings_statements(tmp_path, ["rhythm"])
    with pytest.raises(ValueError, match="must name PTB-XL label sets"):
        findings_statements(ptbxl_sample_dir, ["diagnoses"])


@pytest.mark.slow
def test_findings_conditioned_training_fits_the_classifier_on_every_labelled_record(checkpoints, tmp_path):
    from transformers import AutoModel

    output = run(checkpoints, tmp_path / "findings", "--max_train_steps", "2", "--findings", "superdiagnostic,rhythm")
    model = AutoModel.from_pretrained(output).eval()
    labels = model.config.findings_labels
    assert (
        {"NORM", "MI", "SR"}
        <= set(labels)
        <= {
            "CD",
            "HYP",
            "MI",
            "NORM",
            "STTC",
            "AFIB",
            "SARRH",
            "SBRAD",
            "SR",
            "STACH",
            "SVARR",
            "PACE",
            "AFLT",
            "BIGU",
            "PSVT",
            "SVTAC",
            "TRIGU",
        }
    )
    # fitted on all labelled training records of the excerpt (reports or not), not only the 16 training pairs
    assert int(model.findings_head.standardizer.num_fitted_samples) > 500
    assert len(model.config.findings_thresholds) == len(labels)
    assert model.generate(torch.randn(2, 12, 1000), max_new_tokens=3).shape[0] == 2
    card = (output / "README.md").read_text()
    assert "Findings-conditioned" in card and "training prompts hold out-of-fold predictions" in card
    refused = {
        "needs a frozen encoder": ("--findings", "rhythm", "--config_overrides", '{"freeze_ecg_encoder": false}'),
        "--findings names unknown label sets": ("--findings", "rhythm,diagnoses"),
        "--findings_in_training must be": ("--findings", "rhythm", "--findings_in_training", "truth"),
    }
    for message, flags in refused.items():
        with pytest.raises(ValueError, match=message):
            run(checkpoints, tmp_path / "findings-refused", "--max_train_steps", "1", *flags)


@pytest.mark.slow
def test_benchmark_runs_with_tiny_models(checkpoints, tmp_path, repo_root):
    import json
    import os
    import subprocess
    import sys

    output = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(repo_root / "benchmarks" / "bench_report_generation.py"),
        "--merit",
        str(checkpoints / "merit"),
        "--language-model",
        str(checkpoints / "llm"),
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--variants",
        "lora,full",
        "--output",
        str(output),
    ]
    result = subprocess.run(
        command, cwd=repo_root, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "full / LoRA step time" in result.stdout
    results = json.loads(output.read_text())
    assert results["full"]["trainable_parameters"] > results["lora"]["trainable_parameters"] > 0
