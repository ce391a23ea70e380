"""What int8 quantisation of the exported ECG encoder costs: zero-shot and linear-probe macro AUROC on PTB-XL's test
fold (fold 10 of the shipped excerpt, superdiagnostic classes), ONNX Runtime fp32 vs int8, with a paired bootstrap
95 % interval of the difference, and the file sizes.

Method. The checkpoint (`--model`, default the `make demo` output) is exported with
`merit_cli.onnx_export.export_onnx(..., int8=True)`. Every split is preprocessed once by the checkpoint's processor
(`merit_evaluation.data.preprocess_split`) and run through both ONNX files. Zero-shot: the class prompts of the
evaluation (`merit_evaluation.prompts.class_prompts`: registry descriptions in `DEFAULT_TEMPLATES` plus German prompts)
embedded once by the PyTorch text tower, scores `(1 + cosine) / 2` (`zero_shot_scores`): only the ECG side changes.
Linear probe: one probe trained on the fp32 features of the training folds with the evaluation's early stopping
on validation (`merit_evaluation.probing.train_linear_probe`), applied to the test features of both files, as a
deployment would apply a probe trained once to features of the quantised encoder. Differences are int8 minus fp32;
the interval resamples the test records (`merit_evaluation.metrics.bootstrap_indices`), the same resamples for both
files.

    python benchmarks/onnx_int8_accuracy.py                                    # outputs/merit-ptbxl-sample
    python benchmarks/onnx_int8_accuracy.py --model path/to/checkpoint --resamples 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
SUPERCLASSES_LABEL_SET = "superdiagnostic"


def encode(session, processed) -> tuple:
    """`(pooled, embedding)` of every record of a preprocessed split with one ONNX Runtime session."""
    import numpy as np

    pooled, embedding = [], []
    for start in range(0, len(processed), 64):
        rows = processed[start : start + 64]
        feeds = {
            "input_values": np.asarray(rows["input_values"], dtype=np.float32),
            "lead_mask": np.asarray(rows["lead_mask"], dtype=np.int64),
        }
        batch_pooled, batch_embedding = session.run(["pooled", "embedding"], feeds)
        pooled.append(batch_pooled)
        embedding.append(batch_embedding)
    return np.concatenate(pooled), np.concatenate(embedding)


def paired_difference(labels, fp32_scores, int8_scores, resamples: int, seed: int) -> dict:
    """Macro AUROC of both score sets, their difference and its percentile interval over paired resamples."""
    import numpy as np

    from merit_evaluation.metrics import bootstrap_indices, macro_roc_auc, percentile_interval

    fp32, int8 = macro_roc_auc(labels, fp32_scores), macro_roc_auc(labels, int8_scores)
    deltas = []
    for resample in range(resamples):
        index = bootstrap_indices(len(labels), resample, seed)
        try:
            deltas.append(
                macro_roc_auc(labels[index], int8_scores[index]) - macro_roc_auc(labels[index], fp32_scores[index])
            )
        except ValueError:  # a resample where no class has both positives and negatives
            deltas.append(np.nan)
    low, high = percentile_interval(np.asarray(deltas, dtype=np.float64), 0.95)
    return {"fp32": fp32, "int8": int8, "delta": int8 - fp32, "delta_ci95": [low, high]}


def run(model: str, data_dir: str, resamples: int, seed: int, epochs: int) -> dict:
    import onnxruntime

    from dataset_scripts.common import get_class_names
    from merit_cli.onnx_export import export_onnx
    from merit_evaluation.data import load_evaluation_dataset, preprocess_split, split_labels
    from merit_evaluation.harness import TrainingOptions
    from merit_evaluation.probing import probe_probabilities, train_linear_probe
    from merit_evaluation.prompts import class_prompts
    from modeling_merit import MeritModel, MeritProcessor
    from modeling_merit.zero_shot_merit import embed_class_prompts, zero_shot_scores

    processor = MeritProcessor.from_pretrained(model)
    torch_model = MeritModel.from_pretrained(model).eval()
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as workdir:
        exported = export_onnx(model, Path(workdir) / "onnx", int8=True)
        splits = load_evaluation_dataset("ptbxl", data_dir, SUPERCLASSES_LABEL_SET, cache_dir=Path(workdir) / "cache")
        class_names = get_class_names(splits)
        processed = {name: preprocess_split(split, processor.feature_extractor) for name, split in splits.items()}
        labels = {name: split_labels(split) for name, split in splits.items()}
        sessions = {
            precision: onnxruntime.InferenceSession(exported["files"][key], providers=["CPUExecutionProvider"])
            for precision, key in (("fp32", "ecg_encoder"), ("int8", "ecg_encoder_int8"))
        }
        outputs = {
            precision: {name: encode(session, split) for name, split in processed.items()}
            for precision, session in sessions.items()
        }
    prompts = class_prompts("ptbxl", data_dir, SUPERCLASSES_LABEL_SET, class_names)
    class_embeddings = embed_class_prompts(torch_model, processor, prompts).numpy()
    zero_shot = paired_difference(
        labels["test"],
        zero_shot_scores(outputs["fp32"]["test"][1], class_embeddings),
        zero_shot_scores(outputs["int8"]["test"][1], class_embeddings),
        resamples,
        seed,
    )
    options = TrainingOptions(epochs=epochs, patience=10, learning_rates=[1e-3], weight_decays=[0.0], batch_size=64)
    probe = train_linear_probe(
        outputs["fp32"]["train"][0], labels["train"], outputs["fp32"]["validation"][0], labels["validation"],
        options, seed,
    )  # fmt: skip
    linear_probe = paired_difference(
        labels["test"],
        probe_probabilities(probe.head, outputs["fp32"]["test"][0]),
        probe_probabilities(probe.head, outputs["int8"]["test"][0]),
        resamples,
        seed,
    )
    embedding_cosine = (outputs["fp32"]["test"][1] * outputs["int8"]["test"][1]).sum(axis=1)
    return {
        "model": str(model),
        "n_test": len(labels["test"]),
        "classes": list(class_names),
        "zero_shot_macro_auroc": zero_shot,
        "linear_probe_macro_auroc": linear_probe,
        "embedding_cosine_fp32_int8": {"min": float(embedding_cosine.min()), "mean": float(embedding_cosine.mean())},
        "file_bytes": {name: exported["sizes"][name] for name in ("ecg_encoder", "ecg_encoder_int8")},
        "text_file_bytes": {name: exported["sizes"][name] for name in ("text_encoder", "text_encoder_int8")},
        "resamples": resamples,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO_ROOT / "outputs" / "merit-ptbxl-sample"))
    parser.add_argument("--data_dir", default=str(REPO_ROOT / "data" / "ptbxl-sample"))
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100, help="linear-probe epochs (early stopping on validation)")
    parser.add_argument("--output", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model} is not a checkpoint folder; run `make demo` first or pass --model.")
    result = run(args.model, args.data_dir, args.resamples, args.seed, args.epochs)
    print(f"int8 vs fp32 ECG encoder (ONNX Runtime), PTB-XL test fold, {result['n_test']} records, {args.model}")
    for task in ("zero_shot_macro_auroc", "linear_probe_macro_auroc"):
        entry = result[task]
        low, high = entry["delta_ci95"]
        interval = "undefined" if low is None else f"[{low:+.4f}, {high:+.4f}]"
        print(
            f"  {task:26s} fp32 {entry['fp32']:.4f}  int8 {entry['int8']:.4f}  delta {entry['delta']:+.4f}  "
            f"95% CI {interval} ({result['resamples']} paired resamples)"
        )
    cosine = result["embedding_cosine_fp32_int8"]
    print(f"  embedding cosine fp32 vs int8: min {cosine['min']:.4f}, mean {cosine['mean']:.4f}")
    sizes, text = result["file_bytes"], result["text_file_bytes"]
    print(
        f"  sizes: ecg_encoder {sizes['ecg_encoder'] / 1e6:.2f} MB -> int8 {sizes['ecg_encoder_int8'] / 1e6:.2f} MB; "
        f"text_encoder {text['text_encoder'] / 1e6:.2f} MB -> int8 {text['text_encoder_int8'] / 1e6:.2f} MB"
    )
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
