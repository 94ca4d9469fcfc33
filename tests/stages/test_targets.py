"""Deployment targets on the stages that shape the artifact: a `mobile` build (quantize,
convert, export) next to the unchanged `cpu` build of the same student."""

from __future__ import annotations

import copy
import shutil

import onnx
import onnxruntime as ort
import pytest
import yaml

from compress.data import DigitsData, load_dataset
from compress.measure.ort import make_session, predict
from tests.conftest import COMPRESS_PIPELINE, run_cli

MOBILE_STAGES = [
    {"id": "student_int8_mobile", "stage": "quantize", "input": "student_fp32",
     "target": "mobile", "calibration": {"samples": 128}, "select_time_s": 0.05},
    {"id": "student_int8_mobile_ort", "stage": "convert", "input": "student_int8_mobile",
     "target": "mobile"},
    {"id": "student_fp32_mobile", "stage": "export", "input": "pruned", "target": "mobile"},
]


def _pipeline(extra: list[dict]) -> dict:
    pipeline = copy.deepcopy(COMPRESS_PIPELINE)
    pipeline["stages"] += copy.deepcopy(extra)
    return pipeline


@pytest.fixture(scope="module")
def mobile_run(compress_run, tmp_path_factory):
    """The session's tiny compress run copied (its stages come from the cache) plus the mobile
    builds of its student."""
    from compress.config import parse_pipeline
    from compress.runner import run_pipeline

    out = tmp_path_factory.mktemp("mobile")
    shutil.copytree(compress_run[0].parent, out, dirs_exist_ok=True)
    cfg = parse_pipeline(_pipeline(MOBILE_STAGES), "tinyc.yaml")
    summary = run_pipeline(cfg, out, progress=False, log=lambda m: None)
    return summary.root, summary, out


def _domains_and_input(path):
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return {n.domain for n in model.graph.node}, [d.dim_value if d.HasField("dim_value")
                                                  else d.dim_param for d in dims]


def test_mobile_build_has_standard_ops_only_and_a_static_shape(mobile_run):
    # setup
    root, summary, _ = mobile_run
    # execute
    domains, shape = _domains_and_input(root / "student_int8_mobile" / "model.onnx")
    # assert
    assert domains <= {"", "ai.onnx"} and shape == [1, 1, 8, 8]
    m = summary.manifest["stages"]["student_int8_mobile"]["metrics"]
    assert m["target"] == "mobile" and m["contrib_ops"] == 0 and m["input_shape"] == "1x1x8x8"
    assert m["setting"] in ("qdq-u8s8-convpc", "qdq-u8s8-pt")
    assert "student_int8" in summary.manifest["stages"]  # the cpu build sits beside it


def test_checker_coverage_is_recorded_in_metrics_metadata_and_report(mobile_run):
    # setup
    root, summary, _ = mobile_run
    m = summary.manifest["stages"]["student_int8_mobile"]["metrics"]
    # execute
    meta = make_session(root / "student_int8_mobile" / "model.onnx").get_modelmeta()
    report = (root / "report.md").read_text()
    # assert
    for ep in ("nnapi", "coreml_mlprogram", "coreml_neuralnetwork"):
        assert 0 <= m[f"{ep}_nodes_supported"] <= m[f"{ep}_nodes_total"]
        assert m[f"{ep}_node_share"] == round(m[f"{ep}_nodes_supported"]
                                              / m[f"{ep}_nodes_total"], 4)
    assert m["nnapi_node_share"] == 1.0 and m["nnapi_partitions"] == 1
    target = yaml.safe_load(meta.custom_metadata_map["compress.target"])
    assert target["usability"]["eps"]["nnapi"]["nodes_total"] == m["nnapi_nodes_total"]
    assert "## Deployment targets" in report and "`student_int8_mobile`" in report


def test_mobile_ort_file_predicts_exactly_as_the_onnx(mobile_run):
    # setup
    root, summary, _ = mobile_run
    x = load_dataset(DigitsData()).x_test
    # execute
    ort_session = ort.InferenceSession(str(root / "student_int8_mobile_ort" / "model.ort"),
                                       providers=["CPUExecutionProvider"])
    a = predict(ort_session, x)
    b = predict(make_session(root / "student_int8_mobile" / "model.onnx", 1), x)
    # assert
    assert ort_session.get_inputs()[0].shape == [1, 1, 8, 8]
    assert (a.argmax(1) == b.argmax(1)).all()
    assert summary.manifest["stages"]["student_int8_mobile_ort"]["metrics"][
        "identical_predictions"] is True


def test_cpu_build_is_unchanged(mobile_run):
    # setup
    from compress.stages.quantize import QuantizeConfig, candidate_settings

    root, summary, _ = mobile_run
    cfg = QuantizeConfig(id="q", input="f", format="auto")
    # execute
    names = [s.name for s in candidate_settings(cfg)]
    _, shape = _domains_and_input(root / "student_int8" / "model.onnx")
    meta = make_session(root / "student_int8" / "model.onnx").get_modelmeta()
    # assert
    assert names == ["qdq-u8s8", "qdq-u8s8-w7", "qdq-s8s8", "qoperator-u8s8",
                     "qoperator-u8s8-w7", "qoperator-s8s8"]
    assert isinstance(shape[0], str)  # dynamic batch
    assert "compress.target" not in meta.custom_metadata_map
    assert summary.manifest["stages"]["student_int8"]["metrics"]["target"] == "cpu"


def test_a_fixed_shape_that_does_not_fit_the_data_exits_2_in_one_line(mobile_run, tmp_path):
    # setup
    _, _, out = mobile_run
    bad = dict(MOBILE_STAGES[0], id="bad_shape", input_shape=[1, 1, 9, 9])
    path = tmp_path / "tinyc.yaml"
    path.write_text(yaml.safe_dump(_pipeline([bad]), sort_keys=False))
    # execute
    result = run_cli("run", str(path), "--out", str(out), "--no-progress")
    # assert
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "input_shape" in lines[0] and "[1, 1, 9, 9]" in lines[0]
    assert not (out / "tinyc" / "bad_shape").exists()
