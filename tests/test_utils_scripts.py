# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""The experiment scripts of utils/: compare_checkpoints.py (the weighted metrics behind its paired comparison and
the tables it prints), compare_generations.py (paired comparison of generations.jsonl files), compare_text_towers.py
(nearest-report label agreement), rewrite_reports_in_english.py (the glossary rewrite), findings_vs_reports.py
(findings in the prompt vs statements in the generated report), retrieval_label_oracle.py (retrieval by the
records' own statements, and by simulated and linear-probe readers of a given AUROC) and
learned_extractor_baseline.py (a learned clinical-efficacy extractor against the rules)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from merit_evaluation.metrics import macro_roc_auc


def load_script(name: str):
    path = Path(__file__).resolve().parent.parent / "utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_checkpoints = load_script("compare_checkpoints")
compare_generations = load_script("compare_generations")
compare_text_towers = load_script("compare_text_towers")
rewrite_reports_in_english = load_script("rewrite_reports_in_english")
findings_vs_reports = load_script("findings_vs_reports")
retrieval_label_oracle = load_script("retrieval_label_oracle")
learned_extractor_baseline = load_script("learned_extractor_baseline")


def test_text_tower_neighbour_agreement():
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    queries = np.array([[3.0, 0.1], [0.1, 1.0], [1.0, 0.9]])  # nearest by cosine: bank rows 0, 1, 2
    bank_labels = [frozenset({"NORM"}), frozenset({"MI", "STTC"}), frozenset()]
    query_labels = [frozenset({"NORM"}), frozenset({"MI"}), frozenset()]
    neighbours, exact, jaccard = compare_text_towers.neighbour_agreement(queries, bank, query_labels, bank_labels)
    assert neighbours.tolist() == [0, 1, 2]
    assert exact.tolist() == [True, False, True]
    np.testing.assert_allclose(jaccard, [1.0, 0.5, 1.0])  # two empty sets agree


def scored_entry(seed: int, n_records: int = 40, n_reports: int = 30) -> dict:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_records, 3)) < 0.4).astype(int)
    labels[0], labels[1] = 1, 0  # every class has a positive and a negative
    return {
        "labels": labels,
        "scores": labels + rng.normal(0, 1.0 + seed, labels.shape),
        "ranks": rng.integers(1, n_reports + 1, n_reports),
        "chance_r5": 5 / n_reports,
        "n_reports": n_reports,
    }


def test_weighted_metrics_match_the_unweighted_ones_and_follow_the_resample_counts():
    entry = scored_entry(0)
    ones = np.ones((1, len(entry["labels"])))
    zero_shot = compare_checkpoints.zero_shot_metric(entry["labels"], entry["scores"])
    assert zero_shot(ones)["zero_shot"][0] == pytest.approx(macro_roc_auc(entry["labels"], entry["scores"]))
    recall = compare_checkpoints.retrieval_metric(entry["ranks"])(np.ones((1, len(entry["ranks"]))))
    for k in (1, 5, 10):
        assert recall[f"R@{k}"][0] == pytest.approx(np.mean(entry["ranks"] <= k))
    # a resample that draws only the first query twice scores that query alone
    weights = np.zeros((1, len(entry["ranks"])))
    weights[0, 0] = 2
    only_first = compare_checkpoints.retrieval_metric(entry["ranks"])(weights)
    assert only_first["R@5"][0] == float(entry["ranks"][0] <= 5)


def test_tables_pair_every_checkpoint_with_the_first(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    log = [{"step": 8, "train/loss": 1.0}, {"step": 8, "val/contrastive_loss": 3.2, "val/contrastive_chance": 3.5}]
    (first / "training_log.jsonl").write_text("\n".join(json.dumps(entry) for entry in log))
    base, other = scored_entry(0), scored_entry(1)
    other["labels"] = base["labels"]  # the same validation records
    tables = compare_checkpoints.comparison_tables([str(first), str(second)], [base, other], n_bootstrap=50, seed=0)
    rows = tables.splitlines()
    assert rows[2].startswith(f"| {first} | 3.200 (3.500) | ") and rows[3].startswith(f"| {second} | — | ")
    assert f"| {second} | " in rows[-1] and len(rows[-1].split("|")) == 7  # name + 4 differences
    # the checkpoint against itself: every difference is exactly 0
    same = compare_checkpoints.comparison_tables(["a", "b"], [base, base], n_bootstrap=50, seed=0)
    assert same.splitlines()[-1] == "| b | " + " | ".join(["+0.000 (+0.000 to +0.000)"] * 4) + " |"


@pytest.mark.parametrize(
    ("report", "english"),
    [
        ("sinusrhythmus normales ekg", "sinus rhythm. normal ecg."),
        (
            "Sinusrhythmus unvollstÄndiger Rechtsschenkelblock sonst normales EKG",
            "sinus rhythm. incomplete right bundle branch block. otherwise normal ecg.",
        ),
        ("sinusrytm vÄnster el-axel eljest normalt ekg", "sinus rhythm. left axis deviation. otherwise normal ecg."),
        (
            "sinusrytm avvikande qrs(t) fÖrlopp    inferior infarkt     Ålder ej bestÄmmbar",
            "sinus rhythm. abnormal qrs(t). inferior infarction age undetermined.",
        ),
        (
            "sinusrhythmus qrs(t) abnormal    septaler infarkt nicht auszuschliessen Edit: ASMI",
            "sinus rhythm. qrs(t) abnormal. septal infarction cannot be excluded. edit: asmi",
        ),
        ("sinus rhythm. normal ecg.", "sinus rhythm. normal ecg."),  # English: unchanged
        ("trace only requested.", "trace only requested."),
    ],
)
def test_rewrite_reports_in_english(report, english):
    assert rewrite_reports_in_english.rewrite_report(report) == english


def write_generations(path: Path, rows: list[tuple[int, str, list[str], bool, dict]]) -> str:
    path.write_text(
        "".join(
            json.dumps(
                {"record_id": record, "reference": reference, "statements": codes, "scored": scored, "generations": g}
            )
            + "\n"
            for record, reference, codes, scored, g in rows
        )
    )
    return str(path)


def test_compare_generations_pairs_records_across_files(tmp_path):
    normal, afib = "sinus rhythm. normal ecg.", "atrial fibrillation."
    first = write_generations(
        tmp_path / "a.jsonl",
        [
            (1, normal, ["NORM", "SR"], True, {"MERIT": normal, "nearest-neighbour": afib}),
            (2, afib, ["AFIB"], True, {"MERIT": normal, "nearest-neighbour": afib}),
            (3, normal, ["NORM", "SR"], False, {"MERIT": afib, "nearest-neighbour": afib}),  # not scored: left out
            (4, afib, ["AFIB"], True, {"MERIT": afib, "nearest-neighbour": normal}),
        ],
    )
    # another run, records in another order, one of them missing
    second = write_generations(
        tmp_path / "b.jsonl",
        [(4, afib, ["AFIB"], True, {"MERIT": afib}), (1, normal, ["NORM", "SR"], True, {"MERIT": normal})],
    )
    records, reports = compare_generations.load_generations([first, second, f"{first}:nearest-neighbour"])
    assert [record["record_id"] for record in records] == [1, 4]
    assert reports == [[normal, afib], [normal, afib], [afib, normal]]
    table = compare_generations.comparison_tables([first, second, f"{first}:nearest-neighbour"], n_bootstrap=50)
    assert table.startswith("2 records scored in every file.")
    # the same reports: every difference is exactly 0; retrieval swapped both: CE-F1 micro 1 -> 0
    assert "| " + second + " | +0.000 (+0.000 to +0.000) |" in table
    assert f"| {first}:nearest-neighbour | **-1.000 (-1.000 to -1.000)** |" in table
    # a generator averaged over runs (e.g. seeds): the first run (CE-F1 micro 1) and one that swapped both (0)
    swapped = write_generations(
        tmp_path / "d.jsonl",
        [(1, normal, ["NORM", "SR"], True, {"MERIT": afib}), (4, afib, ["AFIB"], True, {"MERIT": normal})],
    )
    assert compare_generations.members(f"{first}+{swapped}:MERIT") == [f"{first}:MERIT", f"{swapped}:MERIT"]
    table = compare_generations.comparison_tables([first, f"{first}+{swapped}"], n_bootstrap=50)
    assert f"| {first}+{swapped} | 0.500 (0.500–0.500) |" in table
    assert f"| {first}+{swapped} | **-0.500 (-0.500 to -0.500)** |" in table
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"record_id": 1, "reference": "other", "statements": [], "scored": True, "generations": {}}) + "\n"
    )
    with pytest.raises(ValueError, match="another reference"):
        compare_generations.load_generations([first, str(tmp_path / "c.jsonl")])
    with pytest.raises(ValueError, match="no generator 'beam'"):
        compare_generations.load_generations([first, f"{first}:beam"])


def test_findings_vs_reports_counts_what_the_generator_passes_on():
    # record 1: an infarct in the findings, labels and reference, but the report writes sinus rhythm only;
    # record 2: atrial fibrillation everywhere
    table = findings_vs_reports.findings_table(
        findings=[{"MI", "SR"}, {"AFIB"}],
        generated=["sinus rhythm.", "atrial fibrillation."],
        references=["sinus rhythm. inferior infarction.", "atrial fibrillation."],
        scp_codes=[["IMI", "SR"], ["AFIB"]],
        statements=["MI", "AFIB", "SR"],
        n_bootstrap=0,
    )
    # the findings are exactly the labels (F1 1); the report misses MI and adds NORM (sinus rhythm, no finding)
    assert "| the findings in the prompt | 1.000 | 1.000 |" in table
    assert "| the generated report | 0.667 | 0.667 |" in table
    assert "| MI | 1 | 0 | 0 | 1 | 1 |" in table
    assert "| AFIB | 1 | 1 | 1 | 1 | 1 |" in table
    assert "| SR | 1 | 1 | 1 | 1 | 1 |" in table


def test_label_oracle_levels_and_tie_breaking():
    superclass_of = {"IMI": "MI", "ASMI": "MI", "NORM": "NORM"}
    codes = [{"IMI": 100.0, "SR": 0.0}, {"ASMI": 100.0, "SR": 0.0}, {"NORM": 100.0, "AFIB": 0.0}]
    sets = {
        level: retrieval_label_oracle.statement_sets(codes, superclass_of, level)
        for level in retrieval_label_oracle.LEVELS
    }
    assert sets["every statement"][0] == {"IMI", "SR"}
    assert sets["superclasses + rhythm"] == [{"MI", "SR"}, {"MI", "SR"}, {"NORM", "AFIB"}]
    assert sets["superclasses"][2] == {"NORM"}
    reports = ["inferior infarct.", "anteroseptal infarct.", "normal ecg, afib."]
    # every statement tells the three apart: each report is ranked first
    exact = retrieval_label_oracle.oracle_recall(
        retrieval_label_oracle.jaccard_matrix(sets["every statement"]), reports
    )
    assert exact[1].tolist() == [1.0, 1.0, 1.0]
    # at the superclass level records 0 and 1 tie: each is ranked first in about half of the random tie-breaks
    tied = retrieval_label_oracle.oracle_recall(
        retrieval_label_oracle.jaccard_matrix(sets["superclasses"]), reports, n_tiebreaks=400
    )
    assert 0.4 < tied[1][0] < 0.6 and 0.4 < tied[1][1] < 0.6 and tied[1][2] == 1.0
    assert tied[5].tolist() == [1.0, 1.0, 1.0]
    # an identical report text is a hit, as in eval_merit.py --task retrieval
    same_text = retrieval_label_oracle.oracle_recall(
        retrieval_label_oracle.jaccard_matrix(sets["superclasses"]), ["infarct.", "infarct.", "normal ecg."]
    )
    assert same_text[1].tolist() == [1.0, 1.0, 1.0]


def test_simulated_reader_has_the_requested_auroc_and_prevalence_calibrated_probabilities():
    generator = np.random.default_rng(0)
    labels = (generator.random((4000, 3)) < np.array([0.1, 0.3, 0.5])).astype(float)
    prevalence = labels.mean(axis=0)
    for auroc in (0.75, 0.9):
        probabilities = retrieval_label_oracle.simulated_reader_probabilities(
            labels, auroc, prevalence, np.random.default_rng(1)
        )
        assert ((probabilities > 0) & (probabilities < 1)).all()
        assert macro_roc_auc(labels, probabilities) == pytest.approx(auroc, abs=0.015)
        # posteriors: their mean is the prevalence
        np.testing.assert_allclose(probabilities.mean(axis=0), prevalence, atol=0.02)
    with pytest.raises(ValueError, match="auroc"):
        retrieval_label_oracle.simulated_reader_probabilities(labels, 0.5, prevalence, generator)


def test_likelihood_scores_and_reader_recall():
    probabilities = np.array([[0.9, 0.2]])
    candidates = np.array([[1.0, 0.0], [0.0, 1.0]])
    expected = [np.log(0.9) + np.log(0.8), np.log(0.1) + np.log(0.2)]
    np.testing.assert_allclose(retrieval_label_oracle.likelihood_scores(probabilities, candidates)[0], expected)
    # 60 records, each with its own set of 6 classes: how well a reader retrieves grows with its AUROC
    generator = np.random.default_rng(0)
    codes = generator.permutation(2**6)[:60]
    labels = ((codes[:, None] >> np.arange(6)) & 1).astype(float)
    reports = [f"report {code}" for code in codes]
    prevalence = labels.mean(axis=0)
    recall = {
        auroc: retrieval_label_oracle.simulated_reader_recall(labels, prevalence, reports, auroc, n_draws=10)[1].mean()
        for auroc in (0.6, 0.9, 0.999)
    }
    assert recall[0.999] > 0.9  # every record has its own class set: a near-perfect reader ranks it first
    assert 1 / 60 < recall[0.6] < recall[0.9] - 0.1 < recall[0.999] - 0.2


def test_probe_reader_separates_separable_classes():
    generator = np.random.default_rng(0)
    labels = (generator.random((200, 2)) < 0.5).astype(float)
    features = np.concatenate([labels * 2.0 - 1.0, generator.standard_normal((200, 3)) * 0.1], axis=1)
    weights = retrieval_label_oracle.fit_probe(features, labels)
    probabilities = retrieval_label_oracle.probe_probabilities(weights, features)
    assert macro_roc_auc(labels, probabilities) == 1.0
    assert ((probabilities > 0.5) == labels.astype(bool)).all()
    # a strong penalty squeezes the probabilities toward the label rate (what ranks candidates by likelihood needs
    # to avoid), and cross-validation does not choose it when the features are informative
    squeezed = retrieval_label_oracle.probe_probabilities(
        retrieval_label_oracle.fit_probe(features, labels, weight_decay=10.0), features
    )
    assert np.abs(squeezed - labels.mean(axis=0)).max() < 0.1 < np.abs(probabilities - labels.mean(axis=0)).min()
    noisy = np.concatenate([features[:, :2] + generator.standard_normal((200, 2)), features[:, 2:]], axis=1)
    assert retrieval_label_oracle.choose_weight_decay(noisy, labels, candidates=(1e-4, 10.0)) == 1e-4


def test_learned_extractor_learns_a_keyword_and_scores_micro_f1():
    texts = [f"{prefix} record {index}" for index in range(12) for prefix in ("sinus rhythm", "old infarct")]
    truth = np.array([[prefix == "old infarct"] for index in range(12) for prefix in ("sinus rhythm", "old infarct")])
    predicted = learned_extractor_baseline.fit_predict(
        texts, None, truth, ["old infarct seen", "sinus rhythm only"], None, inverse_l2=10.0
    )
    assert predicted.tolist() == [[True], [False]]
    truth, predicted = np.array([[True, False], [True, True]]), np.array([[True, True], [False, True]])
    assert learned_extractor_baseline.superclass_micro_f1(truth, predicted) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_learned_extractor_reports_the_rules_ceiling_of_the_shipped_excerpt(capsys):
    import pandas as pd

    from merit_evaluation.clinical_efficacy import SPLIT_FOLDS, reference_statistics

    data_dir = Path(__file__).resolve().parent.parent / "data" / "ptbxl-sample"
    learned_extractor_baseline.main([str(data_dir), "--n_bootstrap", "20"])
    output = capsys.readouterr().out
    database = pd.read_csv(data_dir / "ptbxl_database.csv", index_col="ecg_id")
    for split in ("validation", "test"):
        statistics = reference_statistics(database, SPLIT_FOLDS[split])
        ceiling = statistics.values(np.ones((1, statistics.n_samples)))["ce_super_f1_micro"][0]
        block = output.split(f"\n{split} ")[1].split("\n\n")[0]  # this split's lines only
        assert f"{statistics.n_samples} reports" in block.splitlines()[0]
        assert f"rules         {ceiling:.3f}" in block  # the same ceiling as the metric card's validation
        assert "ngrams+rules" in block and "- rules:" in block
