# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
An experiment, not part of the package: rewrite the German and Swedish reports of a PTB-XL copy in the wording of
PTB-XL's English reports, to measure what one language on the (English) text side would buy (README, "Demo results",
"Report language"). The glossary below was written from the reports of folds 1-8 only; reports the language detector
(`merit_training.report_generation.report_language`) calls English or other are copied unchanged, and the
validating cardiologist's `edit:` annotations are kept as they are (lower-cased).

    python utils/rewrite_reports_in_english.py data/ptbxl-sample runs/ptbxl-sample-english
    accelerate launch train_merit.py --data_dir runs/ptbxl-sample-english --output_dir runs/merit-english
    python utils/compare_checkpoints.py outputs/merit-ptbxl-sample runs/merit-english  # see the README for the caveat

The new folder links the records and every other file of the source, holds the rewritten `ptbxl_database.csv`, and
a `SHA256SUMS.txt` without that table's line. It prints how many words of the rewritten reports the glossary left
untranslated, and how often the clinical-efficacy extractor reads the same statements before and after (it was not
faithful enough to ship: README).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (regular expression on the normalised report, English phrase), applied in order; a phrase once written is never
# matched again
DE = [
    # rhythm
    (r"sinusrhythmus", "sinus rhythm."),
    (r"sinus arrhythmie", "sinus arrhythmia."),
    (r"sinusbr?s?adykardie", "sinus bradycardia."),
    (r"sinustachykardie", "sinus tachycardia."),
    (r"vorhofflimmern", "atrial fibrillation."),
    (r"vorhofflattern", "atrial flutter."),
    (r"supraventrikulaere extrasystole\(n\)", "premature atrial contraction(s)."),
    (r"ventrikulaere extrasystole\(n\)", "premature ventricular contraction(s)."),
    (r"bigeminus", "bigeminy."),
    (r"pacemaker ekg", "pacemaker ecg."),
    (r"a-v block i\b", "prolonged pr interval."),
    (r"av block\s+i\b", "prolonged pr interval."),
    # normal
    (r"sonst normales ekg", "otherwise normal ecg."),
    (r"normales ekg", "normal ecg."),
    (r"ekg normal", "normal ecg."),
    (r"pathologisches ekg|path\.ekg", "abnormal ecg."),
    # axis
    (r"ueberdrehter linkstyp", "left axis deviation."),
    (r"ueberdrehter rechtstyp", "right axis deviation."),
    (r"linkslagetyp|linkstyp", "left axis."),
    (r"rechtstyp", "rightward axis."),
    (r"lagetyp normal", "normal axis."),
    (r"indiff\. typ", "normal axis."),
    (r"steillage", "vertical axis."),
    # conduction
    (r"unvollstaendiger rechtsschenkelblock", "incomplete right bundle branch block."),
    (r"part\. rsb", "incomplete right bundle branch block."),
    (r"rechtsschenkelblock", "right bundle branch block."),
    (r"unvollstaendiger linksschenkelblock", "incomplete left bundle branch block."),
    (r"linksschenkelblock", "left bundle branch block."),
    (r"linksanteriorer hemiblock|lahb", "left anterior fascicular block."),
    (r"linksposteriorer hemiblock", "left posterior fascicular block."),
    (r"unspezifische intraventrikulaere leitungsstoerung", "non-specific intraventricular block."),
    (r"intraventr\.\s*le?i?stungsstoerung|intraventr\.\s*leitungsstoerung", "intraventricular conduction delay."),
    # hypertrophy / atria
    (r"maessige amplitudenkriterien fuer linkshypertrophie", "moderate voltage criteria for lvh."),
    (r"amplitudenkriterien fuer linkshypertrophie", "voltage criteria for lvh."),
    (r"linkshypertrophie|kammerhypertrophie", "left ventricular hypertrophy."),
    (r"p-sinistrocardiale", "left atrial enlargement."),
    (r"p-verbreiterung", "broad p waves."),
    (r"vorhofsueberlastung rechts", "right atrial enlargement."),
    (r"verdacht auf", "possible"),
    # voltage
    (r"periphere niederspannung|periphere low voltage", "low limb lead voltage."),
    # repolarisation
    (r"unspezifisches abnorm(al)?es t", "non-specific t wave abnormality."),
    (r"st & t abnormal,", "st-t abnormal,"),
    (r"t abnorm(al)?\b", "t wave abnormal"),
    (r"qrs\(t\) abnorm(al)?\b", "qrs(t) abnormal."),
    (r"pathologische repolarisation", "abnormal repolarisation."),
    (r"qt-verlaengerung", "prolonged qt."),
    (r"st-hebung", "st elevation"),
    (r"t-veraenderung(en)?", "t wave changes"),
    (r"schlechte r-progression|verzoegerte r-progression", "poor r wave progression"),
    (r"ueber vorderwand|ueber der brustwand", "in chest leads"),
    (
        r"r-s uebergang in v ableitungen nach rechts verschoben",
        "r-s transition zone in v leads displaced to the right.",
    ),
    (r"inferioren ableitungen", "inferior leads"),
    (r"\bneg\b|negativ", "inverted"),
    (r"\bflach\b", "flat"),
    (r"biphasisch", "biphasic"),
    (r"hohe, spitze t|t spitz", "tall peaked t waves"),
    # infarction / ischaemia
    (r"wahrscheinlich alt", "probably old."),
    (r"wahrscheinlich", "probably"),
    (r"nicht auszuschliessen", "cannot be excluded."),
    (r"moeglich", "possible."),
    (r"anteroseptaler", "anteroseptal"),
    (r"anterolateraler", "anterolateral"),
    (r"hochlateraler", "high lateral"),
    (r"inferiorer", "inferior"),
    (r"septaler", "septal"),
    (r"anteriore", "anterior"),
    (r"myokardschaden", "myocardial injury"),
    (r"infarkt", "infarction"),
    (r"ischaemie oder linksbelastung", "ischaemia or lv strain."),
    (r"ischaemie", "ischaemia"),
    (r"chronisch", "chronic"),
    (r"pathologisch", "abnormal."),
    (r"\bkein\b", "no"),
    (r"\bsonst\b", "otherwise"),
    (r"\boder\b", "or"),
    (r"\bin\b", "in"),
    (r"\bnormal\b", "normal."),
]

SV = [
    (r"sinusrytm", "sinus rhythm."),
    (r"sinusbradykardi", "sinus bradycardia."),
    (r"sinustakykardi|sinustachykardi", "sinus tachycardia."),
    (r"foermaksflimmer/-fladder", "atrial fibrillation/flutter."),
    (r"foermaksflimmer", "atrial fibrillation."),
    (r"med hoeg kammarfrekvens", "with rapid ventricular response."),
    (r"regelbunden rytm, inga p-vag funna", "regular rhythm, no p waves found."),
    (r"supraventrikulaer\(a\) extrasystoli\(er\)|supraventrikulaera extraslag", "premature atrial contraction(s)."),
    (r"ventrikulaer\(a\) extrasystoli\(er\)|ventrikulaera extraslag", "premature ventricular contraction(s)."),
    (r"interpolerade", "interpolated"),
    (r"a-v block i\b|av-block i\b", "prolonged pr interval."),
    (r"p foerlaengd", "prolonged p wave."),
    (r"eljest normalt ekg", "otherwise normal ecg."),
    (r"normalt ekg", "normal ecg."),
    (r"inget saekert patologiskt", "no definite pathology."),
    (r"extrem vaenster el-axel", "left axis deviation."),
    (r"extrem hoeger el-axel", "right axis deviation."),
    (r"vaenster el-axel", "left axis deviation."),
    (r"svarbestaemmbar el-axel", "indeterminate axis."),
    (r"inkomplett h(oe)?gersidigt skaenkelblock", "incomplete right bundle branch block."),
    (r"h(oe)?gersidigt skaenkelblock", "right bundle branch block."),
    (r"vaenstersidigt skaenkelblock", "left bundle branch block."),
    (r"ospecifikt inkomplett skaenkelblock", "non-specific incomplete bundle branch block."),
    (r"ospecifikt skaenkelblock", "non-specific intraventricular block."),
    (r"intraventrikulaert retledningshinder", "intraventricular conduction delay."),
    (r"vaenster anteriort hemiblock|vaenster fraemre hemiblock", "left anterior fascicular block."),
    (r"vaenster posteriort hemiblock", "left posterior fascicular block."),
    (r"bifascikulaert block", "bifascicular block."),
    (r"oevervaeg wpw syndrom typ b", "consider wpw syndrome type b."),
    (r"mattliga amplitudkrit\. foer vaenster kammark?hypertrofi", "moderate voltage criteria for lvh."),
    (r"amplitudkriterier foer vaenster kammarhypertrofi", "voltage criteria for lvh."),
    (r"misstaenkt vaenster kammarhypertrofi", "possible left ventricular hypertrophy."),
    (r"vaenster kammarhypertrofi", "left ventricular hypertrophy."),
    (r"laga qrs amplituder i extremitetsavledningarna", "low limb lead voltage."),
    (
        r"broestavledningarnas r-s transition foerskjuten\s+at hoeger",
        "r-s transition zone in chest leads displaced to the right.",
    ),
    (r"avvikande qrs\(t\) foerlopp", "abnormal qrs(t)."),
    (r"st-t saenkning,", "st-t depression,"),
    (r"st saenkning,", "st depression,"),
    (r"laetta st-t foeraendringar", "minor st-t changes"),
    (r"ospecifik st-t foeraendring", "non-specific st-t changes"),
    (r"ospecifik st-foeraendring", "non-specific st changes."),
    (r"ospecifik t-foeraendring", "non-specific t wave changes."),
    (r"st-t foeraendring", "st-t changes"),
    (r"t-foeraendring", "t wave changes"),
    (r"\(hoejning\)", "(elevation)."),
    (r"sasom vid", "consistent with"),
    (r"moejligen orsakad av", "possibly due to"),
    (r"eller vaenster kammar-?\s*belastning", "or lv strain."),
    (r"eller vaenster belastning", "or lv strain."),
    (r"subendokardiell", "subendocardial"),
    (r"myokard\s*affektion|myokardaffektion", "myocardial involvement."),
    (r"myokardskada", "myocardial injury"),
    (r"patologisk q-vag", "pathological q waves"),
    (r"liten q-vag", "small q waves"),
    (r"inger misstanke pa", "suggesting"),
    (r"infarkt", "infarction"),
    (r"ischemi", "ischaemia"),
    (r"alder ej bestaem+bar", "age undetermined."),
    (r"moejligen faersk", "possibly recent."),
    (r"sannolikt aeldre", "probably old."),
    (r"boer oevervaegas", "should be considered."),
    (r"kan ej uteslutas", "cannot be excluded."),
    (r"gammal", "old"),
    (r"anterolateralt", "anterolateral"),
    (r"inferolateralt", "inferolateral"),
    (r"lateralt", "lateral"),
    (r"hoeg lateral", "high lateral"),
    (r"\bsamt\b", "and"),
    (r"\boch\b", "and"),
    (r"\beller\b", "or"),
    (r"\bi\b(?= (avl|v\d|ii))", "in"),
]

_COMPILED = {
    language: [(re.compile(pattern), phrase) for pattern, phrase in table]
    for language, table in (("de", DE), ("sv", SV))
}


def rewrite_report(report: str) -> str:
    """The report in PTB-XL's English wording when it is German or Swedish, else unchanged.

    Example: `rewrite_report("Sinusrhythmus normales EKG")` is `"sinus rhythm. normal ecg."`.
    """
    from merit_evaluation.clinical_efficacy import normalize_report
    from merit_training.report_generation import report_language

    language = report_language(report)
    if language not in _COMPILED:
        return report
    edit = re.search(r"edit:", report, flags=re.IGNORECASE)
    text = normalize_report(report)
    phrases = []

    def placeholder(phrase: str) -> str:
        phrases.append(phrase)
        return f" \x00{len(phrases) - 1}\x00 "

    for pattern, phrase in _COMPILED[language]:
        text = pattern.sub(lambda match, phrase=phrase: placeholder(phrase), text)
    text = re.sub("\x00(\\d+)\x00", lambda match: phrases[int(match.group(1))], text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,])", r"\1", text)
    text = re.sub(r"\.\.+", ".", text).replace(",.", ".").replace(".,", ",")
    return f"{text} {report[edit.start() :].lower()}".strip() if edit else text


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from merit_evaluation.clinical_efficacy import extract_statements
    from merit_training.report_generation import report_language

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="A PTB-XL copy (a folder holding ptbxl_database.csv).")
    parser.add_argument("destination", help="The new folder (must not exist).")
    args = parser.parse_args(argv)
    source, destination = Path(args.source).resolve(), Path(args.destination)
    destination.mkdir(parents=True, exist_ok=False)
    for entry in source.iterdir():
        if entry.name not in ("ptbxl_database.csv", "SHA256SUMS.txt"):
            (destination / entry.name).symlink_to(entry)
    if (source / "SHA256SUMS.txt").exists():
        lines = (source / "SHA256SUMS.txt").read_text().splitlines()
        kept = [line for line in lines if not line.endswith("ptbxl_database.csv")]
        (destination / "SHA256SUMS.txt").write_text("\n".join(kept) + "\n")
    database = pd.read_csv(source / "ptbxl_database.csv", index_col="ecg_id")
    reports = database["report"].fillna("").astype(str)
    rewritten = reports.map(lambda report: rewrite_report(report) if report.strip() else report)
    database["report"] = database["report"].where(reports.str.strip() == "", rewritten)
    database.to_csv(destination / "ptbxl_database.csv")

    english_words = {word for _, phrase in DE + SV for word in re.findall("[a-z]+", phrase)}
    english_words |= {
        word
        for report in reports[database["strat_fold"] <= 8]
        if report_language(report) == "en"
        for word in re.findall("[a-z]+", report.lower())
    }
    for name, folds in (("folds 1-8", range(1, 9)), ("folds 9-10", (9, 10))):
        words, same, counts = Counter(), 0, 0
        for before, after in zip(
            reports[database["strat_fold"].isin(folds)], rewritten[database["strat_fold"].isin(folds)]
        ):
            if before == after:
                continue
            counts += 1
            same += extract_statements(before) == extract_statements(after)
            for word in re.findall("[a-z]+", after.split("edit:")[0]):
                words[word in english_words] += 1
        print(
            f"{name}: {counts} reports rewritten, {words[False]} of {sum(words.values())} words left untranslated, "
            f"the extractor reads the same statements in {same} of them ({same / max(counts, 1):.0%})"
        )


if __name__ == "__main__":
    main()
