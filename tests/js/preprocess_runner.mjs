// Runs the static Space's readers and preprocessECG (space-static/merit-ecg.js) on files, for
// tests/test_space_static.py: `node preprocess_runner.mjs CONFIG.json CASES.json` prints one JSON result per case
// ({inputValues, leadMask, missingLeads, samplingRate}, token ids, a written .npy file, or {error}) as a JSON list.
import { readFileSync, writeFileSync } from "node:fs";
import { npyBytes, preprocessECG, readCsv, readWfdb, WordPieceTokenizer } from "../../space-static/merit-ecg.js";

const [configPath, casesPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, "utf8"));
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const results = cases.map((item) => {
  try {
    if (item.kind === "npy") {
      writeFileSync(item.path, npyBytes(Float32Array.from(item.values), [item.values.length]));
      return { written: item.path };
    }
    if (item.kind === "tokenize") {
      const tokenizer = new WordPieceTokenizer(JSON.parse(readFileSync(item.tokenizer, "utf8")));
      const encoded = tokenizer.encode(item.texts, item.max_length);
      return { inputIds: Array.from(encoded.inputIds, Number), attentionMask: Array.from(encoded.attentionMask, Number),
               length: encoded.length };
    }
    const record = item.kind === "wfdb"
      ? readWfdb(readFileSync(item.hea, "latin1"), readFileSync(item.dat))
      : readCsv(readFileSync(item.path, "latin1"), item.sampling_rate ?? null, item.path);
    const features = preprocessECG(record, config);
    return { inputValues: Array.from(features.inputValues), leadMask: Array.from(features.leadMask, Number),
             missingLeads: features.missingLeads, samplingRate: record.samplingRate };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
});
process.stdout.write(JSON.stringify(results));
