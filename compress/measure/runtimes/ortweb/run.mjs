// compress's onnxruntime-web runner (compress/measure/runtimes/ortweb.py starts it with Node).
// node run.mjs REQUEST.json: loads every model with the WASM backend, 1 thread, predicts the
// test inputs, then times session.run with performance.now() (process start, file reading and
// loading are outside the timed region), models interleaved in chunks, the order rotating each
// round as compress/measure/latency.py does. Writes OUT/result.json and OUT/<name>.logits.bin
// (float32, little endian).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-web";

const req = JSON.parse(readFileSync(process.argv[2], "utf8"));
ort.env.wasm.numThreads = 1;
ort.env.wasm.simd = true;
ort.env.logLevel = "error";

const raw = readFileSync(req.x_path);
const x = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const [n, ...sample] = req.x_shape;
const per = sample.reduce((a, b) => a * b, 1);

function batchOf(size) {
  // the first `size` test rows, repeated when the test split is smaller (measure.ort.batch_of)
  const out = new Float32Array(size * per);
  for (let i = 0; i < size; i++) out.set(x.subarray((i % n) * per, (i % n + 1) * per), i * per);
  return new ort.Tensor("float32", out, [size, ...sample]);
}

const models = {};
for (const [name, path] of Object.entries(req.models)) {
  try {
    const session = await ort.InferenceSession.create(path, {
      executionProviders: ["wasm"], graphOptimizationLevel: "all",
    });
    const meta = session.inputMetadata?.[0];
    const dim = meta && meta.isTensor ? meta.shape[0] : undefined;
    models[name] = { session, fixed: typeof dim === "number" ? dim : null };
  } catch (e) {
    models[name] = { error: String(e.message || e).split("\n")[0].slice(0, 300) };
  }
}

async function run(m, tensor) {
  const feeds = { [m.session.inputNames[0]]: tensor };
  const out = await m.session.run(feeds);
  return out[m.session.outputNames[0]];
}

const result = { versions: { node: process.versions.node, "onnxruntime-web": ort.env.versions?.web },
                 models: {} };
for (const [name, m] of Object.entries(models)) {
  if (m.error) {
    result.models[name] = { loaded: false, error: m.error };
    continue;
  }
  try {
    // predictions: the whole test split, batch by batch (the model's own batch when fixed; the
    // last batch padded with the first row, then cut)
    const b = m.fixed || req.predict_batch;
    const chunks = [];
    let classes = 0;
    for (let i = 0; i < n; i += b) {
      const rows = Math.min(b, n - i);
      const t = new Float32Array(b * per);
      t.set(x.subarray(i * per, (i + rows) * per));
      const out = await run(m, new ort.Tensor("float32", m.fixed ? t : t.subarray(0, rows * per),
                                              [m.fixed ? b : rows, ...sample]));
      classes = out.dims[1];
      chunks.push(out.data.slice(0, rows * classes));
    }
    const logits = new Float32Array(n * classes);
    let at = 0;
    for (const c of chunks) { logits.set(c, at); at += c.length; }
    writeFileSync(join(req.out, `${name}.logits.bin`), Buffer.from(logits.buffer));
    result.models[name] = { loaded: true, logits_shape: [n, classes], latency: {},
                            fixed_batch: m.fixed };
  } catch (e) {
    result.models[name] = { loaded: false, error: String(e.message || e).split("\n")[0].slice(0, 300) };
  }
}

for (const size of req.batch_sizes) {
  const tensor = batchOf(size);
  const names = Object.keys(result.models).filter(
    (k) => result.models[k].loaded && (!models[k].fixed || models[k].fixed === size));
  for (const k of names) for (let i = 0; i < req.warmup_runs; i++) await run(models[k], tensor);
  const times = Object.fromEntries(names.map((k) => [k, []]));
  const spent = Object.fromEntries(names.map((k) => [k, 0]));
  const start = performance.now();
  for (let round = 0; ; round++) {
    const pending = names.filter((k) => times[k].length < req.min_runs || spent[k] < req.min_time_ms);
    if (!pending.length || performance.now() - start > req.max_time_ms) break;
    const r = round % pending.length;
    for (const k of [...pending.slice(r), ...pending.slice(0, r)]) {
      for (let i = 0; i < req.chunk; i++) {
        const t0 = performance.now();
        await run(models[k], tensor);
        const dt = performance.now() - t0;
        times[k].push(dt);
        spent[k] += dt;
      }
    }
  }
  for (const k of names) result.models[k].latency[`b${size}`] = times[k];
}
writeFileSync(join(req.out, "result.json"), JSON.stringify(result));
