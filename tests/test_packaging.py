"""A non-editable `pip install .` in a fresh virtual environment works without the source tree or any extra.

The fresh environment takes MERIT from the installed package only. Its third-party dependencies are exactly the
closure of the package's core requirements (`install_requires`, no extras), linked from the environment running
the tests into a folder the fresh environment reads through a `.pth` file (the tests run offline, so nothing can
be downloaded). A module the core requirements do not bring is therefore missing there, as it would be after a
plain `pip install merit-ecg`.
"""

import configparser
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_readme import quick_start_snippet


CORE_PACKAGES = ("modeling_merit", "dataset_scripts", "merit_training", "merit_evaluation", "merit_cli")
PACKAGES = (*CORE_PACKAGES, "merit_plotting")  # merit_plotting needs the `plot` extra

pytestmark = pytest.mark.slow


def tracked_files(repo_root: Path) -> list[str]:
    """The files git tracks: exactly what a clean clone holds."""
    if shutil.which("git") is None or not (repo_root / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone holds")
    listing = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True)
    return [name for name in listing.stdout.splitlines() if (repo_root / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, repo_root):
    """(python of a fresh venv with MERIT pip-installed from a clean copy of the checkout, its site-packages)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    files = tracked_files(repo_root)
    for name in files:
        if name.startswith(("data/", "tests/", "docs/", "space/examples/")):
            continue  # not part of the package; keeps the copy small
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / name, source / name)

    environment = work / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    dependencies = site_packages / "test-dependencies.pth"
    dependencies.write_text(sysconfig.get_paths()["purelib"] + "\n")  # setuptools, for the build only

    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index"]
        + ["--no-build-isolation", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]

    (metadata,) = site_packages.glob("merit_ecg-*.dist-info")
    core_site = work / "core-dependencies"
    core_site.mkdir()
    for distribution in dependency_closure(importlib.metadata.Distribution.at(metadata).requires or []):
        for entry in top_level_entries(distribution):
            if not (core_site / entry.name).exists():
                (core_site / entry.name).symlink_to(entry)
    dependencies.write_text(f"{core_site}\n")
    return python, site_packages, files


def dependency_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that `requirements` (without extras) need, transitively."""
    found, pending = {}, [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in found:
            found[name] = importlib.metadata.distribution(requirement.name)
            pending.extend(Requirement(text) for text in found[name].requires or [])
    return list(found.values())


def top_level_entries(distribution: importlib.metadata.Distribution) -> list[Path]:
    """The top-level modules, packages and metadata folder a distribution installed into its site-packages."""
    root = Path(distribution.locate_file(""))
    names = {
        file.parts[0] for file in distribution.files or [] if file.parts and file.parts[0] not in ("..", "__pycache__")
    }
    return [root / name for name in sorted(names) if (root / name).exists()]


def run_outside_checkout(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HOME": str(cwd)},
    )


def test_packages_import_from_the_installed_copy(installed, tmp_path):
    python, site_packages, _ = installed
    code = textwrap.dedent(
        f"""
        import {", ".join(CORE_PACKAGES)}
        for module in ({", ".join(CORE_PACKAGES)}):
            print(module.__file__)
        """
    )
    result = run_outside_checkout(python, code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    locations = result.stdout.split()
    assert len(locations) == len(CORE_PACKAGES)
    assert all(Path(location).is_relative_to(site_packages) for location in locations), locations


def test_plotting_without_its_extra_names_the_extra_to_install(installed, tmp_path):
    python, _, _ = installed
    result = run_outside_checkout(python, "import merit_plotting", tmp_path)
    assert result.returncode != 0
    assert "pip install 'merit-ecg[plot]'" in result.stderr


def test_every_data_file_of_the_packages_is_installed(installed):
    _, site_packages, files = installed
    data_files = [name for name in files if name.split("/")[0] in PACKAGES and not name.endswith(".py")]
    assert data_files, "expected label tables and templates in the packages"
    missing = [name for name in data_files if not (site_packages / name).is_file()]
    assert not missing, f"tracked files the installed package lacks (add them to package data): {missing}"


def test_readme_quick_start_runs_against_the_installed_copy(installed, tmp_path, repo_root, minilm_dir):
    python, _, _ = installed
    checkpoint = tmp_path / "checkpoint"
    save = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoTokenizer
        from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

        torch.manual_seed(0)
        MeritForPreTraining(MeritConfig.from_preset("tiny", projection_dim=256)).save_pretrained({str(checkpoint)!r})
        tokenizer = AutoTokenizer.from_pretrained({str(minilm_dir)!r})
        MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained({str(checkpoint)!r})
        """
    )
    snippet = quick_start_snippet((repo_root / "README.md").read_text())
    record = "data/ptbxl-sample/records500/00000/00001_hr"
    assert record in snippet
    snippet = snippet.replace('"outputs/merit-ptbxl-sample"', repr(str(checkpoint)))
    snippet = snippet.replace(record, str(repo_root / record))
    snippet += "\nassert ecg_embedding.shape == (1, 256)\nprint('quick start ok')\n"

    result = run_outside_checkout(python, save + snippet, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "quick start ok" in result.stdout


def test_the_merit_command_is_installed_and_runs(installed, tmp_path, repo_root, minilm_dir):
    """The `merit` console script of the fresh install (entry point in setup.cfg) embeds a real record."""
    python, _, _ = installed
    checkpoint = tmp_path / "checkpoint"
    save = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoTokenizer
        from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

        torch.manual_seed(0)
        MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained({str(checkpoint)!r})
        tokenizer = AutoTokenizer.from_pretrained({str(minilm_dir)!r})
        MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained({str(checkpoint)!r})
        """
    )
    assert run_outside_checkout(python, save, tmp_path).returncode == 0
    merit = python.parent / "merit"
    environment = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    version = subprocess.run([merit, "--version"], capture_output=True, text=True, timeout=300, env=environment)
    setup = configparser.ConfigParser()
    setup.read(repo_root / "setup.cfg")
    assert version.stdout.strip() == f"merit {setup['metadata']['version']} (merit-ecg)", version.stderr[-2000:]

    record = repo_root / "data" / "ptbxl-sample" / "records100" / "00000" / "00001_lr.hea"
    output = tmp_path / "embeddings.csv"
    result = subprocess.run(
        [merit, "embed", str(record), "--model", str(checkpoint), "--output", str(output), "--quiet"],
        capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header, row = output.read_text().splitlines()
    assert header == "path,record,sampling_rate,num_samples,leads,embedding" and row.startswith(f"{record},00001_lr,")
    assert len(row.split(",")[-1].split()) == 64  # the tiny preset's pooled embedding
