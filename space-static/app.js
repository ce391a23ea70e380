// Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
//
// The static Space's page: loads the exported MERIT encoders with ONNX Runtime Web (WebAssembly, vendored under
// vendor/), reads an example or an upload, preprocesses it (merit-ecg.js, from models/preprocessing.json), scores
// editable labels, draws the 12 leads and offers the embedding as a download. `window.merit` exposes the state
// (timings, last result, messages) to the browser test.
import * as ort from "./vendor/ort.wasm.min.mjs";
import {
  MeritInputError,
  WordPieceTokenizer,
  classEmbedding,
  labelPrompts,
  npyBytes,
  preprocessECG,
  readCsv,
  readWfdb,
  zeroShotScores,
} from "./merit-ecg.js";

const $ = (id) => document.getElementById(id);
const merit = { ready: false, busy: false, timings: {}, lastResult: null, messages: [], textEncoderReady: false };
window.merit = merit;

let config, defaults, ecgSession, textSession, tokenizer, textLoading, currentRecord, currentOutputs;
const classCache = new Map(); // label -> unit-norm class embedding

async function fetchJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function setStatus(text) {
  $("status").textContent = text;
}

function showMessages(items) {
  merit.messages = items.map(([kind, text]) => ({ kind, text }));
  $("messages").replaceChildren(
    ...items.map(([kind, text]) => {
      const element = document.createElement("div");
      element.className = kind;
      element.textContent = text;
      return element;
    }),
  );
}

async function init() {
  ort.env.wasm.wasmPaths = new URL("./vendor/", import.meta.url).href;
  // WASM threads need cross-origin isolation (COOP/COEP headers); without it ONNX Runtime runs one thread
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const manifest = await fetchJson("models/manifest.json");
  [config, defaults] = await Promise.all([
    fetchJson("models/preprocessing.json"),
    fetchJson("models/zero_shot_labels.json"),
  ]);
  defaults.labels.forEach((label, index) => classCache.set(label, defaults.embeddings[index]));
  ecgSession = await ort.InferenceSession.create(`models/${manifest.ecg_encoder}`, { executionProviders: ["wasm"] });
  merit.manifest = manifest;
  merit.timings.coldStartMs = performance.now();
  merit.threads = ort.env.wasm.numThreads;
  $("labels").value = defaults.labels.join("\n");
  const examples = await fetchJson("examples/index.json");
  $("example").replaceChildren(
    ...examples.map(({ record, title }) => Object.assign(document.createElement("option"), { value: record, textContent: title })),
  );
  for (const id of ["analyse-example", "analyse-upload", "rescore"]) $(id).disabled = false;
  setStatus(
    `Model ${manifest.model} loaded (${manifest.ecg_encoder}, ${merit.threads} WASM thread(s)) in ` +
      `${(merit.timings.coldStartMs / 1000).toFixed(2)} s. Pick an example or upload an ECG.`,
  );
  merit.ready = true;
  textLoading = loadTextEncoder(manifest);
}

async function loadTextEncoder(manifest) {
  try {
    tokenizer = new WordPieceTokenizer(await fetchJson("models/tokenizer.json"));
    textSession = await ort.InferenceSession.create(`models/${manifest.text_encoder}`, { executionProviders: ["wasm"] });
    merit.textEncoderReady = true;
    $("text-status").textContent = "Text encoder loaded: any label can be scored.";
  } catch (error) {
    $("text-status").textContent = `The text encoder could not be loaded (${error.message}); only the default labels can be scored.`;
    throw error;
  }
}

async function embedLabel(label) {
  if (classCache.has(label)) return classCache.get(label);
  if (!merit.textEncoderReady) {
    $("text-status").textContent = "Waiting for the text encoder to embed the new labels…";
    await textLoading;
  }
  const prompts = labelPrompts(label, defaults.templates);
  const encoded = tokenizer.encode(prompts, config.max_text_length);
  const shape = [encoded.batch, encoded.length];
  const output = await textSession.run({
    input_ids: new ort.Tensor("int64", encoded.inputIds, shape),
    attention_mask: new ort.Tensor("int64", encoded.attentionMask, shape),
  });
  const rows = output.text_embedding;
  const embedding = classEmbedding(rows.data, rows.dims[0], rows.dims[1]);
  classCache.set(label, embedding);
  return embedding;
}

function currentLabels() {
  const labels = $("labels").value.split("\n").map((label) => label.trim()).filter(Boolean);
  if (!labels.length) throw new MeritInputError("Give at least one candidate label (one per line).");
  if (new Set(labels).size !== labels.length) throw new MeritInputError("The candidate labels contain duplicates.");
  return labels;
}

async function score() {
  const labels = currentLabels();
  const classEmbeddings = [];
  for (const label of labels) classEmbeddings.push(await embedLabel(label));
  const scores = zeroShotScores(currentOutputs.embedding, classEmbeddings);
  const ranked = labels.map((label, index) => ({ label, score: scores[index] })).sort((a, b) => b.score - a.score);
  $("scores").replaceChildren(
    ...ranked.map(({ label, score }) => {
      const row = document.createElement("tr");
      const bar = Object.assign(document.createElement("div"), { className: "bar" });
      bar.style.width = `${Math.round(score * 100)}%`;
      const cells = [label, score.toFixed(3), ""].map((text) => Object.assign(document.createElement("td"), { textContent: text }));
      cells[1].className = "score";
      cells[2].style.width = "40%";
      cells[2].append(bar);
      row.append(...cells);
      return row;
    }),
  );
  return ranked;
}

async function analyse(record) {
  const start = performance.now();
  const features = preprocessECG(record, config);
  const leads = config.lead_names.length;
  const output = await ecgSession.run({
    input_values: new ort.Tensor("float32", features.inputValues, [1, leads, config.num_samples]),
    lead_mask: new ort.Tensor("int64", features.leadMask, [1, leads]),
  });
  currentRecord = { record, features };
  currentOutputs = { embedding: output.embedding.data, pooled: output.pooled.data };
  const ranked = await score();
  drawEcg($("ecg"), record, features);
  merit.timings.analysisMs = performance.now() - start;
  const messages = [];
  if (features.missingLeads.length) {
    messages.push([
      "warning",
      `Only ${features.presentLeads.length} of ${leads} leads recorded (${features.presentLeads.join(", ")}): the missing ` +
        `leads ${features.missingLeads.join(", ")} were masked out, as MERIT does for missing leads. Scores from fewer ` +
        "leads are less reliable.",
    ]);
  }
  if (features.ignoredLeads.length) messages.push(["note", `Ignored extra leads: ${features.ignoredLeads.join(", ")}.`]);
  if (features.nanSamples) messages.push(["note", `${features.nanSamples} missing samples were interpolated.`]);
  messages.push([
    "note",
    `${record.description}: ${record.signal[0].length} samples at ${record.samplingRate} Hz, analysed in ` +
      `${(merit.timings.analysisMs / 1000).toFixed(2)} s.`,
  ]);
  showMessages(messages);
  $("download").disabled = $("download-pooled").disabled = false;
  merit.lastResult = {
    description: record.description,
    scores: ranked,
    embedding: Array.from(currentOutputs.embedding),
    pooled: Array.from(currentOutputs.pooled),
    leadMask: Array.from(features.leadMask, Number),
    missingLeads: features.missingLeads,
    analysisMs: merit.timings.analysisMs,
  };
  return merit.lastResult;
}

async function readUpload(files, csvRate) {
  const byExtension = (extension) => files.filter((file) => file.name.toLowerCase().endsWith(extension));
  const [headers, signals, tables] = [byExtension(".hea"), byExtension(".dat"), byExtension(".csv")];
  const others = files.filter((file) => !/\.(hea|dat|csv)$/i.test(file.name));
  if (!files.length) throw new MeritInputError("Choose a file first: a .hea and a .dat file together, or one .csv file.");
  if (others.length) {
    throw new MeritInputError(`Unsupported file ${others[0].name}: upload a .hea and a .dat file together, or one .csv file.`);
  }
  if (tables.length === 1 && files.length === 1) return readCsv(await tables[0].text(), csvRate, tables[0].name);
  if (headers.length === 1 && signals.length === 1 && files.length === 2) {
    return readWfdb(await headers[0].text(), await signals[0].arrayBuffer());
  }
  throw new MeritInputError(
    `Got ${files.map((file) => file.name).join(", ")}: upload a WFDB record as its .hea and .dat files together, or one .csv file.`,
  );
}

async function run(task) {
  if (merit.busy) return;
  merit.busy = true;
  try {
    await task();
  } catch (error) {
    const known = error instanceof MeritInputError;
    showMessages([["error", known ? error.message : `Unexpected error: ${error.message}`]]);
    merit.lastError = error.message;
    if (!known) console.error(error);
  } finally {
    merit.busy = false;
    merit.done = (merit.done || 0) + 1;
  }
}

function download(name, values) {
  const url = URL.createObjectURL(new Blob([npyBytes(values, [values.length])], { type: "application/octet-stream" }));
  Object.assign(document.createElement("a"), { href: url, download: name }).click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ------------------------------------------------------------------------------------------------ plot

const STANDARD_LAYOUT = [
  ["I", "aVR", "V1", "V4"],
  ["II", "aVL", "V2", "V5"],
  ["III", "aVF", "V3", "V6"],
];
const MM = 4; // pixels per millimetre: 25 mm/s -> 100 px/s, 10 mm/mV -> 40 px/mV
const UNIT_TO_MV = { mv: 1, uv: 1e-3, "µv": 1e-3, "μv": 1e-3, v: 1e3 };

function drawEcg(canvas, record, features) {
  const context = canvas.getContext("2d");
  const left = 40;
  const rowHeight = 30 * MM;
  const width = 4 * 62.5 * MM;
  canvas.width = left + width + 20;
  canvas.height = 4 * rowHeight + 20;
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let x = 0; x <= width; x += MM) {
    context.strokeStyle = x % (5 * MM) ? "#fbe3e3" : "#f2b8b8";
    context.beginPath();
    context.moveTo(left + x, 10);
    context.lineTo(left + x, 10 + 4 * rowHeight);
    context.stroke();
  }
  for (let y = 0; y <= 4 * rowHeight; y += MM) {
    context.strokeStyle = y % (5 * MM) ? "#fbe3e3" : "#f2b8b8";
    context.beginPath();
    context.moveTo(left, 10 + y);
    context.lineTo(left + width, 10 + y);
    context.stroke();
  }
  const byName = new Map(record.leadNames.map((name, index) => [name.trim().toLowerCase(), index]));
  const present = new Set(features.presentLeads);
  const rate = record.samplingRate;
  const trace = (lead, startSeconds, seconds, x0, yMid) => {
    const index = byName.get(lead.toLowerCase());
    context.fillStyle = "#000";
    context.font = "14px sans-serif";
    context.fillText(lead, x0 + 4, yMid - 12 * MM + 14);
    if (!present.has(lead) || index === undefined) {
      context.fillStyle = "#999";
      context.fillText("not recorded", x0 + 30, yMid + 5);
      return;
    }
    const values = record.signal[index];
    const units = record.units ? record.units[index] : "mV";
    const scale = UNIT_TO_MV[String(units).toLowerCase()] ?? 1;
    const first = Math.round(startSeconds * rate);
    const count = Math.min(Math.round(seconds * rate), values.length - first);
    let mean = 0;
    let finite = 0;
    for (let i = 0; i < count; i++) if (isFinite(values[first + i])) (mean += values[first + i]), finite++;
    mean /= Math.max(finite, 1);
    context.strokeStyle = "#111";
    context.lineWidth = 1.2;
    context.beginPath();
    let drawing = false;
    for (let i = 0; i < count; i++) {
      const value = values[first + i];
      if (!isFinite(value)) {
        drawing = false;
        continue;
      }
      const x = x0 + (i / rate) * 25 * MM;
      const y = yMid - (value - mean) * scale * 10 * MM;
      drawing ? context.lineTo(x, y) : context.moveTo(x, y);
      drawing = true;
    }
    context.stroke();
    context.lineWidth = 1;
  };
  STANDARD_LAYOUT.forEach((row, rowIndex) => {
    row.forEach((lead, column) => trace(lead, 2.5 * column, 2.5, left + column * 62.5 * MM, 10 + (rowIndex + 0.5) * rowHeight));
  });
  trace("II", 0, 10, left, 10 + 3.5 * rowHeight);
  for (let row = 0; row < 4; row++) {
    const y = 10 + (row + 0.5) * rowHeight;
    context.strokeStyle = "#111";
    context.beginPath(); // 1 mV calibration pulse
    context.moveTo(left - 34, y);
    context.lineTo(left - 30, y);
    context.lineTo(left - 30, y - 10 * MM);
    context.lineTo(left - 10, y - 10 * MM);
    context.lineTo(left - 10, y);
    context.lineTo(left - 6, y);
    context.stroke();
  }
}

// ------------------------------------------------------------------------------------------------ wiring

$("analyse-example").addEventListener("click", () =>
  run(async () => {
    const name = $("example").value;
    const [header, signal] = await Promise.all([
      fetch(`examples/${name}.hea`).then((response) => response.text()),
      fetch(`examples/${name}.dat`).then((response) => response.arrayBuffer()),
    ]);
    const record = readWfdb(header, signal);
    record.description = `Example ${$("example").selectedOptions[0].textContent}`;
    await analyse(record);
  }),
);
$("analyse-upload").addEventListener("click", () =>
  run(async () => {
    const rate = $("csv-rate").value ? Number($("csv-rate").value) : null;
    await analyse(await readUpload(Array.from($("upload").files), rate));
  }),
);
$("rescore").addEventListener("click", () =>
  run(async () => {
    if (!currentOutputs) throw new MeritInputError("Analyse an ECG first.");
    merit.lastResult = { ...merit.lastResult, scores: await score() };
  }),
);
$("download").addEventListener("click", () => download("merit_embedding.npy", currentOutputs.embedding));
$("download-pooled").addEventListener("click", () => download("merit_pooled.npy", currentOutputs.pooled));

init().catch((error) => {
  setStatus(`The model could not be loaded: ${error.message}`);
  merit.loadError = error.message;
  console.error(error);
});
