# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Does a findings-conditioned report generator write what its findings say? For the records of one evaluation run's
`generations.jsonl`, the statements its classifier put into each prompt are scored with the clinical-efficacy
definitions (as if they were the report), and each statement is counted in the findings, in the generated reports
(by the CE extractor) and in the references. An experiment script, not part of the package:

    python train_merit.py --task report_generation ... --findings superdiagnostic,rhythm --output_dir runs/findings
    python eval_merit.py --task report-generation --model_name_or_path runs/findings --report_split validation \\
        --no_baselines --data_dir data/ptbxl-sample --output_dir runs/findings/val
    python utils/findings_vs_reports.py runs/findings runs/findings/val/generations.jsonl --split validation

Prints the findings' CE-F1 micro / macro next to the generated reports' (95 % bootstrap intervals), then one row per
statement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from merit_evaluation.clinical_efficacy import (
    CE_CLASSES,
    ClinicalEfficacyStatistics,
    clinical_efficacy_from_statistics,
    extract_statements,
    label_matrix,
    statements_from_scp_codes,
)


def findings_table(
    findings: Sequence[set[str]],
    generated: Sequence[str],
    references: Sequence[str],
    scp_codes: Sequence[Sequence[str]],
    statements: Sequence[str],
    n_bootstrap: int = 1000,
) -> str:
    """
    Markdown: CE-F1 micro / macro of the findings and of the generated reports, then per statement how many records
    have it in their findings, in their generated report, in both, and in their reference and their labels.

    Args:
        findings (`Sequence[set[str]]`): each record's findings (statement names; those that are CE classes count).
        generated (`Sequence[str]`), references (`Sequence[str]`): each record's generated and reference report.
        scp_codes (`Sequence[Sequence[str]]`): each record's PTB-XL statement codes.
        statements (`Sequence[str]`): the findings statements, in row order.
    """
    truth = label_matrix([statements_from_scp_codes(codes) for codes in scp_codes])
    rows = ["| scored as the report | CE-F1 micro | CE-F1 macro |", "|---|---|---|"]
    in_generated = [extract_statements(text) for text in generated]
    for name, predicted in (
        ("the findings in the prompt", [set(labels) & set(CE_CLASSES) for labels in findings]),
        ("the generated report", in_generated),
    ):
        result = clinical_efficacy_from_statistics(
            ClinicalEfficacyStatistics(truth, label_matrix(predicted)), n_bootstrap=n_bootstrap
        )
        cells = [
            f"{value.value:.3f}" + (f" ({value.ci_low:.3f}–{value.ci_high:.3f})" if value.ci_low is not None else "")
            for value in (result.metrics["ce_f1_micro"], result.metrics["ce_f1_macro"])
        ]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    in_references = [extract_statements(text) for text in references]
    labelled = [statements_from_scp_codes(codes) for codes in scp_codes]
    rows += [
        "",
        "| statement | in the findings | in the generated report | in both | in the reference | in the labels |",
        "|---|---|---|---|---|---|",
    ]
    for statement in statements:
        counts = (
            sum(statement in labels for labels in findings),
            sum(statement in labels for labels in in_generated),
            sum(statement in a and statement in b for a, b in zip(findings, in_generated)),
            sum(statement in labels for labels in in_references),
            sum(statement in labels for labels in labelled),
        )
        rows.append(f"| {statement} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> str:
    import torch
    from transformers import AutoModel, AutoProcessor

    from merit_evaluation.data import preprocess_split
    from merit_evaluation.report_generation import load_report_dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a report generator trained with --findings")
    parser.add_argument("generations", help="the generations.jsonl of its evaluation run")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--data_dir", default="data/ptbxl-sample")
    parser.add_argument("--generator", default="MERIT", help="the key of the generator in the file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(args.checkpoint, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(args.checkpoint, trust_remote_code=True)
    if not getattr(model.config, "findings_labels", None):
        raise SystemExit(f"{args.checkpoint} has no findings classifier (trained without --findings).")
    records = {}
    for line in Path(args.generations).read_text().splitlines():
        row = json.loads(line)
        records[str(row["record_id"])] = row
    split = load_report_dataset(args.data_dir)[args.split]
    keep = [index for index, ecg_id in enumerate(split["ecg_id"]) if str(ecg_id) in records]
    if not keep:
        raise SystemExit(f"No record of {args.generations} is in the {args.split} split of {args.data_dir}.")
    split = split.select(keep)
    processed = preprocess_split(split.remove_columns(["report", "multi_hot"]), processor.feature_extractor)
    processed = processed.with_format("torch", columns=["input_values", "lead_mask"])[:]
    with torch.no_grad():
        _, _, pooled = model.encode_ecg(processed["input_values"], processed["lead_mask"], return_pooled=True)
        predicted = model.predict_findings(pooled).tolist()
    labels = model.config.findings_labels
    findings = [{label for label, present in zip(labels, row) if present} for row in predicted]
    names = split.features["labels"].feature.names
    rows = [records[str(ecg_id)] for ecg_id in split["ecg_id"]]
    table = findings_table(
        findings,
        [row["generations"][args.generator] for row in rows],
        [row["reference"] for row in rows],
        [[names[index] for index in record] for record in split["labels"]],
        labels,
    )
    print(f"{len(rows)} {args.split} records of {args.generations}\n\n{table}")
    return table


if __name__ == "__main__":
    main()
