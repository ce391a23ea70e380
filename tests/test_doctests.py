"""The docstring examples of `modeling_merit/` are part of the suite (collected by the repository's `conftest.py`)."""

import subprocess
import sys

import pytest


@pytest.mark.slow  # a pytest run in a subprocess
def test_every_docstring_example_of_the_model_package_is_collected(repo_root):
    files_with_examples = sorted(
        path.name for path in (repo_root / "modeling_merit").glob("*.py") if ">>> " in path.read_text()
    )
    assert files_with_examples, "expected docstring examples in modeling_merit/"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "modeling_merit"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    collected_files = {line.split("::")[0].split("/")[-1] for line in collected.stdout.splitlines() if "::" in line}
    assert collected_files == set(files_with_examples)
