"""Run by tests/test_pipelines.py in a fresh interpreter where `modeling_merit` is NOT importable: every MERIT pipeline
and the Inference Endpoints handler, loaded from saved checkpoints with `trust_remote_code=True`, answer a real WFDB
record; the answers are written as JSON for comparison with the in-process calls.

Usage: python pipelines_fresh_process.py DUAL_CHECKPOINT CLASSIFIER_CHECKPOINT REPORT_CHECKPOINT RECORD LABELS_JSON
              OUTPUT_JSON
"""

import base64
import json
import sys
from pathlib import Path


sys.modules["modeling_merit"] = None  # the installed package must not be used
try:
    import modeling_merit  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("modeling_merit is importable; the test would not exercise remote code")

import wfdb  # noqa: E402
from transformers import pipeline  # noqa: E402


def main():
    dual_checkpoint, classifier_checkpoint, report_checkpoint, record, labels_json, output = sys.argv[1:7]
    labels = json.loads(labels_json)
    answers = {}

    zero_shot = pipeline("zero-shot-ecg-classification", model=dual_checkpoint, trust_remote_code=True, device=-1)
    answers["zero_shot_module"] = type(zero_shot).__module__
    answers["zero_shot"] = zero_shot(record, candidate_labels=labels)
    answers["zero_shot_batch"] = zero_shot([record, record + ".hea"], candidate_labels=labels)
    # a model loaded from remote code saves a complete checkpoint again (pipeline code, handler, processor)
    zero_shot.save_pretrained("resaved")
    resaved = pipeline("zero-shot-ecg-classification", model="resaved", trust_remote_code=True, device=-1)
    answers["zero_shot_resaved"] = resaved(record, candidate_labels=labels)
    answers["resaved_files"] = sorted(path.name for path in Path("resaved").iterdir())

    features = pipeline("ecg-feature-extraction", model=dual_checkpoint, trust_remote_code=True, device=-1)
    answers["features_projected"] = features(record)
    answers["features_pooled"] = features(record, embedding="pooled")

    classifier = pipeline("ecg-classification", model=classifier_checkpoint, trust_remote_code=True, device=-1)
    answers["classifier_module"] = type(classifier.model).__module__
    answers["classification"] = classifier(record)

    generator = pipeline("ecg-report-generation", model=report_checkpoint, trust_remote_code=True, device=-1)
    answers["report"] = generator(record, max_new_tokens=6)

    sys.path.insert(0, dual_checkpoint)  # an Inference Endpoint imports handler.py from the repository folder
    from handler import EndpointHandler

    handler = EndpointHandler(dual_checkpoint)
    # a client sends the WFDB files base64-encoded ...
    files = {suffix: base64.b64encode(Path(record + f".{suffix}").read_bytes()).decode() for suffix in ("hea", "dat")}
    body = {"inputs": files, "parameters": {"candidate_labels": labels}}
    answers["handler_wfdb"] = handler(json.loads(json.dumps(body)))
    # ... or the signal as a nested list leads x samples (in mV) with its sampling rate and lead names
    signal, fields = wfdb.rdsamp(record)
    body = {
        "inputs": signal.T.tolist(),
        "parameters": {"sampling_rate": fields["fs"], "lead_names": fields["sig_name"], "candidate_labels": labels},
    }
    answers["handler_nested_list"] = handler(json.loads(json.dumps(body)))
    body = {"inputs": signal.T.tolist(), "parameters": {"sampling_rate": fields["fs"], "lead_names": fields["sig_name"],
                                                        "task": "ecg-feature-extraction"}}  # fmt: skip
    answers["handler_features"] = handler(json.loads(json.dumps(body)))
    Path(output).write_text(json.dumps(answers))


if __name__ == "__main__":
    main()
