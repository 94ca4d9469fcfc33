"""Which MiniLM students can meet both of the pipeline's gates (test cosine >= 0.95 and >= 5x
lower p50 latency than the fp32 teacher)? The depth / quality / speed frontier, measured.

For each student shape given (the teacher layers it keeps, optionally with least-squares
"bridges"), the script cuts the student out of the teacher of a finished `minilm` run exactly as
`embed_distill` does (layer subset, feed-forward pruning, corpus vocabulary), trains it with
the pipeline's own recipe (its data, primary_repeats, batch size, lr, schedule) for `--steps`
steps, and reports its val cosine before and after training. Every trained student is then
exported (unfused LayerNorm graph) and dynamic-int8 quantized (ORT's quantize_dynamic with
per-channel int8 weights, the pipeline's dynamic setting, without its shape-inference
pre-pass), and all of them are timed interleaved against the run's fp32 teacher ONNX (batch
1, 128 real tokens, ORT 1 thread), so the speed-ups are side-by-side ratios.

A bridge sits in front of a kept layer whose teacher predecessor was dropped: a 384 x 384 linear
map fitted by least squares, on the teacher's own hidden states of train sentences, from what
the previous kept layer outputs to what this layer received in the teacher (one more MatMul at
inference). It is a research option here, not a pipeline field: at two layers it lifts the
untrained student's val cosine from 0.34 to 0.75 but the trained one by only 0.001.

    python benchmarks/minilm_students.py RUN_DIR [--steps 3500] [--jobs 2] \
        [--students 0,5 0,5+bridge 0,2,5+bridge 0,2,4,5+bridge]

RUN_DIR is a finished `compress run pipelines/minilm.yaml --out X` folder's X/minilm. Training
runs `--jobs` students at once, each on one thread (two 1-thread trainings use two cores better
than one 2-thread training). Writes benchmarks/results/minilm_students.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
PIPELINE = HERE.parent / "pipelines" / "minilm.yaml"


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_spec(spec: str) -> tuple[list[int], bool]:
    layers, _, extra = spec.partition("+")
    if extra not in ("", "bridge") or not all(x.isdigit() for x in layers.split(",")):
        fail(f"student '{spec}': write LAYERS or LAYERS+bridge, e.g. 0,2,5+bridge")
    return [int(x) for x in layers.split(",")], extra == "bridge"


def bridged_layer_class():
    from transformers.models.bert.modeling_bert import BertLayer

    class BridgedBertLayer(BertLayer):
        """A BERT layer that first maps its input through a learned linear `bridge`."""

        def __init__(self, config):
            super().__init__(config)
            self.bridge = torch.nn.Linear(config.hidden_size, config.hidden_size)

        def forward(self, hidden_states, *args, **kwargs):
            return super().forward(self.bridge(hidden_states), *args, **kwargs)

    return BridgedBertLayer


@torch.no_grad()
def add_bridges(student, teacher, tok, sentences: list[str], layers: list[int]) -> None:
    """In front of every kept layer j whose teacher predecessor was dropped: the least-squares
    map, over every real token of `sentences`, from what the teacher's previous kept layer
    outputs to what the teacher's layer j receives. (Fitted on the student's own activations
    instead, with earlier bridges in place, the 3-layer student started lower: 0.55 against
    0.76 val cosine.)"""
    from compress.text.encoder import tokenize

    cls = bridged_layer_class()
    states = []
    for i in range(0, len(sentences), 50):
        ids, mask = (torch.from_numpy(a) for a in tokenize(tok, sentences[i:i + 50]))
        hs = teacher.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        states.append((hs.hidden_states, mask.bool()))
    for j in range(1, len(layers)):
        src, dst = layers[j - 1] + 1, layers[j]
        if src == dst:
            continue
        x = torch.cat([h[src][real] for h, real in states])
        y = torch.cat([h[dst][real] for h, real in states])
        sol = torch.linalg.lstsq(torch.cat([x, torch.ones(len(x), 1)], 1), y).solution
        old = student.bert.encoder.layer[j]
        new = cls(student.bert.config).train(old.training)
        new.load_state_dict(old.state_dict(), strict=False)
        new.bridge.weight.copy_(sol[:-1].T)
        new.bridge.bias.copy_(sol[-1])
        student.bert.encoder.layer[j] = new


def train_one(job: dict) -> dict:
    """Cut, (bridge,) train and export one student; runs in its own process."""
    torch.set_num_threads(1)
    from compress import artifacts
    from compress.config import load_pipeline
    from compress.data import load_dataset
    from compress.text.corpus import teacher_embeddings
    from compress.text.distillation import (
        epoch_pool,
        fit_batches,
        length_grouped_batches,
        make_optimizer,
        make_student,
    )
    from compress.text.encoder import embed, encoder_from_checkpoint, load_tokenizer, tokenize
    from compress.text.export import export_encoder
    from compress.text.graph import unfuse_skip_layernorm
    from compress.text.metrics import mean_cosine
    from compress.text.shrink import ff_importance, prune_ff

    run = Path(job["run"])
    pipe = load_pipeline(PIPELINE)
    base = next(s for s in pipe.stages if s.stage == "embed_distill")
    layers, bridge = parse_spec(job["spec"])
    cfg = base.model_copy(update={"layers": layers})
    corpus = load_dataset(pipe.data)
    ckpt_path = run / "teacher" / "model.pt"
    teacher = encoder_from_checkpoint(artifacts.load_checkpoint(ckpt_path), ckpt_path)
    targets = teacher_embeddings(ckpt_path)
    tok = load_tokenizer(run / "teacher")
    train = corpus.train
    torch.manual_seed(cfg.seed)
    if bridge:  # bridges first, then the feed-forward pruning ranks neurons on bridged inputs
        student = make_student(teacher, tok, cfg.model_copy(update={"ff_neurons": None}), train)
        primary = corpus.primary_train or len(train)
        fit = train[:primary][:500] + train[primary:primary + 3000:6]
        add_bridges(student, teacher, tok, fit, layers)
        if cfg.ff_neurons is not None:
            ids, mask = tokenize(tok, train[: cfg.importance_sentences])
            prune_ff(student, cfg.ff_neurons, ff_importance(student, ids, mask))
    else:
        student = make_student(teacher, tok, cfg, train)
    del teacher
    student.eval()
    initial = mean_cosine(embed(student, tok, corpus.val), targets["val"])
    if cfg.freeze_embeddings:
        student.bert.embeddings.requires_grad_(False)
    steps = job["steps"]
    opt, sched = make_optimizer(student, cfg, steps)
    pool = epoch_pool(len(train), corpus.primary_train, cfg.primary_repeats)
    lengths = np.array([len(train[j]) for j in pool])
    y = torch.from_numpy(targets["train"])
    rng = np.random.default_rng(cfg.seed)
    t0, done = time.perf_counter(), 0
    while done < steps:  # the stage's epochs, the last one cut at `steps`
        batches = [pool[b] for b in length_grouped_batches(lengths, cfg.batch_size, rng)]
        batches = batches[: steps - done]
        fit_batches(student, opt, sched, batches, tok, train, y, cfg)
        done += len(batches)
    train_s = time.perf_counter() - t0
    student.eval()
    val = mean_cosine(embed(student, tok, corpus.val), targets["val"])
    fp32 = Path(job["tmp"]) / f"{job['name']}.onnx"
    export_encoder(student, fp32, 18, 128)
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(fp32)
    unfuse_skip_layernorm(model)
    onnx.save(model, fp32)
    int8 = fp32.with_name(f"{job['name']}_int8.onnx")
    quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    return {"student": job["spec"], "layers": layers, "bridge": bridge,
            "ff_neurons": cfg.ff_neurons, "params": sum(p.numel() for p in student.parameters()),
            "steps": steps, "batch_size": cfg.batch_size, "initial_val_cosine": initial,
            "val_cosine": val, "train_s": round(train_s, 1), "onnx": str(int8),
            "size_bytes": int8.stat().st_size}


def time_all(run: Path, results: list[dict], seconds: float) -> dict:
    from compress.config import load_pipeline
    from compress.data import load_dataset
    from compress.measure.latency import measure_interleaved
    from compress.measure.ort import make_session
    from compress.text.encoder import load_tokenizer
    from compress.text.timing import full_length_feed

    corpus = load_dataset(load_pipeline(PIPELINE).data)
    feed = full_length_feed(load_tokenizer(run / "teacher"), corpus.val, 128)
    paths = {"teacher": run / "teacher_onnx" / "model.onnx"} | {
        r["student"]: Path(r["onnx"]) for r in results}
    sessions = {n: make_session(p, threads=1) for n, p in paths.items()}
    lat = measure_interleaved(sessions, dict.fromkeys(sessions, feed), warmup_runs=5,
                              min_runs=40, min_time_s=seconds)
    return {n: lat[n].p50_ms for n in sessions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished minilm run's folder (X/minilm)")
    ap.add_argument("--students", nargs="+",
                    default=["0,5", "0,5+bridge", "0,2,5+bridge", "0,2,4,5+bridge"])
    ap.add_argument("--steps", type=int, default=3500)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--time", type=float, default=5.0, help="seconds of timing per model")
    a = ap.parse_args()
    from compress.measure.system import cpu_info, versions

    for need in ("teacher/model.pt", "teacher/embeddings.npz", "teacher_onnx/model.onnx"):
        if not (a.run / need).is_file():
            fail(f"{a.run / need} not found; RUN_DIR is the 'minilm' folder of a finished "
                 "`compress run pipelines/minilm.yaml --out X` (X/minilm)")
    specs = [(s, parse_spec(s)) for s in a.students]
    with tempfile.TemporaryDirectory() as tmp:
        # Longest first, so the jobs end together.
        jobs = [{"run": str(a.run.resolve()), "spec": s, "steps": a.steps, "tmp": tmp,
                 "name": f"s{i}"} for i, (s, _) in enumerate(specs)]
        jobs.sort(key=lambda j: -len(parse_spec(j["spec"])[0]))
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            results = pool.map(train_one, jobs, chunksize=1)
        results.sort(key=lambda r: a.students.index(r["student"]))
        p50 = time_all(a.run, results, a.time)
    for r in results:
        r["p50_ms"] = p50[r["student"]]
        r["speedup"] = p50["teacher"] / r["p50_ms"]
        del r["onnx"]
    out = {"machine": cpu_info(), "versions": versions(), "teacher_p50_ms": p50["teacher"],
           "steps": a.steps, "results": results}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "minilm_students.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# MiniLM students: depth, quality, speed", "",
        f"{a.steps} training steps each (the pipeline's recipe); dynamic int8; p50 at batch 1 "
        f"x 128 tokens, ORT 1 thread, interleaved with the fp32 teacher "
        f"({p50['teacher']:.1f} ms). Machine: {out['machine']}.", "",
        "| student | params | int8 size | p50 | speed-up | val cosine untrained | "
        "val cosine trained | train time |",
        "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['student']} | {r['params']:,} | {r['size_bytes'] / 2**20:.1f} MiB "
                     f"| {r['p50_ms']:.2f} ms | {r['speedup']:.2f}x | "
                     f"{r['initial_val_cosine']:.3f} | {r['val_cosine']:.4f} | "
                     f"{r['train_s']:.0f} s |")
    (HERE / "results" / "minilm_students.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
