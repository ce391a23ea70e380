"""The accelerate configurations in `configs/accelerate/` load with accelerate's own reader and say what they claim."""

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from train_helpers import REPO_ROOT


CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"

EXPECTED = {
    "multi_gpu_ddp.yaml": (DistributedType.MULTI_GPU, 1, "bf16"),
    "fsdp.yaml": (DistributedType.FSDP, 1, "bf16"),
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
