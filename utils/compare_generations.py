# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Compare report generators across evaluation runs from the `generations.jsonl` files that `eval_merit.py --task
report-generation` writes (e.g. one checkpoint decoded two ways, which one evaluation run cannot hold: its
`--generate_kwargs` apply to every generator of the run). Each generator is named `FILE:NAME` (`NAME` is a key of
the file's `generations`, e.g. `MERIT` or `nearest-neighbour`; default `MERIT`); the first is the reference of the
paired differences. Only records scored in every file are used, matched by `record_id`, and each must have the same
reference report in every file. Files joined by `+` (`FILE+FILE+...[:NAME]`) make one generator whose metrics are
the mean of those files' (e.g. the same recipe trained with several seeds: each bootstrap resample scores every
seed on the same records and averages them, so the interval covers the records' sampling, averaged over seeds).

    python utils/compare_generations.py runs/greedy/generations.jsonl runs/beam3/generations.jsonl \\
        runs/greedy/generations.jsonl:nearest-neighbour
    python utils/compare_generations.py seed42/generations.jsonl:nearest-neighbour \\
        seed42/generations.jsonl+seed43/generations.jsonl+seed44/generations.jsonl

Prints two markdown tables: each generator's CE-F1 micro / macro, METEOR, ROUGE-L and BLEU-4 with 95 % bootstrap
intervals, then each one minus the first on the same resamples (bold where the interval excludes 0). BERTScore is
left out (no model is loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = ("ce_f1_micro", "ce_f1_macro", "meteor", "rougeL", "bleu4")


def parse_generator(spec: str) -> tuple[str, str]:
    """`FILE[:NAME]` -> `(file, name)`; the name defaults to `MERIT`."""
    path, _, name = spec.partition(".jsonl:")
    return (path + ".jsonl", name) if name else (spec, "MERIT")


def members(spec: str) -> list[str]:
    """The single-file generators a spec averages: `A.jsonl+B.jsonl:NAME` -> `["A.jsonl:NAME", "B.jsonl:NAME"]`;
    a spec without `+` is its own only member."""
    paths, name = parse_generator(spec)
    return [f"{path}:{name}" for path in paths.split("+")]


def load_generations(specs: list[str]) -> tuple[list[dict], list[list[str]]]:
    """The records scored in every file (first file's order) and, per single-file generator (`FILE[:NAME]`, see
    `members`), its report of each."""
    files = {}
    for path, _ in map(parse_generator, specs):
        if path not in files:
            rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            files[path] = {row["record_id"]: row for row in rows if row.get("scored", True)}
    first = files[parse_generator(specs[0])[0]]
    shared = [record for record in first if all(record in rows for rows in files.values())]
    if not shared:
        raise ValueError(f"No record is scored in every one of {sorted(files)}.")
    records = [first[record] for record in shared]
    reports = []
    for spec in specs:
        path, name = parse_generator(spec)
        rows = files[path]
        for record in records:
            row = rows[record["record_id"]]
            if row["reference"] != record["reference"]:
                raise ValueError(f"Record {record['record_id']} has another reference in {path}: not the same data.")
            if name not in row["generations"]:
                raise ValueError(f"{path} has no generator {name!r}; it has {sorted(row['generations'])}.")
        reports.append([rows[record["record_id"]]["generations"][name] for record in records])
    return records, reports


def comparison_tables(specs: list[str], n_bootstrap: int = 1000, seed: int = 0) -> str:
    """The markdown of the two tables of the module docstring."""
    from merit_evaluation.metrics import bootstrap_metric_values, difference_markdown, paired_bootstrap_differences
    from merit_evaluation.report_metrics import ReportStatistics

    flat = [member for spec in specs for member in members(spec)]
    records, reports = load_generations(flat)
    references = [record["reference"] for record in records]
    statements = [record["statements"] for record in records]
    by_member = {
        member: ReportStatistics(texts, references, bertscore=False, scp_codes=statements).values
        for member, texts in zip(flat, reports)
    }
    statistics = [mean_metrics([by_member[member] for member in members(spec)]) for spec in specs]
    n = len(records)

    def cell(value) -> str:
        return f"{value.value:.3f} ({value.ci_low:.3f}–{value.ci_high:.3f})"

    lines = [f"{n} records scored in every file.", "", "| generator | " + " | ".join(METRICS) + " |"]
    lines.append("|---" * (len(METRICS) + 1) + "|")
    for spec, stats in zip(specs, statistics):
        values = bootstrap_metric_values(stats, n, n_bootstrap, seed=seed)
        lines.append(f"| {spec} | " + " | ".join(cell(values[name]) for name in METRICS) + " |")
    lines += ["", f"| generator − {specs[0]} | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for spec, stats in zip(specs[1:], statistics[1:]):
        differences = paired_bootstrap_differences(stats, statistics[0], n, n_bootstrap, seed=seed)
        cells = [difference_markdown(differences[name]) for name in METRICS]
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_metrics(metric_values: list):
    """Weighted metrics (`WeightedMetrics` of `merit_evaluation.metrics`) that average several generators' metrics
    for the same sample weights; a single one is returned as it is."""
    if len(metric_values) == 1:
        return metric_values[0]

    def values(weights):
        each = [function(weights) for function in metric_values]
        return {name: sum(entry[name] for entry in each) / len(each) for name in each[0]}

    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generators", nargs="+", help="FILE[:NAME] of a generations.jsonl and a generator in it")
    parser.add_argument("--n_bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.generators) < 2:
        parser.error("give at least two generators to compare")
    print(comparison_tables(args.generators, args.n_bootstrap, args.seed))


if __name__ == "__main__":
    main()
