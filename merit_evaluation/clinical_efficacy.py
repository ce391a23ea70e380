# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Clinical efficacy (CE) of ECG reports: a rule-based statement extractor for PTB-XL report text and the CE
precision / recall / F1 of generated reports against the records' own PTB-XL statements (the ECG analogue of
CheXbert-F1 in radiology report generation).

**Classes** (`CE_CLASSES`, in three groups, `CE_GROUPS`):

- `superclass`: the 5 PTB-XL diagnostic superclasses `NORM`, `MI`, `STTC`, `CD`, `HYP`;
- `rhythm`: the rhythm statements `SR` (sinus rhythm), `AFIB` (atrial fibrillation), `SBRAD` / `STACH` (sinus
  brady- / tachycardia), `SARRH` (sinus arrhythmia);
- `form`: the form statements `LVOLT` (low QRS voltage), `QWAVE` (Q waves present), `PVC` (ventricular premature
  complexes).

**Labels of a record** (`statements_from_scp_codes`): a superclass is present when one of the record's
`scp_codes` is a diagnostic statement of that `diagnostic_class` in `scp_statements.csv` (`SUPERCLASS_CODES`,
checked against the file by the tests); a rhythm or form class when its own code is there. Every code counts,
whatever its likelihood, as in `dataset_scripts.ptbxl.labels` (a hedged "infarct possible" is coded with
likelihood 15-50 and still counts).

**Extractor** (`extract_statements`), keyword rules written from the `description` column of `scp_statements.csv`
and the vocabulary of the reports of PTB-XL folds 1-8 (German, English and Swedish; validation and test folds were
only scored, never read for rules):

1. Normalisation (`normalize_report`): Unicode NFKC, lower case; PTB-XL's legacy `#` for `ü` ("f#r", "#bergang")
   is read as `ü`; umlauts are transliterated (`ä` → `ae`, `ö` → `oe`, `ü` → `ue`, `å` → `a`, `ß` → `ss`), so
   "überdrehter" and "ueberdrehter" match the same rule; everything from `edit:` on is dropped (the validating
   cardiologist's annotation, which lists SCP codes by name, not report text); white space is collapsed.
2. Clauses: the text is split at `.`, `;`, `!`, `?` followed by white space (decimal points stay) and at line breaks.
3. Each class has regular expressions (`CE_RULES`); a match is a *mention*.
4. **Hedges count as present.** "possible", "probable", "suggesting", "möglich", "wahrscheinlich", "verdacht auf",
   "bör övervägas" and "cannot be excluded" / "nicht auszuschliessen" / "kan ej uteslutas" all keep the mention:
   PTB-XL codes such statements with a low likelihood, which is still a label. The double-negation hedges and the
   Swedish "ålder ej bestämbar" (age undeterminable) are removed before negation is looked for, so their "nicht",
   "cannot" or "ej" never negates a neighbouring statement.
5. **Negation.** A mention is negated when, in the same clause, a negation cue ("no", "not", "without", "absence of",
   "kein(e)", "nicht", "ohne", "inga", "ingen", "ej", "rather than", "instead of", "statt") ends at most
   `NEGATION_WINDOW` words before it with no comma or contrast word ("but", "aber", "jedoch", "sondern", "men",
   "however", "otherwise", "sonst", "eljest") in between ("kein Infarkt", "no evidence of infarction", "septal
   hypertrophy rather than old infarction"), or when at most 3 words after it the clause says it is excluded
   ("infarkt ausgeschlossen", "infarction excluded", "ruled out", "uteslutes"). A cue inside the mention itself does
   not negate it ("no definite pathology" and "inget säkert patologiskt" are `NORM` phrases).
6. A class is extracted when at least one of its mentions is not negated.
7. A report that states a sinus rhythm (`SR`, `SBRAD`, `STACH`, `SARRH`) and no diagnostic superclass is read as
   `NORM` ("sinusrhythmus p-verbreiterung", "sinus rhythm. rightward axis."): PTB-XL's cardiologists code such
   reports as normal (on folds 1-8 this rule raised the superclass micro F1 from 0.810 to 0.815).

**Validation** (`python -m merit_evaluation.clinical_efficacy DATA_DIR ...`): the extractor run on the reference
reports against their records' statements, per class and split (the metric's ceiling; see the metric card
`metrics/report_generation/README.md` for the measured values).

**Metrics** (`compute_clinical_efficacy`, per test record: extracted classes of the generated report vs the record's
classes; `TP`, `FP`, `FN` summed over records per class):

- `ce_precision_micro`, `ce_recall_micro`, `ce_f1_micro`: micro averages (counts summed over the classes first) over
  the superclasses and rhythm classes (`CE_HEADLINE_CLASSES`);
- `ce_precision_macro`, `ce_recall_macro`, `ce_f1_macro`: unweighted means of the per-class values over the
  headline classes with at least one positive record in the evaluated set (the others are named in `details`);
  per class, precision is 0 without predictions and F1 is `2 TP / (2 TP + FP + FN)`, 0 when that is 0/0;
- `ce_super_f1_micro`, `ce_super_f1_macro`: the same on the 5 superclasses only;
- `ce_all_f1_micro`: micro F1 over every class, forms included.

Confidence intervals: percentile bootstrap over records with the resamples of `merit_evaluation.metrics`
(`bootstrap_metric_values`); the set of macro-averaged classes is fixed on the full evaluated set.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .metrics import MetricValue, bootstrap_metric_values


__all__ = [
    "CE_CLASSES",
    "CE_GROUPS",
    "CE_HEADLINE_CLASSES",
    "CE_METRICS",
    "CE_RULES",
    "ClinicalEfficacy",
    "ClinicalEfficacyStatistics",
    "Mention",
    "SUPERCLASS_CODES",
    "compute_clinical_efficacy",
    "extract_statements",
    "find_mentions",
    "normalize_report",
    "reads_ptbxl_statements",
    "statements_from_scp_codes",
]

CE_GROUPS: dict[str, tuple[str, ...]] = {
    "superclass": ("NORM", "MI", "STTC", "CD", "HYP"),
    "rhythm": ("SR", "AFIB", "SBRAD", "STACH", "SARRH"),
    "form": ("LVOLT", "QWAVE", "PVC"),
}
"""The CE classes by group (see the module docstring)."""
CE_CLASSES: tuple[str, ...] = tuple(name for names in CE_GROUPS.values() for name in names)
"""Every CE class, in column order: superclasses, rhythm, form."""
CE_HEADLINE_CLASSES: tuple[str, ...] = CE_GROUPS["superclass"] + CE_GROUPS["rhythm"]
"""The classes of the headline `ce_*_micro` / `ce_*_macro` metrics."""

SUPERCLASS_CODES: dict[str, frozenset[str]] = {
    "CD": frozenset({"1AVB", "2AVB", "3AVB", "CLBBB", "CRBBB", "ILBBB", "IRBBB", "IVCD", "LAFB", "LPFB", "WPW"}),
    "HYP": frozenset({"LAO/LAE", "LVH", "RAO/RAE", "RVH", "SEHYP"}),
    "MI": frozenset(
        {
            "ALMI",
            "AMI",
            "ASMI",
            "ILMI",
            "IMI",
            "INJAL",
            "INJAS",
            "INJIL",
            "INJIN",
            "INJLA",
            "IPLMI",
            "IPMI",
            "LMI",
            "PMI",
        }
    ),
    "NORM": frozenset({"NORM"}),
    "STTC": frozenset(
        {"ANEUR", "DIG", "EL", "ISCAL", "ISCAN", "ISCAS", "ISCIL", "ISCIN", "ISCLA", "ISC_", "LNGQT", "NDT", "NST_"}
    ),
}
"""The diagnostic statements of each superclass (`diagnostic == 1`, `diagnostic_class` of PTB-XL v1.0.3's
`scp_statements.csv`; the tests compare it with the shipped file)."""

CE_METRICS = (
    "ce_precision_micro",
    "ce_recall_micro",
    "ce_f1_micro",
    "ce_precision_macro",
    "ce_recall_macro",
    "ce_f1_macro",
    "ce_super_f1_micro",
    "ce_super_f1_macro",
    "ce_all_f1_micro",
)
"""Every metric `compute_clinical_efficacy` returns."""

# ---------------------------------------------------------------------------------------------------------- rules
# Patterns run on `normalize_report` output: lower case, umlauts transliterated (ä -> ae, ö -> oe, ü -> ue, å -> a).
_SINUS = r"\bsinus ?"
CE_RULES: dict[str, tuple[str, ...]] = {
    "NORM": (
        r"\bnormal(?:es|e|t)? (?:ruhe-?)?(?:ekg|ecg)\b",
        r"\b(?:ekg|ecg) (?:ist |is )?normal\b",
        r"\bno definite pathology",
        r"\binget saekert patologiskt",
        r"\bwithin normal limits",
        r"\btracing (?:is )?(?:otherwise )?normal",
        r"\bnormalbefund",
    ),
    "MI": (
        r"infar[ck]t",  # infarkt, infarct(s), infarction, myokardinfarkt, vorderwandinfarkt
        r"\bmyokardskada",  # Swedish: myocardial injury (PTB-XL's "… myokardskada bör övervägas")
        r"\bsubendocardial injury|\bmyocardial damage|\bnekrose",
        r"\bqs[- ]complex|\btiny r[- ]waves?",  # "qs complexes in v2 and tiny r waves in v3" (anteroseptal MI)
        r"qrs\(t\) abnorm\w* (?:\w+ ){0,2}myokardschaden",  # "qrs(t) abnormal anteroseptaler myokardschaden"
    ),
    "STTC": (
        r"\bst[- ]?(?:&|and|-)? ?t\b",  # st-t, st & t, st t
        r"\bst[- ](?:segments? )?(?:are |is )?(?:\w+ly )?(?:depress|senkung|saenkning|strecken-?senkung)",
        r"\bst[- ]?(?:senkung|saenkning|depression)",
        r"\bt[- ]?waves?\b",
        r"\bt[- ]wave",
        r"\bt[- ](?:abnorm|flach|neg|spitz|inver|veraender|foeraendr)",
        r"\b(?:abnorm(?:al)?es|negative[sn]?|neg|flache[sn]?|spitze[sn]?) t\b",
        r"\bt-?(?:welle|negativierung|inversion)",
        r"isch(?:a?e|ae)mi",  # ischaemia, ischemia, ischaemie, ischemi (sv), ischaemic
        r"\brepolarisation",
        r"\b(?:prolonged|long) qt|\bqt[- ]?(?:verlaengerung|prolong|zeit verlaengert|foerlaengning)",
        r"\bdigitalis|\bdigoxin",
        r"\belectrolyte",
        r"\blv strain|\bleft ventricular strain|\blinksbelastung|\bbelastning",
        r"\bmyokardaffektion",
        r"\bmyokardschaden",
    ),
    "CD": (
        r"bundle[- ]branch[- ]block|schenkelblock|skaenkelblock",
        r"\b(?:rsb|lsb|rbbb|lbbb|lahb|lphb|lafb|lpfb|ivcd|wpw)\b",
        r"hemiblock|fascicular block|fasc?ikulaert block|bifascicular|trifascicular",
        r"\ba-?v[- ]?block|atrioventri[ck]ulaer\w* block|atrioventricular block|\bheart block",
        r"intraventri[ck]ular (?:block|delay|conduction)|intraventr\w*\.? ?(?:leitungs|reizleitungs)"
        r"|leitungsstoerung|retledningshinder",
        r"\bwolff|pr(?:ae|e)-?excitation",
        r"\bextrem vaenster el-axel|\bueberdrehter linkstyp|(?<!borderline )\bleft axis deviation",
    ),
    "HYP": (
        r"hypertro(?:ph|f)",  # hypertrophy, linkshypertrophie, kammarhypertrofi
        r"\b(?:lvh|rvh)\b",
        r"atrial (?:enlargement|overload)|vorhofs?ueberlastung|vorhofhypertroph",
        r"\bp[- ](?:mitrale|pulmonale)",
    ),
    "SR": (_SINUS + r"(?:rhythmus|rhythm|rytm|rythm|rhytm)\b",),
    "AFIB": (r"\batrial fibrillation|vorhofflimmern|\bvorhof-flimmern|foermaksflimmer|\bafib\b|absolute arrh?ythmie",),
    "SBRAD": (_SINUS + r"(?:brady[ck]ardi[ae]?|bradycardia)",),
    "STACH": (_SINUS + r"(?:tachy[ck]ardi[ae]?|tachycardia)",),
    "SARRH": (_SINUS + r"(?:arr?h?ythmi[ae]|arytmi)",),
    "LVOLT": (
        r"\blow (?:limb lead |chest lead |qrs )?voltage|niederspannung|niedervoltage|\blow[- ]voltage",
        r"\blaga qrs[- ]?amplitud",
    ),
    "QWAVE": (r"\bq[- ]?(?:waves?|zacken?|vag(?:or)?)\b", r"\bpathologische[sn]? q\b"),
    "PVC": (
        r"\bventri[ck]ul\w*(?:\(\w*\))? (?:extra ?systol|extraslag|premature)",  # not supraventrikulaere
        r"premature ventricular|ventricular premature|\bv\.?p\.?[bc]s?\b|\bves\b",
    ),
}
"""The regular expressions of every CE class (see the module docstring)."""

NEGATION_WINDOW = 5
"""Most words between a negation cue and the mention it negates."""
_NEGATION_CUE = re.compile(
    r"\b(?:no|not|without|absence of|kein\w*|nicht|ohne|inga|ingen|inget|ej|rather than|instead of|statt|anstatt)\b"
)
_SCOPE_BREAK = re.compile(r",|\b(?:but|aber|jedoch|sondern|men|however|otherwise|sonst|eljest|though)\b")
_POST_NEGATION = re.compile(
    r"^\W*(?:\w+\W+){0,3}?(?:ausgeschlossen|excluded|ruled out|uteslut\w*|nicht nachweisbar|not seen|absent)\b"
)
_NEUTRAL_PHRASES = re.compile(
    r"\bnicht (?:sicher |ganz )?auszuschlie\w*|\bcan ?not be (?:entirely |completely |definitely )?excluded"
    r"|\bkan (?:ej|inte) uteslutas|\b(?:this is )?most commonly due to isch\w* heart disease|\balder ej bestaem\w*|\bnot (?:definitely )?(?:evident|identified)"
)
_CLAUSE_BREAK = re.compile(r"[.;!?](?=\s|$)|\n")
_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "å": "a", "ß": "ss", "é": "e", "#": "ue"})
_SINUS_RHYTHMS = frozenset({"SR", "SBRAD", "STACH", "SARRH"})
_SUPERCLASSES = frozenset(CE_GROUPS["superclass"])
_COMPILED_RULES = {
    label: re.compile("|".join(f"(?:{pattern})" for pattern in CE_RULES[label])) for label in CE_CLASSES
}


def normalize_report(text: str) -> str:
    """The text the rules read (see the module docstring, step 1).

    Example: `normalize_report("Sinusrhythmus unvollstÄndiger RSB. Edit: IRBBB")` is
    `"sinusrhythmus unvollstaendiger rsb."`.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.split("edit:", 1)[0]
    text = text.translate(_TRANSLITERATION)
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


@dataclass(frozen=True)
class Mention:
    """One match of a class rule in a report.

    Attributes:
        label (`str`): the CE class.
        phrase (`str`): the matched text (normalised).
        negated (`bool`): whether a negation applies to it (see the module docstring).
    """

    label: str
    phrase: str
    negated: bool


def _is_negated(clause: str, start: int, end: int) -> bool:
    before = clause[:start]
    for cue in _NEGATION_CUE.finditer(before):
        gap = before[cue.end() :]
        if len(gap.split()) <= NEGATION_WINDOW and not _SCOPE_BREAK.search(gap):
            return True
    after = clause[end:]
    scope_end = _SCOPE_BREAK.search(after)
    return bool(_POST_NEGATION.search(after[: scope_end.start()] if scope_end else after))


def find_mentions(text: str) -> list[Mention]:
    """Every mention of a CE class in a report, in class order then text order, with its negation."""
    mentions = []
    clauses = [_NEUTRAL_PHRASES.sub(" | ", clause) for clause in _CLAUSE_BREAK.split(normalize_report(text))]
    for label in CE_CLASSES:
        for clause in clauses:
            for match in _COMPILED_RULES[label].finditer(clause):
                mentions.append(Mention(label, match.group(0), _is_negated(clause, match.start(), match.end())))
    return mentions


def extract_statements(text: str) -> set[str]:
    """The CE classes a report states (at least one mention that is not negated).

    Examples: `extract_statements("Sinusrhythmus. Kein Infarkt.")` is `{"SR"}`;
    `extract_statements("sinus rhythm. old inferior infarct cannot be excluded.")` is `{"SR", "MI"}`.
    """
    labels = {mention.label for mention in find_mentions(text) if not mention.negated}
    if labels & _SINUS_RHYTHMS and not labels & _SUPERCLASSES:
        labels.add("NORM")  # a sinus rhythm and no diagnostic finding: read as normal (module docstring, step 7)
    return labels


def statements_from_scp_codes(scp_codes: str | Iterable[str] | Mapping[str, float]) -> set[str]:
    """The CE classes of a record from its PTB-XL statement codes: a `scp_codes` dict, its text as in
    `ptbxl_database.csv` (`"{'IMI': 15.0, 'SR': 0.0}"`), or the codes.

    Example: `statements_from_scp_codes({"IMI": 15.0, "LVOLT": 0.0, "SR": 0.0})` is `{"MI", "LVOLT", "SR"}`.
    """
    if isinstance(scp_codes, str):
        from dataset_scripts.ptbxl.labels import parse_scp_codes

        scp_codes = parse_scp_codes(scp_codes)
    codes = set(scp_codes)
    labels = {superclass for superclass, members in SUPERCLASS_CODES.items() if codes & members}
    return labels | (codes & set(CE_GROUPS["rhythm"] + CE_GROUPS["form"]))


def reads_ptbxl_statements(class_names: Iterable[str]) -> bool:
    """Whether a label set holds the PTB-XL statements CE reads (every code of `SUPERCLASS_CODES` and every rhythm
    and form class): such labels can be scored with `statements_from_scp_codes`."""
    needed = set().union(*SUPERCLASS_CODES.values()) | set(CE_GROUPS["rhythm"] + CE_GROUPS["form"])
    return needed <= set(class_names)


def label_matrix(label_sets: Sequence[Iterable[str]], classes: Sequence[str] = CE_CLASSES) -> np.ndarray:
    """Multi-hot matrix of shape `(n_samples, len(classes))`, bool, from one set of CE classes per sample."""
    index = {name: column for column, name in enumerate(classes)}
    matrix = np.zeros((len(label_sets), len(classes)), dtype=bool)
    for row, labels in enumerate(label_sets):
        for label in labels:
            if label in index:
                matrix[row, index[label]] = True
    return matrix


def _f1(true_positive, false_positive, false_negative):
    denominator = 2 * true_positive + false_positive + false_negative
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _ratio(numerator, denominator):
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


@dataclass
class ClinicalEfficacyStatistics:
    """Per-record CE truth and predictions, from which every CE metric is computed for any sample weights.

    Attributes:
        truth (`np.ndarray` of shape `(n_samples, len(CE_CLASSES))`, bool): the records' classes.
        predicted (`np.ndarray` of the same shape, bool): the classes extracted from the generated reports.
    """

    truth: np.ndarray
    predicted: np.ndarray
    macro_classes: dict[str, tuple[str, ...]] = field(init=False)

    def __post_init__(self):
        if self.truth.shape != self.predicted.shape or self.truth.ndim != 2 or self.truth.shape[1] != len(CE_CLASSES):
            raise ValueError(
                f"`truth` and `predicted` must both have shape (n_samples, {len(CE_CLASSES)}); got {self.truth.shape} "
                f"and {self.predicted.shape}."
            )
        support = self.truth.sum(axis=0)
        self.macro_classes = {
            group: tuple(name for name in classes if support[CE_CLASSES.index(name)] > 0)
            for group, classes in (("headline", CE_HEADLINE_CLASSES), ("super", CE_GROUPS["superclass"]))
        }

    @classmethod
    def from_texts(
        cls, predictions: Sequence[str], record_statements: Sequence[Iterable[str] | Mapping[str, float]]
    ) -> ClinicalEfficacyStatistics:
        """From generated reports and each record's PTB-XL statement codes (one entry per record)."""
        if isinstance(predictions, str):
            raise ValueError("`predictions` must be a sequence of reports, not a single string.")
        if len(predictions) != len(record_statements):
            raise ValueError(
                f"`predictions` and `scp_codes` must have one entry per record; got {len(predictions)} predictions "
                f"and {len(record_statements)} statement sets."
            )
        if not predictions:
            raise ValueError("No records to score: `predictions` is empty.")
        bad = [index for index, text in enumerate(predictions) if not isinstance(text, str)]
        if bad:
            raise ValueError(
                f"`predictions` must hold strings; entries {bad[:5]} are {type(predictions[bad[0]]).__name__}."
            )
        truth = label_matrix([statements_from_scp_codes(codes) for codes in record_statements])
        return cls(truth=truth, predicted=label_matrix([extract_statements(text) for text in predictions]))

    @property
    def n_samples(self) -> int:
        return self.truth.shape[0]

    def counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-class `(TP, FP, FN)`, each of shape `(n_resamples, n_classes)`, for sample weights `(n_resamples, n)`."""
        truth, predicted = self.truth, self.predicted
        return weights @ (truth & predicted), weights @ (~truth & predicted), weights @ (truth & ~predicted)

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of `CE_METRICS` for each row of sample weights, each of shape `(n_resamples,)`."""
        true_positive, false_positive, false_negative = self.counts(weights)

        def columns(names):
            return [CE_CLASSES.index(name) for name in names]

        def micro(names):
            selected = columns(names)
            tp, fp, fn = (
                counts[:, selected].sum(axis=1) for counts in (true_positive, false_positive, false_negative)
            )
            return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn)

        def macro(names):
            if not names:
                nan = np.full(weights.shape[0], np.nan)
                return nan, nan, nan
            selected = columns(names)
            tp, fp, fn = true_positive[:, selected], false_positive[:, selected], false_negative[:, selected]
            return _ratio(tp, tp + fp).mean(axis=1), _ratio(tp, tp + fn).mean(axis=1), _f1(tp, fp, fn).mean(axis=1)

        values = dict(zip(("ce_precision_micro", "ce_recall_micro", "ce_f1_micro"), micro(CE_HEADLINE_CLASSES)))
        values.update(
            zip(("ce_precision_macro", "ce_recall_macro", "ce_f1_macro"), macro(self.macro_classes["headline"]))
        )
        values["ce_super_f1_micro"] = micro(CE_GROUPS["superclass"])[2]
        values["ce_super_f1_macro"] = macro(self.macro_classes["super"])[2]
        values["ce_all_f1_micro"] = micro(CE_CLASSES)[2]
        return values

    def per_class(self) -> dict[str, dict[str, float]]:
        """`precision`, `recall`, `f1` and `support` (positive records) of every class on the full set."""
        true_positive, false_positive, false_negative = (
            counts[0] for counts in self.counts(np.ones((1, self.n_samples)))
        )
        precision = _ratio(true_positive, true_positive + false_positive)
        recall = _ratio(true_positive, true_positive + false_negative)
        f1 = _f1(true_positive, false_positive, false_negative)
        return {
            name: {
                "precision": float(precision[column]),
                "recall": float(recall[column]),
                "f1": float(f1[column]),
                "support": int(true_positive[column] + false_negative[column]),
            }
            for column, name in enumerate(CE_CLASSES)
        }


@dataclass
class ClinicalEfficacy:
    """CE metrics of a set of generated reports.

    Attributes:
        metrics (`dict[str, MetricValue]`): every name of `CE_METRICS`, with its interval.
        per_class (`dict[str, dict[str, float]]`): `precision`, `recall`, `f1`, `support` of every CE class.
        n_samples (`int`): number of scored records.
        details (`dict[str, str]`): how they were computed (classes, macro classes, per-class F1 as text).
        bootstrap (`dict`, *optional*): `n_resamples`, `confidence_level`, `seed`; `None` without intervals.
    """

    metrics: dict[str, MetricValue]
    per_class: dict[str, dict[str, float]]
    n_samples: int
    details: dict[str, str]
    bootstrap: dict | None = None


def per_class_summary(per_class: Mapping[str, Mapping[str, float]]) -> str:
    """`"NORM 0.812 (n=40), MI 0.400 (n=10), …"`: per-class F1 and support, for tables and `details`."""
    return ", ".join(f"{name} {values['f1']:.3f} (n={values['support']})" for name, values in per_class.items())


def clinical_efficacy_from_statistics(
    statistics: ClinicalEfficacyStatistics, n_bootstrap: int = 1000, confidence_level: float = 0.95, seed: int = 0
) -> ClinicalEfficacy:
    """`ClinicalEfficacy` of precomputed statistics (see `compute_clinical_efficacy`)."""
    metrics = bootstrap_metric_values(statistics.values, statistics.n_samples, n_bootstrap, confidence_level, seed)
    per_class = statistics.per_class()
    skipped = [name for name in CE_HEADLINE_CLASSES if name not in statistics.macro_classes["headline"]]
    details = {
        "ce_classes": "micro/macro over "
        + ", ".join(CE_HEADLINE_CLASSES)
        + "; ce_all adds "
        + ", ".join(CE_GROUPS["form"]),
        "ce_macro_skipped": ", ".join(skipped) or "none",
        "ce_per_class_f1": per_class_summary(per_class),
    }
    bootstrap = None
    if n_bootstrap > 0:
        bootstrap = {"n_resamples": n_bootstrap, "confidence_level": confidence_level, "seed": seed}
    return ClinicalEfficacy(metrics, per_class, statistics.n_samples, details, bootstrap)


def compute_clinical_efficacy(
    predictions: Sequence[str],
    scp_codes: Sequence[Iterable[str] | Mapping[str, float]],
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> ClinicalEfficacy:
    """CE precision / recall / F1 of generated reports against the records' PTB-XL statements.

    Args:
        predictions (`Sequence[str]`): generated reports, one per record.
        scp_codes (`Sequence`): each record's PTB-XL statements: a `scp_codes` dict (`{"IMI": 15.0, "SR": 0.0}`) or
            an iterable of statement codes.
        n_bootstrap (`int`, defaults to 1000): bootstrap resamples of the records; 0 disables the intervals.
        confidence_level (`float`, defaults to 0.95): coverage of the intervals, in (0, 1).
        seed (`int`, defaults to 0): bootstrap seed (resample `r` draws from `numpy.random.default_rng([seed, r])`).

    Returns:
        `ClinicalEfficacy`.

    Example: a report that names the record's rhythm and misses its infarct,

    >>> result = compute_clinical_efficacy(["sinus rhythm. normal ecg."], [{"IMI": 50.0, "SR": 0.0}], n_bootstrap=0)
    >>> round(result.metrics["ce_precision_micro"].value, 3), round(result.metrics["ce_recall_micro"].value, 3)
    (0.5, 0.5)
    """
    statistics = ClinicalEfficacyStatistics.from_texts(predictions, scp_codes)
    return clinical_efficacy_from_statistics(statistics, n_bootstrap, confidence_level, seed)


# ------------------------------------------------------------------------------------------- extractor validation

SPLIT_FOLDS = {"train": tuple(range(1, 9)), "validation": (9,), "test": (10,)}
"""PTB-XL's `strat_fold` of each split (folds 1-8 are the only ones the rules were written from)."""


def reference_statistics(database, folds: Sequence[int] | None = None) -> ClinicalEfficacyStatistics:
    """The extractor on the reference reports of a `ptbxl_database.csv` table vs their `scp_codes` (its ceiling).

    Args:
        database (`pandas.DataFrame`): `ptbxl_database.csv` as read by `pandas.read_csv`; rows with an empty
            `report` are left out.
        folds (`Sequence[int]`, *optional*): only these `strat_fold`s.
    """
    from dataset_scripts.ptbxl.labels import parse_scp_codes

    rows = database[database["report"].fillna("").str.strip() != ""]
    if folds is not None:
        rows = rows[rows["strat_fold"].isin(list(folds))]
    if rows.empty:
        raise ValueError(f"No record with a report in folds {folds}; expected a ptbxl_database.csv with reports.")
    return ClinicalEfficacyStatistics.from_texts(
        rows["report"].tolist(), [parse_scp_codes(codes) for codes in rows["scp_codes"]]
    )


def _ceiling_table(name: str, statistics: ClinicalEfficacyStatistics) -> str:
    values = {key: value[0] for key, value in statistics.values(np.ones((1, statistics.n_samples))).items()}
    lines = [
        f"### {name}: {statistics.n_samples} reports",
        "",
        f"micro F1 superclasses {values['ce_super_f1_micro']:.3f}, superclasses + rhythm {values['ce_f1_micro']:.3f} "
        f"(macro {values['ce_f1_macro']:.3f}), all classes {values['ce_all_f1_micro']:.3f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, entry in statistics.per_class().items():
        lines.append(
            f"| {label} | {entry['precision']:.3f} | {entry['recall']:.3f} | {entry['f1']:.3f} | {entry['support']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m merit_evaluation.clinical_efficacy DATA_DIR [DATA_DIR ...] [--errors CLASS]`: the extractor's
    per-class precision / recall / F1 on the reference reports of each PTB-XL copy, per split, and pooled."""
    import argparse
    from pathlib import Path

    import pandas as pd

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data_dirs", nargs="+", help="PTB-XL copies (folders holding ptbxl_database.csv).")
    parser.add_argument("--errors", choices=CE_CLASSES, help="Print the training-fold errors of this class.")
    args = parser.parse_args(argv)
    databases = {
        directory: pd.read_csv(Path(directory) / "ptbxl_database.csv", index_col="ecg_id")
        for directory in args.data_dirs
    }
    pooled = pd.concat(list(databases.values()))
    for split, folds in SPLIT_FOLDS.items():
        for directory, database in databases.items():
            print(
                _ceiling_table(
                    f"{directory}, {split} (folds {folds[0]}-{folds[-1]})", reference_statistics(database, folds)
                )
            )
        if len(databases) > 1:
            print(_ceiling_table(f"pooled, {split}", reference_statistics(pooled, folds)))
    if args.errors:
        from dataset_scripts.ptbxl.labels import parse_scp_codes

        rows = pooled[(pooled["report"].fillna("") != "") & pooled["strat_fold"].isin(SPLIT_FOLDS["train"])]
        for ecg_id, row in rows.iterrows():
            truth = args.errors in statements_from_scp_codes(parse_scp_codes(row["scp_codes"]))
            predicted = args.errors in extract_statements(row["report"])
            if truth != predicted:
                kind = "FN" if truth else "FP"
                print(f"{kind} {ecg_id}: {normalize_report(row['report'])[:200]} | {row['scp_codes']}")


if __name__ == "__main__":
    main()
