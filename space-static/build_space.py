"""Build the static Space (`make space-static`): a folder ready to push to a Hugging Face Space with `sdk: static`.

    python space-static/build_space.py                                   # outputs/merit-ptbxl-sample -> outputs/space-static
    python space-static/build_space.py --model path/to/checkpoint --output_dir out --precision fp32

What it does:

1. `npm ci` in `space-static/` (onnxruntime-web at the version of the committed `package-lock.json`; nothing is
   fetched at run time by the page) and copies only the files the page loads into `vendor/`: the WASM-only ES module
   `ort.wasm.min.mjs`, `ort-wasm-simd-threaded.wasm` and `ort-wasm-simd-threaded.mjs`, plus the runtime's license;
2. exports the checkpoint with `merit_cli.onnx_export.export_onnx(..., int8=True)` and copies into `models/` the ECG
   and text encoders of `--precision` (`int8` by default: a few MB for the compact preset's ECG encoder;
   `fp32` gives scores equal to the Python pipeline's), `preprocessing.json`, `zero_shot_labels.json`,
   `tokenizer.json` and a `manifest.json` naming them;
3. copies the page (`index.html`, `app.js`, `merit-ecg.js`, the Space card `README.md`) and the PTB-XL example records
   of the Gradio Space (`space/examples/`, CC BY 4.0, with their README and license) into `examples/`;
4. prints the size of every part and of the whole folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


SPACE_STATIC = Path(__file__).resolve().parent
REPO_ROOT = SPACE_STATIC.parent
EXAMPLES_SOURCE = REPO_ROOT / "space" / "examples"
PAGE_FILES = ("index.html", "app.js", "merit-ecg.js", "README.md")
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
# The npm package declares its license in package.json and ships no license file; this is the MIT license's text.
MIT_LICENSE = """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
PRECISIONS = {"int8": ("ecg_encoder_int8", "text_encoder_int8"), "fp32": ("ecg_encoder", "text_encoder")}


def install_runtime(runtime_dir: str | Path | None = None, npm: str = "npm") -> Path:
    """`npm ci` from the committed lockfile in `runtime_dir` (default `space-static/`; another folder gets a copy of
    `package.json` and `package-lock.json`), skipped when its node_modules already holds the locked version; returns
    the package's `dist/` folder."""
    runtime_dir = SPACE_STATIC if runtime_dir is None else Path(runtime_dir)
    if runtime_dir.resolve() != SPACE_STATIC:
        runtime_dir.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(SPACE_STATIC / name, runtime_dir / name)
    lock = json.loads((runtime_dir / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    installed = runtime_dir / "node_modules" / "onnxruntime-web" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != locked:
        if shutil.which(npm) is None:
            raise SystemExit(f"`{npm}` was not found: install Node.js and npm to build the static Space.")
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=runtime_dir, check=True
        )  # fmt: skip
    return installed.parent / "dist"


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def build(
    model: str | Path, output_dir: str | Path, precision: str = "int8", runtime_dir: str | Path | None = None
) -> dict:
    """Builds the Space folder (`runtime_dir`: where `npm ci` runs, see `install_runtime`); returns
    `{"output_dir", "sizes": {part: bytes}, "manifest"}`."""
    from merit_cli.onnx_export import PREPROCESSING_FILE, ZERO_SHOT_LABELS_FILE, export_onnx

    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {list(PRECISIONS)}, got {precision!r}.")
    model = Path(model)
    if not (model / "config.json").is_file():
        raise SystemExit(f"{model} is not a checkpoint folder: run `make demo` first, or pass --model.")
    output_dir = Path(output_dir)
    dist = install_runtime(runtime_dir)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    for sub in ("vendor", "models", "examples"):
        (output_dir / sub).mkdir(parents=True)

    for name in RUNTIME_FILES:
        shutil.copy2(dist / name, output_dir / "vendor" / name)
    package = json.loads((dist.parent / "package.json").read_text())
    (output_dir / "vendor" / "LICENSE").write_text(
        f"{package['name']} {package['version']} (ONNX Runtime Web, Copyright (c) Microsoft Corporation), "
        f"{package['license']} License:\n\n{MIT_LICENSE}"
    )
    for name in PAGE_FILES:
        shutil.copy2(SPACE_STATIC / name, output_dir / name)

    with tempfile.TemporaryDirectory(prefix="merit-space-static-") as workdir:
        exported = export_onnx(model, workdir, int8=precision == "int8")
        ecg_key, text_key = PRECISIONS[precision]
        files = exported["files"]
        for key in (ecg_key, text_key, "preprocessing", "zero_shot_labels"):
            shutil.copy2(files[key], output_dir / "models" / Path(files[key]).name)
        shutil.copy2(Path(workdir) / "tokenizer.json", output_dir / "models" / "tokenizer.json")
    manifest = {
        "model": model.name,
        "precision": precision,
        "ecg_encoder": Path(files[ecg_key]).name,
        "text_encoder": Path(files[text_key]).name,
        "preprocessing": PREPROCESSING_FILE,
        "zero_shot_labels": ZERO_SHOT_LABELS_FILE,
        "tokenizer": "tokenizer.json",
    }
    (output_dir / "models" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    examples = json.loads((SPACE_STATIC / "examples.json").read_text())
    for example in examples:
        for suffix in (".hea", ".dat"):
            shutil.copy2(EXAMPLES_SOURCE / f"{example['record']}{suffix}", output_dir / "examples")
    for name in ("README.md", "LICENSE.txt"):
        shutil.copy2(EXAMPLES_SOURCE / name, output_dir / "examples" / name)
    (output_dir / "examples" / "index.json").write_text(json.dumps(examples, indent=2) + "\n")

    sizes = {sub: folder_size(output_dir / sub) for sub in ("vendor", "models", "examples")}
    sizes.update(
        {
            name: (output_dir / "models" / name).stat().st_size
            for name in (manifest["ecg_encoder"], manifest["text_encoder"])
        }
    )
    sizes["total"] = folder_size(output_dir)
    return {"output_dir": str(output_dir), "sizes": sizes, "manifest": manifest}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO_ROOT / "outputs" / "merit-ptbxl-sample"))
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "outputs" / "space-static"))
    parser.add_argument("--precision", choices=list(PRECISIONS), default="int8")
    parser.add_argument("--runtime_dir", default=None, help="where `npm ci` runs (default: space-static/)")
    args = parser.parse_args(argv)
    result = build(args.model, args.output_dir, args.precision, args.runtime_dir)
    print(f"Static Space built in {result['output_dir']} ({args.precision} encoders of {args.model}):")
    for part, size in result["sizes"].items():
        print(f"  {part:28s} {size / 1e6:8.2f} MB")
    print("Push the folder's content to a Space created with `sdk: static` (see its README.md).")
    return result


if __name__ == "__main__":
    sys.exit(main() and 0)
