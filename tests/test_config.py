"""Pipeline YAML validation: every shipped pipeline loads; bad files fail with one clear line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from compress.config import load_pipeline, parse_pipeline
from compress.errors import ConfigError
from tests.conftest import TINY_PIPELINE

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_validates(path):
    # execute
    cfg = load_pipeline(path)
    # assert
    assert cfg.name and cfg.stages
    assert len({s.id for s in cfg.stages}) == len(cfg.stages)


def test_defaults_come_from_the_config_classes(tiny_pipeline):
    # execute
    cfg = parse_pipeline(tiny_pipeline, "t.yaml")
    # assert
    train = cfg.stages[0]
    assert train.optimizer == "adamw" and train.schedule == "cosine"
    assert cfg.stages[1].opset == 18
    assert cfg.stages[2].threads == [1]


def _bad(tiny, mutate):
    mutate(tiny)
    return tiny


BAD = [
    ("unknown_key", lambda p: p["stages"][0].update(epoch=3), ["stage 'teacher'", "'epoch'",
                                                               "did you mean 'epochs'"]),
    ("wrong_type", lambda p: p["stages"][0].update(epochs="many"), ["stage 'teacher'",
                                                                    "'epochs'", "not a number"]),
    ("out_of_range", lambda p: p["stages"][0].update(lr=-1), ["'lr'", "greater than 0"]),
    ("dangling_ref", lambda p: p["stages"][1].update(input="nope"),
     ["stage 'teacher_onnx'", "'input'", "'nope' does not exist"]),
    ("cyclic_ref", lambda p: p["stages"][1].update(input="bench"),
     ["stage 'teacher_onnx'", "cyclic reference teacher_onnx -> bench -> teacher_onnx"]),
    ("wrong_kind", lambda p: p["stages"][2].update(models=["teacher"]),
     ["stage 'bench'", "'models'", "produces a checkpoint", "add an export stage"]),
    ("unknown_stage", lambda p: p["stages"][0].update(stage="trane"),
     ["stage 'teacher'", "unknown stage 'trane'", "'train'"]),
    ("unknown_arch", lambda p: p["stages"][0].update(model={"arch": "vgg"}),
     ["field 'model'", "unknown arch 'vgg'", "'resnet'"]),
    ("unknown_model_field", lambda p: p["stages"][0].update(model={"arch": "resnet", "widht": 4}),
     ["field 'model.widht'", "did you mean 'width'"]),
    ("unknown_source", lambda p: p.update(data={"source": "cifar"}),
     ["data", "unknown source 'cifar'", "'mnist1d'"]),
    ("duplicate_id", lambda p: p["stages"][2].update(id="teacher"), ["'teacher'", "used twice"]),
    ("unsafe_name", lambda p: p.update(name="../escape"), ["'name'", "not a plain folder"]),
    ("unsafe_id", lambda p: p["stages"][2].update(id="../../x"), ["'id'", "not a plain folder"]),
    ("gate_unknown_stage", lambda p: p.update(gates={"metrics": [{"metric": "x.acc", "min": 1}]}),
     ["gates", "stage 'x'", "does not exist"]),
    ("gate_unknown_field", lambda p: p.update(gates={"min_acc": 1}),
     ["gates", "'min_acc'", "did you mean 'min_accuracy_pct'"]),
    ("gate_bad_model", lambda p: p.update(gates={"candidate": "zz", "min_accuracy_pct": 1}),
     ["gates", "'candidate'", "'zz' is not among"]),
    ("missing_stages", lambda p: p.pop("stages"), ["'stages'", "required"]),
]


@pytest.mark.parametrize("name,mutate,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_pipeline_is_one_line_naming_the_problem(tiny_pipeline, name, mutate, needles):
    # setup
    raw = _bad(tiny_pipeline, mutate)
    # execute
    with pytest.raises(ConfigError) as exc:
        parse_pipeline(raw, "bad.yaml")
    # assert
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("bad.yaml: ")
    for needle in needles:
        assert needle in msg, msg


def test_malformed_yaml_reports_line_and_column(write_yaml):
    # setup
    path = write_yaml("name: x\nstages: [\n  {id: a, stage: train\n")
    # execute
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    # assert
    assert "malformed YAML at line" in str(exc.value) and "column" in str(exc.value)


def test_yaml_is_loaded_safely(write_yaml):
    # setup: a python-object tag must not be constructed
    path = write_yaml("name: !!python/object/apply:os.system ['echo pwned']\n")
    # execute / assert
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_pipeline(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_npz_path_is_resolved_against_the_pipeline_file(write_yaml, tiny_pipeline, tmp_path):
    # setup
    tiny_pipeline["data"] = {"source": "npz", "path": "data/my.npz"}
    path = write_yaml(tiny_pipeline)
    # execute
    cfg = load_pipeline(path)
    # assert
    assert Path(cfg.data.path) == (tmp_path / "data" / "my.npz").resolve()


def test_metric_names_known_at_load_time_are_those_the_stages_report(tiny_run):
    # setup
    from compress.stages.base import metric_names

    root, summary = tiny_run
    cfg = parse_pipeline(copy.deepcopy(TINY_PIPELINE), "tiny.yaml")
    # execute
    declared = {st.id: metric_names(st) for st in cfg.stages}
    # assert: what gates are checked against at load time is exactly what a run reports
    assert declared == {sid: set(e["metrics"]) for sid, e in summary.manifest["stages"].items()}


def test_compression_stages_declare_the_metrics_they_report(compress_run):
    # setup
    from compress.stages.base import metric_names
    from tests.conftest import COMPRESS_PIPELINE

    _, summary = compress_run
    cfg = parse_pipeline(copy.deepcopy(COMPRESS_PIPELINE), "tinyc.yaml")
    # execute
    declared = {st.id: metric_names(st) for st in cfg.stages}
    # assert
    assert declared == {sid: set(e["metrics"]) for sid, e in summary.manifest["stages"].items()}


def test_gate_on_a_metric_that_does_not_exist_fails_before_running(tiny_pipeline):
    # setup
    tiny_pipeline["gates"] = {"metrics": [{"metric": "teacher_onnx.parity_max_diff", "max": 1}]}
    # execute
    with pytest.raises(ConfigError) as exc:
        parse_pipeline(tiny_pipeline, "bad.yaml")
    # assert
    assert "stage 'teacher_onnx' has no metric 'parity_max_diff'" in str(exc.value)
    assert "did you mean 'teacher_onnx.parity_max_abs_diff'?" in str(exc.value)


def test_the_old_accuracy_drop_names_still_load_with_a_deprecation_message(capsys):
    # setup: the three fields that were all called max_accuracy_drop_pts
    from compress import renames
    from compress.report.compare import CompareConfig

    renames._SAID.clear()  # said once per process: start afresh
    raw = {"name": "old", "data": {"source": "digits"},
           "stages": [{"id": "t", "stage": "train", "model": {"arch": "mlp", "hidden": [8]}},
                      {"id": "e", "stage": "export", "input": "t"},
                      {"id": "q", "stage": "quantize", "input": "e", "max_accuracy_drop_pts": 0.7},
                      {"id": "b", "stage": "bench", "models": ["e", "q"]}],
           "gates": {"max_accuracy_drop_pts": 0.4}}
    # execute
    cfg = parse_pipeline(raw, "old.yaml")
    compare = CompareConfig(max_accuracy_drop_pts=0.2)
    # assert: each old key read as its new name, and said so on stderr
    assert cfg.gates.max_test_accuracy_drop_pts == 0.4
    assert cfg.stages[2].max_val_accuracy_drop_pts == 0.7
    assert compare.max_accuracy_regression_pts == 0.2
    err = capsys.readouterr().err
    for owner, new in (("gates", "max_test_accuracy_drop_pts"),
                       ("quantize", "max_val_accuracy_drop_pts"),
                       ("compare", "max_accuracy_regression_pts")):
        assert f"deprecated: {owner} field 'max_accuracy_drop_pts' is now '{new}'" in err


def test_old_and_new_name_together_is_an_error():
    # setup
    from compress.report.compare import CompareConfig

    # execute / assert
    with pytest.raises(ValueError, match="old name of 'max_accuracy_regression_pts'"):
        CompareConfig(max_accuracy_drop_pts=0.2, max_accuracy_regression_pts=0.1)
