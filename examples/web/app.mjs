// Runs the model that model.json (written by `compress run` at the top of the output folder)
// says to ship to onnxruntime-web, with the preprocessing model.json states: no constant of the
// model is written here. URL parameters: ?run=<folder served as /run/> is fixed by serve.py;
// ?test=<file under /run/> classifies that JSON's raw inputs and writes the predictions into
// #result (what tests/examples/test_web.py reads).
import * as ort from "./ort/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const contract = await (await fetch("run/model.json")).json();
const row = (contract.runtimes || []).find((r) => r.runtime === "onnxruntime-web" && r.path);
const file = row ? row.path : contract.ship;
const session = await ort.InferenceSession.create(`run/${file}`, { executionProviders: ["wasm"] });
// Number(): a shape written by another tool may hold its dimensions as strings
const [, channels, height, width] = contract.input.shape.map(Number);
const pre = contract.preprocessing;
const labels = contract.class_labels || [];
$("status").textContent = `${file} (${row ? "chosen for onnxruntime-web" : "the shipped model"}` +
  `${row ? `: p50 ${row.p50_ms.toPrecision(3)} ms in Node, ${row.accuracy_pct.toFixed(2)} %` : ""}), ` +
  `input ${channels}x${height}x${width}`;

// raw (model layout, as test_data.npz holds it) -> (raw - mean[c]) / std[c] in float64, then
// float32: the formula of model.json's preprocessing
function preprocess(raw) {
  const x = new Float32Array(raw.length);
  const per = height * width;
  for (let i = 0; i < raw.length; i++) {
    const c = Math.floor(i / per) % channels;
    const mean = pre.mean[pre.mean.length === 1 ? 0 : c];
    const std = pre.std[pre.std.length === 1 ? 0 : c];
    x[i] = (raw[i] - mean) / std;
  }
  return x;
}

async function classify(raw) {
  const n = raw.length / (channels * height * width);
  const input = new ort.Tensor("float32", preprocess(raw), [n, channels, height, width]);
  const t0 = performance.now();
  const out = await session.run({ [session.inputNames[0]]: input });
  const ms = performance.now() - t0;
  const logits = out[session.outputNames[0]];
  const k = logits.dims[1];
  const preds = [];
  for (let i = 0; i < n; i++) {
    const row = logits.data.subarray(i * k, (i + 1) * k);
    preds.push(row.indexOf(Math.max(...row)));
  }
  return { preds, ms, logits: logits.data.subarray(0, k) };
}

function show({ preds, ms, logits }) {
  $("answer").textContent = labels[preds[0]] ?? preds[0];
  $("latency").textContent = `(${ms.toFixed(2)} ms for session.run)`;
  const max = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  $("scores").innerHTML = e.map((v, i) => `<tr><td>${labels[i] ?? i}</td><td>${(100 * v / sum).toFixed(1)} %</td></tr>`).join("");
}

// A picture (canvas or dropped image) -> the model's raw layout: scaled to width x height,
// ink = dark-on-light inverted so a drawn stroke is high, scaled to the raw range the test
// data uses (?raw_max=, default 16: scikit-learn digits store ink as 0..16)
const rawMax = Number(params.get("raw_max") ?? 16);
function rawFromImage(source) {
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  const g = c.getContext("2d");
  g.fillStyle = "white"; g.fillRect(0, 0, width, height);
  g.drawImage(source, 0, 0, width, height);
  const px = g.getImageData(0, 0, width, height).data;
  const raw = new Float32Array(channels * height * width);
  for (let p = 0; p < height * width; p++) {
    for (let ch = 0; ch < channels; ch++) {
      const v = channels === 1 ? (px[4 * p] + px[4 * p + 1] + px[4 * p + 2]) / 3 : px[4 * p + ch];
      raw[ch * height * width + p] = channels === 1 ? (255 - v) / 255 * rawMax : v / 255 * rawMax;
    }
  }
  return raw;
}

const pad = $("pad");
const g = pad.getContext("2d");
function clear() { g.fillStyle = "white"; g.fillRect(0, 0, pad.width, pad.height); }
clear();
let drawing = false;
pad.addEventListener("pointerdown", (e) => { drawing = true; g.beginPath(); g.moveTo(e.offsetX, e.offsetY); });
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  g.lineWidth = 22; g.lineCap = "round"; g.strokeStyle = "black";
  g.lineTo(e.offsetX, e.offsetY); g.stroke();
});
pad.addEventListener("pointerup", async () => { drawing = false; show(await classify(rawFromImage(pad))); });
$("clear").onclick = clear;
$("classify").onclick = async () => show(await classify(rawFromImage(pad)));
const drop = $("drop");
drop.addEventListener("dragover", (e) => e.preventDefault());
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  const img = await createImageBitmap(e.dataTransfer.files[0]);
  show(await classify(rawFromImage(img)));
});

if (params.get("test")) {
  // the test split's raw inputs, one call per sample as an app would make them
  const test = await (await fetch(`run/${params.get("test")}`)).json();
  const per = channels * height * width;
  const preds = [], times = [];
  for (let i = 0; i < test.x.length / per; i++) {
    const r = await classify(Float32Array.from(test.x.slice(i * per, (i + 1) * per)));
    preds.push(r.preds[0]); times.push(r.ms);
  }
  $("result").textContent = JSON.stringify({ file, preds, times_ms: times });
  $("result").hidden = false;
}
$("status").dataset.ready = "1";
