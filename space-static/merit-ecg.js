// Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
//
// What the static Space computes, without the DOM (so that Node can test it against the Python code):
//   - readers: a WFDB record (.hea + .dat, formats 16 and 212) and a CSV file (time x leads with lead names);
//   - preprocessECG: MeritFeatureExtractor's preprocessing, driven by the exported preprocessing.json;
//   - a BERT WordPiece tokenizer read from tokenizer.json (the text tower's tokenizer);
//   - zero-shot scores and the .npy writer of the embedding download.
// Errors are thrown as MeritInputError with a message meant for the page.

export class MeritInputError extends Error {
  constructor(message) {
    super(message);
    this.name = "MeritInputError";
  }
}

// ------------------------------------------------------------------------------------------------ readers

const WFDB_DEFAULT_GAIN = 200; // WFDB's default ADC gain (adu per physical unit) when a header gives none or 0
const TIME_COLUMN_NAMES = ["time", "time_s", "t", "seconds"];

function headerLines(text) {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
}

/** Parses a WFDB header text: {recordName, numSignals, samplingRate, numSamples, signals: [{file, format, gain,
 * baseline, units, name}]}. */
export function parseWfdbHeader(text) {
  if (typeof text !== "string" || /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)) {
    throw new MeritInputError("The .hea file is not a text WFDB header (it contains binary data).");
  }
  const lines = headerLines(text);
  const fields = lines.length ? lines[0].split(/\s+/) : [];
  if (fields.length < 2 || !/^\d+$/.test(fields[1])) {
    throw new MeritInputError(
      "The .hea file is not a WFDB header: its first line must be '<record name> <number of signals> " +
        `[<sampling rate> [<number of samples>]]', got '${(lines[0] || "").slice(0, 80)}'.`,
    );
  }
  const numSignals = parseInt(fields[1], 10);
  const samplingRate = fields.length > 2 ? parseFloat(fields[2].split(/[/(]/)[0]) : 250; // WFDB default: 250 Hz
  if (!(samplingRate > 0)) {
    throw new MeritInputError(`The WFDB header gives no valid sampling rate ('${fields[2]}').`);
  }
  const numSamples = fields.length > 3 ? parseInt(fields[3], 10) : null;
  const signalLines = lines.slice(1, 1 + numSignals);
  if (numSignals < 1 || signalLines.length !== numSignals) {
    throw new MeritInputError(
      `The WFDB header announces ${numSignals} signals but describes ${signalLines.length}.`,
    );
  }
  const signals = signalLines.map((line, index) => {
    const parts = line.split(/\s+/);
    const formatMatch = /^(\d+)/.exec(parts[1] || "");
    if (!formatMatch) {
      throw new MeritInputError(`Signal line ${index + 1} of the WFDB header has no storage format: '${line}'.`);
    }
    if (/[x:+]/.test(parts[1])) {
      throw new MeritInputError(
        `Signal ${index + 1} uses format '${parts[1]}' (samples per frame, skew or byte offset), which this page ` +
          "does not read; formats 16 and 212 without modifiers are supported.",
      );
    }
    const gainMatch = /^([-+0-9.eE]+)?(?:\(([-+0-9]+)\))?(?:\/(.*))?$/.exec(parts[2] || "");
    let gain = gainMatch && gainMatch[1] !== undefined ? parseFloat(gainMatch[1]) : 0;
    if (!gain) gain = WFDB_DEFAULT_GAIN;
    const adcZero = parts.length > 4 ? parseInt(parts[4], 10) : 0;
    const baseline = gainMatch && gainMatch[2] !== undefined ? parseInt(gainMatch[2], 10) : adcZero;
    return {
      file: parts[0],
      format: parseInt(formatMatch[1], 10),
      gain,
      baseline,
      units: (gainMatch && gainMatch[3]) || "mV",
      name: parts.length > 8 ? parts.slice(8).join(" ") : `signal ${index + 1}`,
    };
  });
  return { recordName: fields[0].split("/")[0], numSignals, samplingRate, numSamples, signals };
}

/** Reads a WFDB record from its header text and the bytes of its one signal file (ArrayBuffer or Uint8Array).
 * Returns {signal: Float64Array[] (one per lead, physical units), samplingRate, leadNames}; invalid samples are NaN. */
export function readWfdb(headerText, datBytes) {
  const header = parseWfdbHeader(headerText);
  const files = [...new Set(header.signals.map((signal) => signal.file))];
  if (files.length !== 1) {
    throw new MeritInputError(
      `The WFDB header names ${files.length} signal files (${files.join(", ")}); this page reads records stored in ` +
        "one .dat file.",
    );
  }
  const formats = [...new Set(header.signals.map((signal) => signal.format))];
  if (formats.length !== 1 || (formats[0] !== 16 && formats[0] !== 212)) {
    throw new MeritInputError(
      `The record is stored in WFDB format ${formats.join("/")}; this page reads formats 16 and 212.`,
    );
  }
  const bytes = datBytes instanceof Uint8Array ? datBytes : new Uint8Array(datBytes);
  const format = formats[0];
  const numLeads = header.numSignals;
  const bytesPerFrame = format === 16 ? 2 * numLeads : 1.5 * numLeads;
  const available = Math.floor(bytes.length / bytesPerFrame);
  const numSamples = header.numSamples === null || isNaN(header.numSamples) ? available : header.numSamples;
  const needed = Math.ceil(numSamples * bytesPerFrame);
  if (bytes.length < needed) {
    throw new MeritInputError(
      `The .dat file is truncated: the header announces ${numSamples} samples of ${numLeads} signals in format ` +
        `${format} (${needed} bytes), but the file has ${bytes.length} bytes.`,
    );
  }
  if (numSamples < 1) throw new MeritInputError("The WFDB record has no samples.");
  const digital = new Int32Array(numSamples * numLeads);
  if (format === 16) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let index = 0; index < digital.length; index++) digital[index] = view.getInt16(2 * index, true);
  } else {
    for (let index = 0; index < digital.length; index++) {
      const offset = 3 * (index >> 1);
      let value;
      if (index % 2 === 0) value = bytes[offset] | ((bytes[offset + 1] & 0x0f) << 8);
      else value = bytes[offset + 2] | ((bytes[offset + 1] & 0xf0) << 4);
      digital[index] = value >= 2048 ? value - 4096 : value;
    }
  }
  const invalid = format === 16 ? -32768 : -2048;
  const signal = header.signals.map((spec, lead) => {
    const values = new Float64Array(numSamples);
    for (let sample = 0; sample < numSamples; sample++) {
      const value = digital[sample * numLeads + lead];
      values[sample] = value === invalid ? NaN : (value - spec.baseline) / spec.gain;
    }
    return values;
  });
  return {
    signal,
    samplingRate: header.samplingRate,
    leadNames: header.signals.map((spec) => spec.name),
    units: header.signals.map((spec) => spec.units),
    description: `WFDB record ${header.recordName}`,
  };
}

/** A CSV cell read as a missing sample (as `CSV_MISSING_VALUES` in pipeline_merit.py). */
const CSV_MISSING_VALUES = new Set(["", "nan", "na", "n/a", "null", "none", "-"]);
function isMissingCell(cell) {
  return CSV_MISSING_VALUES.has(cell.toLowerCase());
}

/** The rate of a time column in seconds, over its whole span, and a whole number of Hz when within 0.1 % of one (as
 * `_rate_from_time_column` in pipeline_merit.py); null when the column does not increase. */
function rateFromTimeColumn(time) {
  const steps = Array.from(time.slice(1), (value, index) => value - time[index]).sort((a, b) => a - b);
  if (!steps.length || steps.some((step) => !isFinite(step))) return null;
  const median = steps.length % 2 ? steps[(steps.length - 1) / 2] : (steps[steps.length / 2 - 1] + steps[steps.length / 2]) / 2;
  const span = time[time.length - 1] - time[0];
  if (!(median > 0) || !(span > 0)) return null;
  const rate = steps.length / span;
  return Math.abs(rate - Math.round(rate)) <= 1e-3 * rate ? Math.round(rate) : Math.round(rate * 1e6) / 1e6;
}

/** Reads a time x leads CSV with a header row of lead names (an optional first column `time`, in seconds, gives the
 * sampling rate). `samplingRate` is needed when there is no time column. */
export function readCsv(text, samplingRate = null, name = "the CSV file") {
  if (typeof text !== "string" || /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)) {
    throw new MeritInputError(`${name} is not a text CSV file (it contains binary data).`);
  }
  const lines = text.replace(/^\ufeff/, "").split(/\r?\n/).filter((line) => line.trim());
  if (!lines.length) throw new MeritInputError(`${name} is empty.`);
  const delimiter = [",", ";", "\t"].find((candidate) => lines[0].includes(candidate)) || ",";
  const names = lines[0].split(delimiter).map((value) => value.trim().replace(/^"(.*)"$/, "$1"));
  if (!names.length || names.every((value) => value !== "" && !isNaN(Number(value)))) {
    throw new MeritInputError(
      `${name} must start with a header row of lead names (e.g. time,I,II,III,aVR,...), got '${lines[0].slice(0, 60)}'.`,
    );
  }
  const rows = lines.slice(1).map((line, index) => {
    const cells = line.split(delimiter).map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
    const values = cells.map((cell) => (isMissingCell(cell) ? NaN : Number(cell)));
    if (cells.length !== names.length || values.some((value, column) => isNaN(value) && !isMissingCell(cells[column]))) {
      throw new MeritInputError(`Row ${index + 2} of ${name} is not ${names.length} numbers: '${line.slice(0, 60)}'.`);
    }
    return values;
  });
  if (!rows.length) throw new MeritInputError(`${name} has a header but no samples.`);
  let columns = names.map((_, column) => Float64Array.from(rows, (row) => row[column]));
  let leadNames = names;
  if (TIME_COLUMN_NAMES.includes(names[0].toLowerCase())) {
    const time = columns[0];
    columns = columns.slice(1);
    leadNames = names.slice(1);
    const timeRate = rateFromTimeColumn(time);
    if (samplingRate === null) {
      if (timeRate === null) {
        throw new MeritInputError(`The time column '${names[0]}' of ${name} does not increase; give the sampling rate.`);
      }
      samplingRate = timeRate;
    } else if (timeRate !== null && Math.abs(samplingRate - timeRate) > 0.01 * timeRate) {
      throw new MeritInputError(
        `The time column '${names[0]}' of ${name} gives ${timeRate} Hz, but the sampling rate given is ${samplingRate} ` +
          "Hz; leave the rate out to use the file's, or fix the time column.",
      );
    }
  }
  if (samplingRate === null || !(samplingRate > 0)) {
    throw new MeritInputError(
      `${name} has no time column (a first column named time, in seconds): give its sampling rate in Hz.`,
    );
  }
  if (!leadNames.length) throw new MeritInputError(`${name} has a time column but no lead.`);
  return { signal: columns, samplingRate, leadNames, description: name };
}

// ------------------------------------------------------------------------------------------------ preprocessing

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The exact rational value of a double, as [numerator, denominator] BigInts (like Python's Fraction(float)). */
function exactFraction(value) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const high = view.getUint32(0);
  const low = view.getUint32(4);
  const exponentBits = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  let exponent;
  if (exponentBits === 0) exponent = -1074;
  else {
    mantissa |= 1n << 52n;
    exponent = exponentBits - 1075;
  }
  if (exponent >= 0) return [mantissa << BigInt(exponent), 1n];
  let denominator = 1n << BigInt(-exponent);
  const divisor = bigGcd(mantissa, denominator);
  return [mantissa / divisor, denominator / divisor];
}

function bigGcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Python's Fraction(value).limit_denominator(maxDenominator) for a positive double: [up, down] as numbers. */
export function limitDenominator(value, maxDenominator) {
  const [numerator, denominator] = exactFraction(value);
  const max = BigInt(maxDenominator);
  if (denominator <= max) return [Number(numerator), Number(denominator)];
  let [p0, q0, p1, q1] = [0n, 1n, 1n, 0n];
  let [n, d] = [numerator, denominator];
  for (;;) {
    const a = n / d;
    const q2 = q0 + a * q1;
    if (q2 > max) break;
    [p0, q0, p1, q1] = [p1, q1, p0 + a * p1, q2];
    [n, d] = [d, n - a * d];
  }
  const k = (max - q0) / q1;
  if (2n * d * (q0 + k * q1) <= denominator) return [Number(p1), Number(q1)];
  return [Number(p0 + k * p1), Number(q0 + k * q1)];
}

function besselI0(x) {
  let sum = 1;
  let term = 1;
  const quarter = (x * x) / 4;
  for (let k = 1; k < 500; k++) {
    term *= quarter / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** scipy.signal.firwin(numTaps, cutoff, window=("kaiser", beta)) for a low-pass filter (cutoff relative to Nyquist). */
function firwinKaiser(numTaps, cutoff, beta) {
  const alpha = (numTaps - 1) / 2;
  const taps = new Float64Array(numTaps);
  const normaliser = besselI0(beta);
  let sum = 0;
  for (let index = 0; index < numTaps; index++) {
    const m = index - alpha;
    const x = cutoff * m;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const ratio = (2 * index) / (numTaps - 1) - 1;
    const window = besselI0(beta * Math.sqrt(Math.max(0, 1 - ratio * ratio))) / normaliser;
    taps[index] = cutoff * sinc * window;
    sum += taps[index];
  }
  for (let index = 0; index < numTaps; index++) taps[index] /= sum;
  return taps;
}

/** scipy.signal.resample_poly(x, up, down, window=("kaiser", beta), padtype) of one lead. */
function resamplePoly(x, up, down, beta, padtype) {
  const divisor = gcd(up, down);
  up /= divisor;
  down /= divisor;
  if (up === 1 && down === 1) return Float64Array.from(x);
  const inputLength = x.length;
  const outputLength = Math.floor((inputLength * up) / down) + ((inputLength * up) % down ? 1 : 0);
  const maxRate = Math.max(up, down);
  const halfLength = 10 * maxRate;
  const taps = firwinKaiser(2 * halfLength + 1, 1 / maxRate, beta).map((tap) => tap * up);
  // the filter's delay, in output samples: scipy pads the filter in front so that outputs fall on its centre
  const prePad = down - (halfLength % down);
  const preRemove = Math.floor((halfLength + prePad) / down);
  const filter = new Float64Array(prePad + taps.length);
  filter.set(taps, prePad);
  // the signal extended at both ends ("line": the line through the first and last samples; "edge": held), far
  // enough that no output reaches past the extension; the extension is a multiple of `down` samples so that output
  // positions stay aligned
  const extension = down * (Math.ceil(filter.length / up / down) + 1);
  const slope = padtype === "line" && inputLength > 1 ? (x[inputLength - 1] - x[0]) / (inputLength - 1) : 0;
  const extended = new Float64Array(inputLength + 2 * extension);
  for (let index = 0; index < extended.length; index++) {
    const position = index - extension;
    if (position < 0) extended[index] = x[0] + position * slope;
    else if (position >= inputLength) extended[index] = x[inputLength - 1] + (position - inputLength + 1) * slope;
    else extended[index] = x[position];
  }
  const offset = (extension * up) / down; // output samples of the left extension
  const output = new Float64Array(outputLength);
  for (let out = 0; out < outputLength; out++) {
    // output n of upfirdn = sum_k filter[k] * upsampled[n * down - k], upsampled[j] = extended[j / up] if j % up == 0
    const position = (out + preRemove + offset) * down;
    let sum = 0;
    for (let k = position % up; k < filter.length && k <= position; k += up) {
      sum += filter[k] * extended[(position - k) / up];
    }
    output[out] = sum;
  }
  return output;
}

/** One pass of scipy.signal.sosfilt (transposed direct form II) with initial conditions `zi` (already scaled). */
function sosFilter(sos, x, zi) {
  const output = Float64Array.from(x);
  const state = zi.map((pair) => pair.slice());
  for (let index = 0; index < output.length; index++) {
    let value = output[index];
    for (let section = 0; section < sos.length; section++) {
      const [b0, b1, b2, , a1, a2] = sos[section];
      const s = state[section];
      const y = b0 * value + s[0];
      s[0] = b1 * value - a1 * y + s[1];
      s[1] = b2 * value - a2 * y;
      value = y;
    }
    output[index] = value;
  }
  return output;
}

/** scipy.signal.sosfiltfilt(sos, x, padlen=padlen) with odd extension. */
function sosFiltFilt(sos, zi, x, padlen) {
  const n = x.length;
  const extended = new Float64Array(n + 2 * padlen);
  for (let index = 0; index < padlen; index++) {
    extended[index] = 2 * x[0] - x[padlen - index];
    extended[n + padlen + index] = 2 * x[n - 1] - x[n - 2 - index];
  }
  extended.set(x, padlen);
  const forward = sosFilter(sos, extended, zi.map((pair) => pair.map((value) => value * extended[0])));
  forward.reverse();
  const backward = sosFilter(sos, forward, zi.map((pair) => pair.map((value) => value * forward[0])));
  backward.reverse();
  return backward.slice(padlen, padlen + n);
}

function fillNonFinite(values, policy) {
  const finite = Array.from(values, (value) => isFinite(value));
  if (finite.every(Boolean)) return values;
  const filled = Float64Array.from(values);
  if (policy === "zero") {
    finite.forEach((ok, index) => ok || (filled[index] = 0));
    return filled;
  }
  const known = [];
  finite.forEach((ok, index) => ok && known.push(index));
  let next = 0;
  for (let index = 0; index < filled.length; index++) {
    if (finite[index]) continue;
    while (next < known.length && known[next] < index) next++;
    if (next === 0) filled[index] = values[known[0]];
    else if (next === known.length) filled[index] = values[known[known.length - 1]];
    else {
      const left = known[next - 1];
      const right = known[next];
      filled[index] = values[left] + ((values[right] - values[left]) * (index - left)) / (right - left);
    }
  }
  return filled;
}

const normaliseLeadName = (name) => String(name).trim().toLowerCase();

/**
 * MeritFeatureExtractor's preprocessing of one record (one centred crop), from `config` (preprocessing.json):
 * lead selection by name, NaN filling, polyphase resampling, optional zero-phase band-pass, centre crop or end
 * padding, scaling on the real samples of the present leads.
 *
 * @param {{signal: ArrayLike<number>[], samplingRate: number, leadNames: string[], description?: string}} record
 *   one array per lead (physical units), in any lead order, at any sampling rate.
 * @param {object} config the parsed preprocessing.json.
 * @returns {{inputValues: Float32Array, leadMask: BigInt64Array, presentLeads: string[], missingLeads: string[],
 *   ignoredLeads: string[], nanSamples: number}} `inputValues` is (leads x num_samples), row-major.
 */
export function preprocessECG(record, config) {
  const description = record.description || "the record";
  const outputLeads = config.lead_names;
  const numLeads = outputLeads.length;
  const numSamples = config.num_samples;
  const targetRate = config.sampling_rate;
  const outputIndex = new Map(outputLeads.map((name, index) => [normaliseLeadName(name), index]));
  const ignorable = new Set(
    [...config.ignored_lead_names, ...config.standard_lead_names]
      .map(normaliseLeadName)
      .filter((name) => !outputIndex.has(name)),
  );
  if (!(record.samplingRate > 0)) {
    throw new MeritInputError(`The sampling rate of ${description} must be a positive number of Hz, got ${record.samplingRate}.`);
  }
  if (record.signal.length !== record.leadNames.length) {
    throw new MeritInputError(`${description} has ${record.signal.length} leads but ${record.leadNames.length} lead names.`);
  }
  // 1. lead selection
  const rows = [];
  const ignoredLeads = [];
  const seen = new Map();
  record.leadNames.forEach((name, row) => {
    const key = normaliseLeadName(name);
    if (outputIndex.has(key)) {
      if (seen.has(key)) {
        throw new MeritInputError(
          `Duplicate lead in ${description}: '${record.leadNames[seen.get(key)]}' and '${name}' are both lead ` +
            `${outputLeads[outputIndex.get(key)]} (names are case-insensitive).`,
        );
      }
      seen.set(key, row);
      rows.push([row, outputIndex.get(key)]);
    } else if (ignorable.has(key)) ignoredLeads.push(name);
    else {
      throw new MeritInputError(
        `Unknown lead name '${name}' in ${description}; expected ${outputLeads.join(", ")} (case-insensitive) or an ` +
          "ignored extra lead (Frank leads, V3R-V6R, V7-V9, MLI-MLIII).",
      );
    }
  });
  if (!rows.length) {
    throw new MeritInputError(`None of the leads ${record.leadNames.join(", ")} of ${description} is a 12-lead ECG lead.`);
  }
  const length = record.signal[0].length;
  if (!length || record.signal.some((values) => values.length !== length)) {
    throw new MeritInputError(`${description} is empty or its leads differ in length.`);
  }
  // 2. NaN handling (a lead without any finite sample is missing)
  let nanSamples = 0;
  const kept = [];
  for (const [row, output] of rows) {
    const values = record.signal[row];
    let finite = 0;
    for (let index = 0; index < length; index++) if (isFinite(values[index])) finite++;
    if (!finite) continue;
    nanSamples += length - finite;
    kept.push([output, fillNonFinite(values, config.nan_policy)]);
  }
  if (!kept.length) throw new MeritInputError(`${description} has no finite sample in any of its leads.`);
  // 3. resampling, 4. band-pass
  const resampling = config.resampling;
  const [up, down] = limitDenominator(targetRate / record.samplingRate, resampling.max_denominator);
  if (up === 0) throw new MeritInputError(`Cannot resample ${description} from ${record.samplingRate} Hz to ${targetRate} Hz.`);
  const padtype = length > 1 ? resampling.padtype : resampling.padtype_single_sample;
  const beta = resampling.window[1];
  const signals = kept.map(([output, values]) => {
    let resampled = up !== down ? resamplePoly(values, up, down, beta, padtype) : Float64Array.from(values);
    if (config.bandpass) {
      const padlen = Math.min(config.bandpass.padlen, resampled.length - 1);
      resampled = sosFiltFilt(config.bandpass.sos, config.bandpass.zi, resampled, padlen);
    }
    return [output, resampled];
  });
  // 5. centre crop or pad at the end
  const resampledLength = signals[0][1].length;
  const spare = Math.max(resampledLength - numSamples, 0);
  const start = Math.floor(spare / 2);
  const validLength = Math.min(numSamples, resampledLength - start);
  const inputValues = new Float64Array(numLeads * numSamples).fill(config.padding_value);
  const leadMask = new BigInt64Array(numLeads);
  for (let lead = 0; lead < numLeads; lead++) {
    inputValues.fill(0, lead * numSamples, (lead + 1) * numSamples); // missing leads are zeros
  }
  for (const [output, values] of signals) {
    leadMask[output] = 1n;
    inputValues.fill(config.padding_value, output * numSamples, (output + 1) * numSamples);
    inputValues.set(values.subarray(start, start + validLength), output * numSamples);
  }
  // 6. scaling over the real samples of the present leads
  const present = signals.map(([output]) => output);
  const statistics = (leads) => {
    let count = 0;
    let sum = 0;
    for (const lead of leads) for (let t = 0; t < validLength; t++) (sum += inputValues[lead * numSamples + t]), count++;
    const mean = sum / Math.max(count, 1);
    let squares = 0;
    for (const lead of leads) for (let t = 0; t < validLength; t++) squares += (inputValues[lead * numSamples + t] - mean) ** 2;
    return [mean, Math.max(Math.sqrt(squares / Math.max(count, 1)), config.min_std)];
  };
  const scale = (leads, [mean, std]) => {
    for (const lead of leads) {
      for (let t = 0; t < validLength; t++) inputValues[lead * numSamples + t] = (inputValues[lead * numSamples + t] - mean) / std;
    }
  };
  if (config.scaling === "per_lead_zscore") present.forEach((lead) => scale([lead], statistics([lead])));
  else if (config.scaling === "per_record_zscore") scale(present, statistics(present));
  else if (config.scaling !== "none") throw new Error(`Unknown scaling '${config.scaling}' in preprocessing.json.`);
  const presentSet = new Set(present);
  return {
    inputValues: Float32Array.from(inputValues),
    leadMask,
    presentLeads: outputLeads.filter((_, lead) => presentSet.has(lead)),
    missingLeads: outputLeads.filter((_, lead) => !presentSet.has(lead)),
    ignoredLeads,
    nanSamples,
  };
}

// ------------------------------------------------------------------------------------------------ tokenizer

function isPunctuation(char) {
  const code = char.codePointAt(0);
  if ((code >= 33 && code <= 47) || (code >= 58 && code <= 64) || (code >= 91 && code <= 96) || (code >= 123 && code <= 126)) {
    return true;
  }
  return /\p{P}/u.test(char);
}

function isChinese(code) {
  return (
    (code >= 0x4e00 && code <= 0x9fff) || (code >= 0x3400 && code <= 0x4dbf) || (code >= 0x20000 && code <= 0x2a6df) ||
    (code >= 0x2a700 && code <= 0x2b73f) || (code >= 0x2b740 && code <= 0x2b81f) || (code >= 0x2b820 && code <= 0x2ceaf) ||
    (code >= 0xf900 && code <= 0xfaff) || (code >= 0x2f800 && code <= 0x2fa1f)
  );
}

/** The BERT WordPiece tokenizer described by a tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece,
 * [CLS] ... [SEP]); `encode(texts, maxLength)` pads to the longest text like the Python processor. */
export class WordPieceTokenizer {
  constructor(tokenizerJson) {
    const model = tokenizerJson.model;
    if (!model || model.type !== "WordPiece") {
      throw new Error(`tokenizer.json holds a ${model && model.type} model; this page reads WordPiece (BERT) tokenizers.`);
    }
    this.vocab = new Map(Object.entries(model.vocab));
    this.unk = model.unk_token;
    this.prefix = model.continuing_subword_prefix;
    this.maxCharsPerWord = model.max_input_chars_per_word;
    const normalizer = tokenizerJson.normalizer || {};
    this.lowercase = normalizer.lowercase !== false;
    this.stripAccents = normalizer.strip_accents === null || normalizer.strip_accents === undefined ? this.lowercase : normalizer.strip_accents;
    this.chinese = normalizer.handle_chinese_chars !== false;
    this.padId = (tokenizerJson.padding && tokenizerJson.padding.pad_id) || 0;
    this.clsId = this.vocab.get("[CLS]");
    this.sepId = this.vocab.get("[SEP]");
  }

  normalise(text) {
    let cleaned = "";
    for (const char of text) {
      const code = char.codePointAt(0);
      if (code === 0 || code === 0xfffd || (/\p{C}/u.test(char) && !/[\t\n\r]/.test(char))) continue;
      if (/\s/.test(char)) cleaned += " ";
      else if (this.chinese && isChinese(code)) cleaned += ` ${char} `;
      else cleaned += char;
    }
    if (this.lowercase) cleaned = cleaned.toLowerCase();
    if (this.stripAccents) cleaned = cleaned.normalize("NFD").replace(/\p{Mn}/gu, "");
    return cleaned;
  }

  wordPieces(word) {
    const chars = Array.from(word);
    if (chars.length > this.maxCharsPerWord) return [this.vocab.get(this.unk)];
    const ids = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let id;
      while (start < end) {
        const piece = (start > 0 ? this.prefix : "") + chars.slice(start, end).join("");
        if (this.vocab.has(piece)) {
          id = this.vocab.get(piece);
          break;
        }
        end--;
      }
      if (id === undefined) return [this.vocab.get(this.unk)];
      ids.push(id);
      start = end;
    }
    return ids;
  }

  tokenize(text) {
    const words = [];
    for (const chunk of this.normalise(text).split(" ")) {
      let current = "";
      for (const char of chunk) {
        if (isPunctuation(char)) {
          if (current) words.push(current);
          words.push(char);
          current = "";
        } else current += char;
      }
      if (current) words.push(current);
    }
    return words.flatMap((word) => this.wordPieces(word));
  }

  /** {inputIds, attentionMask: BigInt64Array (batch x length), batch, length}. */
  encode(texts, maxLength) {
    const sequences = texts.map((text) => [this.clsId, ...this.tokenize(text).slice(0, maxLength - 2), this.sepId]);
    const length = Math.max(...sequences.map((ids) => ids.length));
    const inputIds = new BigInt64Array(texts.length * length).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(texts.length * length);
    sequences.forEach((ids, row) => {
      ids.forEach((id, column) => {
        inputIds[row * length + column] = BigInt(id);
        attentionMask[row * length + column] = 1n;
      });
    });
    return { inputIds, attentionMask, batch: texts.length, length };
  }
}

// ------------------------------------------------------------------------------------------------ scores, files

/** The prompts of a label: every template with the label as `{description}` (the pipeline's candidate labels). */
export function labelPrompts(label, templates) {
  return templates.map((template) => template.replace("{description}", label.trim()));
}

/** Unit-norm mean of unit-norm rows (`rows`: Float32Array of batch x dim). */
export function classEmbedding(rows, batch, dim) {
  const mean = new Float64Array(dim);
  for (let row = 0; row < batch; row++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += rows[row * dim + d] ** 2;
    norm = Math.max(Math.sqrt(norm), 1e-12);
    for (let d = 0; d < dim; d++) mean[d] += rows[row * dim + d] / norm / batch;
  }
  const norm = Math.max(Math.hypot(...mean), 1e-12);
  return Array.from(mean, (value) => value / norm);
}

/** `(1 + cosine) / 2` of a unit-norm ECG embedding and each unit-norm class embedding, clipped to [0, 1]. */
export function zeroShotScores(ecgEmbedding, classEmbeddings) {
  return classEmbeddings.map((classVector) => {
    let cosine = 0;
    for (let d = 0; d < classVector.length; d++) cosine += ecgEmbedding[d] * classVector[d];
    return Math.min(1, Math.max(0, (1 + cosine) / 2));
  });
}

/** A .npy file (format 1.0, little-endian float32, C order) of `values` with `shape`. */
export function npyBytes(values, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const bytes = new Uint8Array(10 + header.length + 4 * values.length);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  for (let index = 0; index < header.length; index++) bytes[10 + index] = header.charCodeAt(index);
  new Float32Array(bytes.buffer, 10 + header.length).set(values);
  return bytes;
}
