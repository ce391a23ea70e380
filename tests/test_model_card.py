"""The model card as a published checkpoint gets it: exported by the training script's `export_model` (template filled
from the real model and processor), then updated by the evaluation code from a real `results.json`, and its YAML
metadata validated with `huggingface_hub`'s `ModelCard` / `ModelCardData`.

`tests/fixtures/results_tiny_random_ptbxl_sample.json` was written by the real evaluation code: a tiny random MERIT
checkpoint (`torch.manual_seed(1234)`, preset `tiny`, saved as `merit-tiny-random`) evaluated with
`python eval_merit.py --model_name_or_path merit-tiny-random --task linear-probe zero-shot --dataset ptbxl
--data_dir data/ptbxl-sample --output_dir out --n_bootstrap 50 --label_fractions 0.1 1.0 --no_save_models`.
Its scores are near chance; they only exercise the card.
"""

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData

from merit_evaluation.results import read_results, results_to_markdown, update_model_card
from merit_training.hub import export_model, model_card_values
from merit_training.model_card import describe_architecture, describe_contrastive_view, template_placeholders
from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor
from modeling_merit.pipeline_merit import MERIT_PIPELINES


RESULTS_FIXTURE = Path(__file__).parent / "fixtures" / "results_tiny_random_ptbxl_sample.json"
MODEL_ID = "merit-ecg/merit-tiny-test"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer):
    """A checkpoint folder as the training script exports and pushes it."""
    torch.manual_seed(0)
    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    processor = MeritProcessor(MeritFeatureExtractor(), tokenizer, max_text_length=32)
    values = model_card_values(
        model, processor, {"model_preset": "tiny", "learning_rate": 1e-4, "data_dir": "data/ptbxl-sample"},
        model_id=MODEL_ID, dataset_name="ptbxl", num_train_records=276, completed_steps=3, effective_batch_size=8,
        hardware="1 x cpu", duration_seconds=12.0,
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("exported")
    export_model(model, processor, directory, values)
    return directory


def test_exported_folder_carries_pipelines_handler_and_card(exported):
    files = {path.name for path in exported.iterdir()}
    assert {"README.md", "handler.py", "requirements.txt", "pipeline_merit.py", "zero_shot_merit.py"} <= files
    config = json.loads((exported / "config.json").read_text())
    assert set(config["custom_pipelines"]) == {"zero-shot-ecg-classification", "ecg-feature-extraction"}
    assert "wfdb" in (exported / "requirements.txt").read_text()


def test_card_from_real_results_has_valid_metadata(exported):
    rows = read_results(RESULTS_FIXTURE)
    assert {row.task for row in rows} == {"linear-probe", "zero-shot"} and any(row.baseline for row in rows)
    card = update_model_card(exported / "README.md", rows)
    card.save(exported / "README.md")

    reloaded = ModelCard.load(exported / "README.md")
    header = yaml.safe_load(reloaded.content.split("---")[1])
    assert header["pipeline_tag"] == "feature-extraction" and header["library_name"] == "transformers"
    assert {"ecg", "time-series", "medical", "custom_code"} <= set(header["tags"])
    assert header["license"] == "apache-2.0" and header["datasets"] == ["ptbxl"]

    data = reloaded.data
    assert isinstance(data, ModelCardData)
    assert data.model_name == MODEL_ID and data.pipeline_tag == "feature-extraction"
    merit_rows = [row for row in rows if row.baseline is None]
    assert len(data.eval_results) == sum(len(row.metrics) for row in merit_rows)
    auroc = {
        result.metric_name: result.metric_value for result in data.eval_results if result.metric_type == "roc_auc"
    }
    for row in merit_rows:
        name = f"Macro AUROC ({row.task}, {row.fraction * 100:g}% labels, seed {row.seed})"
        assert auroc[name] == round(row.metrics["macro_auroc"].value, 4)
    assert all(result.dataset_name == "PTB-XL" and result.dataset_config == "superdiagnostic"
               for result in data.eval_results)  # fmt: skip
    # the metadata survives a ModelCardData round trip (model-index parsed back into the same results)
    assert ModelCardData(**data.to_dict()).to_dict() == data.to_dict()

    text = reloaded.text
    assert results_to_markdown(rows).strip() in text
    assert not template_placeholders(reloaded.content) and MODEL_ID in text


def test_card_documents_every_route(exported):
    text = ModelCard.load(exported / "README.md").text
    for task in MERIT_PIPELINES:
        assert f'pipeline("{task}"' in text, task
    assert f"python space/app.py --model {MODEL_ID}" in text
    assert "handler.py" in text and '"candidate_labels"' in text
    assert "Not** a medical device" in text
    preprocessing = text.split("## Preprocessing", 1)[1].split("\n## ", 1)[0]
    assert "processor_config.json" in preprocessing and "Resampled to 100 Hz" in preprocessing
    # every python snippet of the card at least parses
    for snippet in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        compile(snippet, "<model card>", "exec")


def test_card_names_the_contrastive_patch_dropout():
    full = MeritConfig.from_preset("tiny", contrastive_view="full")
    assert describe_contrastive_view(full) == "full"
    assert describe_contrastive_view(MeritConfig.from_preset("tiny", contrastive_view="masked")) == "masked"
    dropped = MeritConfig.from_preset("tiny", contrastive_view="full", contrastive_patch_keep_ratio=0.5)
    assert describe_contrastive_view(dropped) == "full, 50 % of each lead's patches (drawn at random) in training"
    assert "contrastive view: full, 50 % of each lead's patches" in describe_architecture(dropped)
    both = MeritConfig.from_preset(
        "tiny", contrastive_view="full", contrastive_patch_keep_ratio=0.5, contrastive_lead_dropout=0.25
    )
    assert describe_contrastive_view(both) == (
        "full, 50 % of each lead's patches (drawn at random), each lead hidden with probability 0.25 in training"
    )
    leads_only = MeritConfig.from_preset("tiny", contrastive_view="full", contrastive_lead_dropout=0.25)
    assert describe_contrastive_view(leads_only) == "full, each lead hidden with probability 0.25 in training"
    shifted = MeritConfig.from_preset("tiny", contrastive_view="full", contrastive_time_shift=0.1)
    assert describe_contrastive_view(shifted) == "full, rolled in time by up to 10 % of the record in training"


def test_card_names_the_projection_heads():
    assert "projections: ECG mlp_bn, text mlp_bn;" in describe_architecture(MeritConfig.from_preset("tiny"))
    standardized = MeritConfig.from_preset("tiny", text_projection_head="standardize")
    assert "projections: ECG mlp_bn, text standardize (no weights: the frozen text space, centred and scaled);" in (
        describe_architecture(standardized)
    )


def test_card_names_a_decoder_learning_rate_only_when_set(tokenizer):
    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    processor = MeritProcessor(MeritFeatureExtractor(), tokenizer, max_text_length=32)

    def configuration(run_config):
        return model_card_values(
            model, processor, run_config, model_id=MODEL_ID, dataset_name="ptbxl", num_train_records=8,
            completed_steps=1, effective_batch_size=8, hardware="1 x cpu", duration_seconds=1.0,
        )["training_configuration"]  # fmt: skip

    assert "AdamW (lr 0.001, betas" in configuration({"learning_rate": 1e-3, "decoder_learning_rate": 0.0})
    assert "AdamW (lr 0.001, betas" in configuration({"learning_rate": 1e-3})  # a run saved before the flag
    assert "AdamW (lr 0.001, decoder 0.003, betas" in configuration(
        {"learning_rate": 1e-3, "decoder_learning_rate": 3e-3}
    )
