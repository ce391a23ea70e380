"""Report-generation metrics: golden values on hand-checkable pairs, WordNet really used by METEOR, bootstrap
intervals recomputed on the resampled data, and the `evaluate` module loaded offline by path."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from merit_evaluation.metrics import bootstrap_indices
from merit_evaluation.report_metrics import BertScorer, compute_report_metrics, tokenize_report, wordnet_reader


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scores(predictions, references, **kwargs):
    kwargs.setdefault("n_bootstrap", 0)
    kwargs.setdefault("bertscore", False)
    result = compute_report_metrics(predictions, references, **kwargs)
    return {name: metric.value for name, metric in result.metrics.items()}


def test_tokenizer_keeps_non_ascii_words_and_decimals_and_drops_punctuation():
    assert tokenize_report("Sinusrhythmus. P-sich.änd. QRS 0,12 s!") == [
        "sinusrhythmus", "p", "sich", "änd", "qrs", "0,12", "s",
    ]  # fmt: skip
    assert tokenize_report("  ") == []
    assert tokenize_report("ＱＲＳ") == ["qrs"]  # NFKC folds full-width letters


def test_bleu_golden_values():
    # identical: every precision 1, no brevity penalty
    assert scores(["a b c d"], ["a b c d"])["bleu4"] == pytest.approx(1.0)
    # "a b c" vs "a b c d": precisions 1 up to n = 3, no 4-gram; brevity penalty exp(1 - 4/3)
    values = scores(["a b c"], ["a b c d"])
    assert values["bleu1"] == pytest.approx(math.exp(1 - 4 / 3))
    assert values["bleu3"] == pytest.approx(math.exp(1 - 4 / 3))
    assert values["bleu4"] == 0.0
    # clipping: "a a a a" vs "a b": unigram precision 1/4 (one "a" counted), longer than the reference
    assert scores(["a a a a"], ["a b"])["bleu1"] == pytest.approx(0.25)


def test_bleu_is_corpus_level_and_matches_nltk():
    from nltk.translate.bleu_score import corpus_bleu

    predictions = ["sinus rhythm normal ecg", "left axis deviation noted here", "atrial fibrillation with rapid"]
    references = ["sinus rhythm. normal ECG.", "left axis deviation", "atrial fibrillation with rapid response"]
    values = scores(predictions, references)
    tokenized = [tokenize_report(text) for text in predictions]
    nltk_references = [[tokenize_report(text)] for text in references]
    for order in range(1, 5):
        weights = tuple([1.0 / order] * order)
        assert values[f"bleu{order}"] == pytest.approx(corpus_bleu(nltk_references, tokenized, weights=weights))


def test_rouge_golden_values():
    values = scores(["a b c"], ["a c d"])
    assert values["rouge1"] == pytest.approx(2 / 3)  # 2 of 3 unigrams either way
    assert values["rouge2"] == 0.0  # bigrams {ab, bc} vs {ac, cd}
    assert values["rougeL"] == pytest.approx(2 / 3)  # LCS "a c"
    # German words survive (rouge-score's own tokeniser would drop "änd")
    assert scores(["p sich änd"], ["P-sich.änd."])["rouge1"] == pytest.approx(1.0)


def test_meteor_golden_values_and_wordnet_synonyms():
    reference = ["the heart rate is fast"]
    # exact match: F-mean 1, one chunk of 5 matches -> penalty 0.5 * (1/5)^3
    assert scores(reference, reference)["meteor"] == pytest.approx(1 - 0.5 * (1 / 5) ** 3)
    # exact miss of one word: P = R = 4/5, one chunk of 4 -> 0.8 * (1 - 0.5 * (1/4)^3)
    miss = scores(["the heart rate is blue"], reference)["meteor"]
    assert miss == pytest.approx(0.8 * (1 - 0.5 * (1 / 4) ** 3))
    # "quick" matches "fast" only through a WordNet synonym set (neither exact nor the same Porter stem)
    synonym = scores(["the heart rate is quick"], reference)["meteor"]
    wordnet = wordnet_reader()
    assert {"quick", "fast"} <= {name for synset in wordnet.synsets("fast") for name in synset.lemma_names()}
    assert synonym == pytest.approx(1 - 0.5 * (1 / 5) ** 3)
    assert synonym > miss


def test_cider_d_golden_values():
    # two references "a b" and "c d": every n-gram occurs in one of N = 2 references, idf = log 2
    values = scores(["a b", "c"], ["a b", "c d"])
    exact = 10 * (1 + 1 + 0 + 0) / 4  # n = 1, 2 similar; no 3- or 4-grams -> 0
    partial = 10 * math.exp(-1 / 72) * (1 / math.sqrt(2)) / 4  # unigram cosine 1/sqrt(2), length 1 vs 2
    assert values["cider_d"] == pytest.approx((exact + partial) / 2)
    # an n-gram in every reference carries no information (idf 0)
    assert scores(["a"], ["a"])["cider_d"] == 0.0


def test_bootstrap_interval_is_the_metric_on_the_resampled_data():
    predictions = ["sinus rhythm", "left axis deviation", "atrial fibrillation", "normal ecg", "sinus tachycardia"]
    references = ["sinus rhythm normal", "left axis", "atrial flutter", "normal ecg", "sinus bradycardia"]
    result = compute_report_metrics(predictions, references, n_bootstrap=1, seed=7, bertscore=False)
    indices = bootstrap_indices(len(references), 0, 7)
    resampled = scores([predictions[i] for i in indices], [references[i] for i in indices])
    for name in ("bleu2", "rougeL", "meteor"):
        assert result.metrics[name].ci_low == pytest.approx(resampled[name])
        assert result.metrics[name].ci_high == pytest.approx(resampled[name])
    # CIDEr-D keeps the idf of all references in every resample (documented), so only its per-sample mean moves
    result = compute_report_metrics(predictions, references, n_bootstrap=200, seed=0, bertscore=False)
    for metric in result.metrics.values():
        assert metric.ci_low <= metric.value <= metric.ci_high
    assert result.bootstrap == {"n_resamples": 200, "confidence_level": 0.95, "seed": 0}


def test_bertscore_identical_empty_and_labelled():
    scorer = BertScorer()
    values = scorer.score(["Sinus rhythm. Normal ECG.", ""], ["sinus rhythm. normal ecg.", "left axis deviation"])
    assert values["bertscore_f1"][0] == pytest.approx(1.0, abs=1e-5)  # same word pieces (uncased): every max is 1
    assert values["bertscore_f1"][1] == 0.0
    assert scorer.description.startswith("all-MiniLM-L6-v2, layer 6 of 6")
    related = scorer.score(["sinus tachycardia"], ["sinus rhythm"])
    p, r, f = (related[name][0] for name in ("bertscore_precision", "bertscore_recall", "bertscore_f1"))
    assert 0 < f < 1 and f == pytest.approx(2 * p * r / (p + r))
    with pytest.raises(ValueError, match="bertscore_layer"):
        BertScorer(layer=7)


def test_invalid_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="one entry per sample"):
        compute_report_metrics(["a"], ["a", "b"], bertscore=False)
    with pytest.raises(ValueError, match="no token"):
        compute_report_metrics(["a", "b"], ["a", " . "], bertscore=False)
    with pytest.raises(ValueError, match="single strings"):
        compute_report_metrics("a", "a", bertscore=False)


@pytest.mark.slow
def test_evaluate_module_loads_offline_and_matches_core(tmp_path):
    predictions = ["sinus rhythm, normal ecg", "left axis deviation", "the heart rate is quick"]
    references = ["Sinus rhythm. Normal ECG.", "left axis deviation noted", "the heart rate is fast"]
    scp_codes = ["{'NORM': 100.0, 'SR': 0.0}", "{'LAFB': 100.0, 'SR': 0.0}", "{'NORM': 80.0, 'STACH': 0.0}"]
    script = textwrap.dedent(
        f"""
        import json, evaluate
        metric = evaluate.load({os.path.join(REPO_ROOT, "metrics", "report_generation")!r})
        result = metric.compute(predictions={predictions!r}, references={references!r}, n_bootstrap=20, seed=1,
                                bertscore=False, scp_codes={scp_codes!r})
        json.dump(result, open("result.json", "w"))
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    from_evaluate = json.loads((tmp_path / "result.json").read_text())
    core = compute_report_metrics(
        predictions, references, n_bootstrap=20, seed=1, bertscore=False, scp_codes=scp_codes
    )
    assert from_evaluate == json.loads(json.dumps(core.to_dict()))
    assert np.isfinite(from_evaluate["meteor"])
    # CE: SR + NORM, then CD (left axis deviation) are right; SR of record 2, STACH and NORM of record 3 are missed
    assert from_evaluate["ce_precision_micro"] == pytest.approx(3 / 3)
    assert from_evaluate["ce_recall_micro"] == pytest.approx(3 / 6)


@pytest.mark.slow
def test_missing_wordnet_raises_with_the_install_command(tmp_path):
    script = textwrap.dedent(
        f"""
        import nltk
        nltk.data.path[:] = [{str(tmp_path)!r}]
        from merit_evaluation.report_metrics import compute_report_metrics
        try:
            compute_report_metrics(["a b"], ["a b"], n_bootstrap=0, bertscore=False)
        except LookupError as error:
            print(error)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")])}
    env.pop("NLTK_DATA", None)
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "WordNet not found" in completed.stdout and "install_wordnet.sh" in completed.stdout
