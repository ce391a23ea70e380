"""The accelerate configurations in `configs/accelerate/` load with accelerate's own reader and say what they claim."""

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from train_helpers import REPO_ROOT


CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"

EXPECTED = {
    "multi_gpu_ddp.yaml": (DistributedType.MULTI_GPU, 1, "bf16"),
    "fsdp.yaml": (DistributedType.FSDP, 1, "bf16"),
    "fsdp_report_generation.yaml": (DistributedType.FSDP, 1, "bf16"),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 1, "bf16"),
    "multi_node.yaml": (DistributedType.MULTI_GPU, 2, "bf16"),
    "cpu_2_processes.yaml": (DistributedType.MULTI_GPU, 1, "no"),
}


def test_every_config_is_listed_and_documented():
    assert sorted(path.name for path in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)
    readme = (CONFIG_DIR / "README.md").read_text()
    for name in EXPECTED:
        assert f"--config_file configs/accelerate/{name}" in readme


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads(name):
    config = load_config_from_file(str(CONFIG_DIR / name))
    distributed_type, num_machines, mixed_precision = EXPECTED[name]
    assert (config.distributed_type, config.num_machines, config.mixed_precision) == (
        distributed_type,
        num_machines,
        mixed_precision,
    )
    assert config.num_processes >= 2 and config.num_processes % config.num_machines == 0
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2
        assert set(config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")) == {"MeritLayer", "BertLayer"}
    if name == "fsdp_report_generation.yaml":
        assert config.fsdp_config["fsdp_version"] == 2
        wrapped = set(config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","))
        assert wrapped == {"MeritLayer", "LlamaDecoderLayer"}
    if name == "deepspeed_zero2.yaml":
        assert config.deepspeed_config["zero_stage"] == 2
    if name == "cpu_2_processes.yaml":
        assert config.num_processes == 2 and not config.use_cpu  # ACCELERATE_USE_CPU=1 comes from the environment


def test_fsdp_wraps_layers_that_exist():
    from modeling_merit import MeritConfig, MeritForPreTraining

    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    classes = {type(module).__name__ for module in model.modules()}
    wrapped = load_config_from_file(str(CONFIG_DIR / "fsdp.yaml")).fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
    assert set(wrapped.split(",")) <= classes


# Where each shipped config is run on this CPU-only machine, or why it cannot be: no config goes unexercised silently.
RUN_BY = {
    "cpu_2_processes.yaml": "tests/test_train_distributed.py::test_train_merit_with_two_processes",
    # the GPU DDP file on the CPU (ACCELERATE_USE_CPU=1, --num_processes 2, --mixed_precision no): the baseline of
    # the multi-node test, which runs multi_node.yaml as two machine ranks on this host
    "multi_gpu_ddp.yaml": "tests/test_train_multi_node.py::test_two_machine_ranks_train_like_two_processes_on_one_machine",
    "multi_node.yaml": "tests/test_train_multi_node.py::test_two_machine_ranks_train_like_two_processes_on_one_machine",
    # accelerate shards only on accelerators, so its wrap policy runs through torch.distributed on 2 gloo ranks, and
    # train_merit.py refuses the file on the CPU instead of training unsharded
    "fsdp.yaml": "tests/test_train_sharded.py::test_fsdp2_pretraining_on_two_ranks_equals_one_process_and_resumes_exactly",
    "fsdp_report_generation.yaml": (
        "tests/test_train_sharded.py::test_fsdp2_report_generation_with_lora_on_two_ranks_equals_one_process"
    ),
}
CANNOT_RUN_HERE = {
    "deepspeed_zero2.yaml": (
        "DeepSpeed is not a dependency of the project (not installed here), its ZeRO engine needs CUDA (NCCL, fused "
        "optimizers) and accelerate runs DeepSpeed configs on the CPU as plain data parallelism, which train_merit.py "
        "refuses (test_train_sharded.py::test_a_sharding_config_that_would_run_unsharded_is_refused); only its "
        "loading is tested here"
    ),
}


def test_every_config_is_run_on_cpu_or_says_why_not():
    assert sorted(RUN_BY.keys() | CANNOT_RUN_HERE.keys()) == sorted(EXPECTED)
    for target in RUN_BY.values():
        path, name = target.split("::")
        assert f"def {name}(" in (REPO_ROOT / path).read_text(), f"{target} does not exist"


@pytest.mark.parametrize("name", sorted(CANNOT_RUN_HERE))
def test_config_that_cannot_run_on_this_machine(name):
    pytest.skip(f"{name} is not run: {CANNOT_RUN_HERE[name]}")
