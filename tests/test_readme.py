"""The README's quick-start snippet runs as written against a saved checkpoint."""

import re
import subprocess
import sys

import pytest
import torch

from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor


def quick_start_snippet(readme: str) -> str:
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_quick_start_runs(tmp_path, repo_root, tokenizer):
    torch.manual_seed(0)
    checkpoint = tmp_path / "checkpoint"
    config = MeritConfig.from_preset("tiny", projection_dim=384)  # the demo's shared width (MiniLM's)
    MeritForPreTraining(config).save_pretrained(checkpoint)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(checkpoint)

    snippet = quick_start_snippet((repo_root / "README.md").read_text())
    assert 'checkpoint = "outputs/merit-ptbxl-sample"' in snippet
    snippet = snippet.replace('"outputs/merit-ptbxl-sample"', repr(str(checkpoint)))
    snippet += (
        "\nassert ecg_embedding.shape == (1, 384), ecg_embedding.shape"
        "\nassert text_embedding.shape == (2, 384), text_embedding.shape"
        "\nassert similarity.shape == (2,)\nprint('quick start ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=repo_root, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "quick start ok" in result.stdout
