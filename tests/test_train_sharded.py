"""FSDP2 sharding on two gloo CPU ranks, and the guard that stops a sharding config from silently running unsharded.

accelerate cannot shard on the CPU: it sets every multi-process CPU run up as `MULTI_CPU` (plain data parallelism),
FSDP config or not (DESIGN.md section 8). So `tests/fsdp2_check.py` shards MERIT with `torch.distributed` directly,
using the wrap policy of `configs/accelerate/fsdp.yaml`, and `train_merit.py` refuses an FSDP config on the CPU.
Success of a launch is judged by the files its processes write (`run_judged_by_outputs`).
"""

import json
import subprocess

import pytest
from accelerate.utils import DistributedType
from train_helpers import (
    REPO_ROOT,
    accelerate_launch_command,
    run_judged_by_outputs,
    subprocess_env,
    tiny_train_args,
    two_process_command,
)

from merit_training.sharding import check_sharding_is_real, requested_sharding


CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"


@pytest.mark.slow
def test_fsdp2_pretraining_on_two_ranks_equals_one_process_and_resumes_exactly(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    command = two_process_command(
        "tests/fsdp2_check.py", "--output_dir", str(output_dir), "--cache_dir", str(tmp_path / "cache")
    )
    results = [output_dir / f"result-{rank}.json" for rank in (0, 1)]
    run_judged_by_outputs(
        command, lambda: all(path.is_file() for path in results),
        cwd=REPO_ROOT, env=subprocess_env(ACCELERATE_USE_CPU="1"), timeout=600,
    )  # fmt: skip

    for path in results:
        result = json.loads(path.read_text())
        assert (result["world_size"], result["backend"]) == (2, "gloo")
        # the config's wrap policy was applied: every MeritLayer / BertLayer and the root are FSDP units
        assert result["wrap_classes"] == ["MeritLayer", "BertLayer"]
        assert result["sharded_layers"] == ["FSDPBertLayer", "FSDPMeritForPreTraining", "FSDPMeritLayer"]
        assert result["local_parameter_fraction"] == pytest.approx(0.5, abs=1e-3)  # each rank holds half
        # the sharded steps equal the one-process steps, and the losses moved (the steps did something)
        assert result["sharded_losses"] == pytest.approx(result["reference_losses"], rel=1e-6)
        assert len(set(result["reference_losses"])) == len(result["reference_losses"])
        # resumed from the sharded checkpoint of step 2: the same losses, bitwise
        assert result["resumed_losses"] == result["sharded_losses"][2:]
        assert result["checkpoint_files"] == [".metadata", "__0_0.distcp", "__1_0.distcp"]

    main = json.loads(results[0].read_text())
    assert main["max_weight_difference"] < 1e-5
    assert main["resumed_equals_uninterrupted"]
    # one consolidated model.safetensors of plain tensors, with MERIT's own code, that from_pretrained loads
    assert main["exported_types"] == ["Tensor"]
    assert "model.safetensors" in main["exported_files"] and "modeling_merit.py" in main["exported_files"]
    assert not [name for name in main["exported_files"] if name.startswith("_fsdp") or name.endswith(".distcp")]
    assert main["architectures"] == ["MeritForPreTraining"]
    assert (main["loaded_class"], main["loaded_equals_exported"]) == ("MeritForPreTraining", True)
    config = json.loads((output_dir / "export" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_merit.MeritForPreTraining"


@pytest.mark.parametrize(
    "environ, distributed_type, refused",
    [
        ({"ACCELERATE_USE_FSDP": "true"}, DistributedType.MULTI_CPU, True),  # fsdp.yaml + ACCELERATE_USE_CPU=1
        ({"ACCELERATE_USE_FSDP": "true"}, DistributedType.NO, True),  # fsdp.yaml + --cpu: one process
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, DistributedType.MULTI_CPU, True),
        ({"ACCELERATE_USE_FSDP": "true"}, DistributedType.FSDP, False),  # GPUs: really sharded
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, DistributedType.DEEPSPEED, False),
        ({}, DistributedType.MULTI_CPU, False),  # cpu_2_processes.yaml: data parallelism was asked for
        ({"ACCELERATE_USE_FSDP": "false"}, DistributedType.MULTI_CPU, False),
    ],
)
def test_a_sharding_config_that_would_run_unsharded_is_refused(environ, distributed_type, refused):
    if not refused:
        check_sharding_is_real(distributed_type, environ)
        return
    with pytest.raises(ValueError, match=rf"asks for {requested_sharding(environ)} sharding.*{distributed_type}"):
        check_sharding_is_real(distributed_type, environ)


@pytest.mark.slow
def test_train_merit_refuses_fsdp_yaml_on_two_cpu_processes(tmp_path):
    """The launch that used to log `DistributedType.MULTI_CPU` and train unsharded without a word."""
    command = accelerate_launch_command(
        CONFIG_DIR / "fsdp.yaml",
        "train_merit.py",
        *tiny_train_args(tmp_path / "run", tmp_path / "cache", "--max_train_steps", "1"),
        launch_options=("--num_processes", "2"),
    )
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, env=subprocess_env(ACCELERATE_USE_CPU="1"), timeout=300
    )
    assert result.returncode != 0
    assert "asks for FSDP sharding, but accelerate set this run up as DistributedType.MULTI_CPU" in result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.slow
def test_fsdp2_report_generation_with_lora_on_two_ranks_equals_one_process(tmp_path, tokenizer):
    """SmolLM2-135M with LoRA, sharded over 2 gloo ranks with fsdp_report_generation.yaml's wrap policy (~2 min)."""
    pytest.importorskip("peft")
    pytest.importorskip("gguf")
    import torch

    from merit_training.language_models import default_language_model
    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

    torch.manual_seed(0)
    merit = tmp_path / "merit"
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(merit)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(merit)
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    command = two_process_command(
        "tests/fsdp2_report_check.py",
        "--merit", str(merit),
        "--language_model", str(default_language_model()),
        "--output_dir", str(output_dir),
        "--cache_dir", str(tmp_path / "cache"),
    )  # fmt: skip
    results = [output_dir / f"result-{rank}.json" for rank in (0, 1)]
    run_judged_by_outputs(
        command, lambda: all(path.is_file() for path in results),
        cwd=REPO_ROOT, env=subprocess_env(ACCELERATE_USE_CPU="1"), timeout=900,
    )  # fmt: skip

    for path in results:
        result = json.loads(path.read_text())
        assert result["wrap_classes"] == ["MeritLayer", "LlamaDecoderLayer"]
        assert result["num_wrapped_layers"] == 2 + 30 + 1  # tiny encoder layers, SmolLM2's decoder layers, the root
        assert result["local_parameter_fraction"] == pytest.approx(0.5, abs=1e-3)
        assert result["sharded_losses"] == pytest.approx(result["reference_losses"], rel=1e-6)
        assert result["reference_losses"][1] != result["reference_losses"][0]

    main = json.loads(results[0].read_text())
    assert main["max_trainable_difference"] < 1e-5  # projector and LoRA weights
    # saved as train_merit.py saves: adapters merged, no adapter keys, and the merged weights are the reference's
    assert main["saved_lora_keys"] == [] and "model.safetensors" in main["saved_files"]
    assert not [name for name in main["saved_files"] if name.startswith("_fsdp")]
    assert (main["loaded_class"], main["loaded_keys_match"]) == ("MeritForReportGeneration", True)
    assert main["max_loaded_parameter_difference"][0] < 1e-5
    # the adapters changed the attention weights far beyond the tolerance, so a dropped merge would be caught
    assert main["merged_q_proj_change"] > 10 * 1e-5 and main["lora_b_moved"] > 0
    assert main["buffers_differing"] == [
        "projector.input_norm.num_batches_tracked",
        "projector.input_norm.running_mean",
        "projector.input_norm.running_var",
    ]  # each rank's own BatchNorm statistics (rank 0's are saved); the reference saw both halves
