"""Integrity and untrusted files: `compress verify` rehashes what the manifest lists, altered
artifacts are rebuilt rather than trusted, paths from files stay inside the output folder, and
no file's content is ever run as code."""

from __future__ import annotations

import ast
import copy
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from compress.cli import cli
from compress.config import parse_pipeline
from compress.errors import ConfigError
from compress.runner import run_pipeline
from tests.conftest import REPO, TINY_PIPELINE
from tests.test_bad_inputs import Case, evil_checkpoint


def invoke(*argv: str):
    return CliRunner().invoke(cli, list(argv), prog_name="compress")


def rerun(out: Path):
    cfg = parse_pipeline(copy.deepcopy(TINY_PIPELINE), "tiny.yaml")
    return run_pipeline(cfg, out, progress=False, log=lambda m: None)


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run's folder, free to damage."""
    root = tmp_path / "out" / "tiny"
    shutil.copytree(tiny_run[0], root)
    return root


def test_verify_passes_on_an_intact_folder(tiny_copy):
    # execute
    text = invoke("verify", str(tiny_copy))
    as_json = invoke("verify", str(tiny_copy), "--json")
    # assert
    assert text.exit_code == 0 and text.stderr == ""
    assert "ok         teacher/model.pt" in text.stdout
    manifest = json.loads((tiny_copy / "manifest.json").read_text())
    files = sum(len(st["outputs"]) for st in manifest["stages"].values())
    assert files >= 8  # train, export and bench files of the tiny pipeline
    assert text.stdout.strip().endswith(f"{files} of {files} file(s) match the manifest")
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and report["ok"] and report["leftovers"] == []
    assert {f["path"] for f in report["files"]} == {
        f"{sid}/{name}" for sid, names in (("teacher", ("model.pt", "history.json")),
                                           ("teacher_onnx", ("model.onnx", "model.json")),
                                           ("bench", ("bench.json", "bench.md",
                                                      "predictions.npz")))
        for name in (*names, "metrics.json")}


def test_altered_files_fail_verify_and_are_rebuilt_not_trusted(tiny_copy):
    # setup: one artifact changed, one deleted, and leftovers of an interrupted run
    history = tiny_copy / "teacher" / "history.json"
    good = history.read_bytes()
    history.write_bytes(good.replace(b"1", b"2", 1))
    (tiny_copy / "bench" / "bench.md").unlink()
    (tiny_copy / ".staging-bench-999").mkdir()
    (tiny_copy / ".manifest.json.x1.tmp").write_text("{")
    # execute
    before = invoke("verify", str(tiny_copy))
    summary = rerun(tiny_copy.parent)
    after = invoke("verify", str(tiny_copy))
    # assert: verify names each bad file; the run rebuilt exactly those stages (the teacher's
    # retraining gives the same checkpoint bytes, so the export stays cached)
    assert before.exit_code == 1
    assert "changed    teacher/history.json" in before.stdout
    assert "missing    bench/bench.md" in before.stdout
    assert "note: .staging-bench-999 is left from an interrupted run" in before.stdout
    assert "verify failed: 2 file(s) missing or changed" in before.stderr
    assert summary.ran == ["teacher", "bench"] and summary.cached == ["teacher_onnx"]
    assert history.read_bytes() == good
    assert after.exit_code == 0 and "note:" not in after.stdout
    assert sorted(p.name for p in tiny_copy.iterdir() if p.name.startswith(".")) == [".lock"]


def test_manifest_paths_outside_the_folder_are_not_read_or_trusted(tiny_copy, tmp_path):
    # setup: a manifest that claims a file outside the folder as the teacher's checkpoint
    secret = tmp_path / "secret.pt"
    shutil.copy(tiny_copy / "teacher" / "model.pt", secret)
    manifest = json.loads((tiny_copy / "manifest.json").read_text())
    teacher = manifest["stages"]["teacher"]
    teacher["outputs"]["../../secret.pt"] = teacher["outputs"].pop("teacher/model.pt")
    teacher["primary"] = "../../secret.pt"
    (tiny_copy / "manifest.json").write_text(json.dumps(manifest))
    # execute
    res = invoke("verify", str(tiny_copy))
    summary = rerun(tiny_copy.parent)
    # assert
    assert res.exit_code == 1
    assert "outside    ../../secret.pt  (the manifest names a path outside this folder)" in \
        res.stdout
    assert summary.ran[0] == "teacher"
    assert summary.manifest["stages"]["teacher"]["primary"] == "teacher/model.pt"


@pytest.mark.parametrize("field,value", [("name", "../escape"), ("id", "../escape")])
def test_output_paths_cannot_escape_even_past_validation(tmp_path, field, value):
    # setup: a config whose name or stage id would lead out of the output folder; model_copy
    # skips validation, as a config built in code could
    cfg = parse_pipeline({**copy.deepcopy(TINY_PIPELINE), "stages": TINY_PIPELINE["stages"][:1]},
                         "tiny.yaml")
    if field == "name":
        cfg = cfg.model_copy(update={"name": value})
    else:
        cfg = cfg.model_copy(update={"stages": [cfg.stages[0].model_copy(update={"id": value})]})
    out = tmp_path / "out" / "deeper"
    # execute
    with pytest.raises(ConfigError, match="would write outside"):
        run_pipeline(cfg, out, progress=False, log=lambda m: None)
    # assert: nothing written anywhere, in or out of the folder
    assert list(tmp_path.rglob("*")) == []


def test_checkpoint_with_a_pickled_object_is_refused_by_the_cli(tmp_path, tiny_checkpoint,
                                                                 tiny_onnx):
    # setup: unpickling it would create the file `pwned`
    path = evil_checkpoint(Case(tmp_path, tiny_checkpoint, tiny_onnx))
    # execute
    res = invoke("export", path, "--out", str(tmp_path / "e"))
    # assert
    assert res.exit_code == 2 and "refused to load" in res.stderr
    assert "weights_only" in res.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "e").exists()


BUILTINS = {"eval", "exec", "compile", "__import__"}  # called bare: eval(...), not model.eval()


def test_nothing_from_a_file_is_run_as_code():
    # setup: every call in the package's source, as (owner, name, constant keyword arguments)
    calls = []
    for path in sorted((REPO / "compress").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                # a method called on an expression (model.cpu().eval()) has owner "<expr>"
                owner = getattr(f.value, "id", "<expr>") if isinstance(f, ast.Attribute) else ""
                kwargs = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                # import_module of the package's own modules only (compress/__init__.py's lazy
                # API: "compress.api", f"compress.{name}"), never of a name read from a file
                arg = ast.unparse(node.args[0]) if node.args else ""
                if name == "import_module" and arg.lstrip("f").strip("'\"").startswith(
                        "compress."):
                    continue
                calls.append((owner, name, kwargs))
    # execute
    bare = [c for c in calls if c[0] == "" and c[1] in BUILTINS]
    imports = [c for c in calls if c[1] == "import_module"]
    yaml_loads = [c for c in calls if c[0] == "yaml" and "load" in c[1] and c[1] != "safe_load"]
    pickles = [c for c in calls if c[0] in ("pickle", "marshal", "dill") and "load" in c[1]]
    torch_loads = [c for c in calls if c[:2] == ("torch", "load")]
    np_loads = [c for c in calls if c[:2] == ("np", "load")]
    # assert
    assert bare == [] and imports == [] and yaml_loads == [] and pickles == []
    assert torch_loads and all(c[2].get("weights_only") is True for c in torch_loads)
    assert np_loads and all(c[2].get("allow_pickle") is False for c in np_loads)
