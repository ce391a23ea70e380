"""Print the project's import graph and check that its dependencies point down.

Usage (from the repository root):

    python utils/import_graph.py            # the package-level graph, then the rule check
    python utils/import_graph.py --modules  # every module-level edge between the project's units

The project's units, bottom to top (a unit may import only units below it):

    modeling_merit      the Hub-shipped model code: imports nothing from the repository
    dataset_scripts     builders and the dataset registry
    merit_plotting      figures
    merit_training      pretraining / report-generation training; may use merit_evaluation's metrics and prompts
    merit_evaluation    evaluation runners
    merit_cli           the `merit` console command and the ONNX export: a user-facing front end over the model,
                        the dataset readers and the evaluation helpers, so it sits above all of them
    scripts             train_merit.py, eval_merit.py, ablation_merit.py, space/, space-static/, benchmarks/, metrics/
                        (never each other)

Only the abstract syntax tree is read (nothing is imported), so this runs without the project's dependencies.
Exit status 1 when a rule is broken.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("modeling_merit", "dataset_scripts", "merit_plotting", "merit_training", "merit_evaluation", "merit_cli")
LAYER = {name: index for index, name in enumerate(PACKAGES)}
SCRIPT_GLOBS = ("*.py", "space/*.py", "space-static/*.py", "benchmarks/*.py", "metrics/*/*.py")
SCRIPT_MODULES = {"train_merit", "eval_merit", "ablation_merit", "app"}
# Modules of merit_evaluation that training may import directly.
SHARED_EVALUATION_MODULES = ("merit_evaluation.metrics", "merit_evaluation.prompts", "merit_evaluation.thresholds")
# merit_evaluation's building blocks (the package `__init__` and what it imports): everything else in the package is
# an evaluation runner, which no merit_training module may reach, directly or through other imports.
EVALUATION_BUILDING_BLOCKS = {
    "merit_evaluation",
    "merit_evaluation._validation",
    "merit_evaluation.label_fractions",
    "merit_evaluation.metrics",
    "merit_evaluation.prompts",
    "merit_evaluation.report_metrics",
    "merit_evaluation.results",
    "merit_evaluation.shifts",
    "merit_evaluation.thresholds",
}


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[module_name(path)] = path
    for pattern in SCRIPT_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            if path.parent.name != "utils":
                files["script:" + str(path.relative_to(ROOT))] = path
    return files


def imported_modules(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(":")[-1] if not name.startswith("script:") else ""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if is_package else package.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                found.update(f"{target}.{alias.name}" for alias in node.names)
                found.add(target)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def resolve(target: str, files: dict[str, Path]) -> str | None:
    """The project module `target` names (longest existing prefix), or None for third-party modules."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in files:
            return candidate
    if parts[0] in SCRIPT_MODULES:
        return "script:" + parts[0] + ".py"
    return None


def unit(module: str) -> str:
    return "scripts" if module.startswith("script:") else module.split(".")[0]


def all_module_edges(files: dict[str, Path]) -> set[tuple[str, str]]:
    """Every import between project modules, including within a unit; importing `a.b.c` also runs `a` and `a.b`."""
    edges = set()
    for name, path in files.items():
        for target in imported_modules(name, path):
            resolved = resolve(target, files)
            if resolved is None or resolved == name:
                continue
            edges.add((name, resolved))
            parts = resolved.split(".")
            for end in range(1, len(parts)):
                parent = ".".join(parts[:end])
                if parent in files and parent != name:
                    edges.add((name, parent))
    return edges


def module_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges between different units (and from a script to another script)."""
    return {(source, target) for source, target in edges if unit(source) != unit(target) or unit(source) == "scripts"}


def reached_runners(edges: set[tuple[str, str]], start: str) -> dict[str, list[str]]:
    """The evaluation runners that importing `start` executes, each with the import chain that reaches it."""
    chains = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop()
        for source, target in sorted(edges):
            if source == current and target not in chains:
                chains[target] = chains[current] + [target]
                queue.append(target)
    return {
        module: chain
        for module, chain in chains.items()
        if unit(module) == "merit_evaluation" and module not in EVALUATION_BUILDING_BLOCKS
    }


def violations(all_edges: set[tuple[str, str]], files: dict[str, Path]) -> list[str]:
    problems = []
    for source, target in sorted(module_edges(all_edges)):
        source_unit, target_unit = unit(source), unit(target)
        if source_unit == "scripts":
            if target_unit == "scripts":
                problems.append(f"script imports a script: {source} -> {target}")
            continue
        if target_unit == "scripts":
            problems.append(f"package imports a script: {source} -> {target}")
        elif LAYER[target_unit] > LAYER[source_unit]:
            shared = source_unit == "merit_training" and target in SHARED_EVALUATION_MODULES + ("merit_evaluation",)
            if not shared:
                problems.append(f"upward arrow {source_unit} -> {target_unit}: {source} -> {target}")
    for module in sorted(files):
        if unit(module) == "merit_training":
            for chain in sorted(reached_runners(all_edges, module).values()):
                problems.append(f"training reaches an evaluation runner: {' -> '.join(chain)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="print module-level edges instead of package-level")
    args = parser.parse_args()
    files = project_files()
    all_edges = all_module_edges(files)
    edges = module_edges(all_edges)
    if args.modules:
        for source, target in sorted(edges):
            print(f"{source} -> {target}")
    else:
        by_unit = defaultdict(set)
        for source, target in edges:
            by_unit[(unit(source), unit(target))].add(f"{source} -> {target}")
        for (source_unit, target_unit), examples in sorted(by_unit.items()):
            print(f"{source_unit} -> {target_unit}  ({len(examples)} imports)")
    problems = violations(all_edges, files)
    print(f"\n{len(problems)} rule violation(s)" + (":" if problems else ""))
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
