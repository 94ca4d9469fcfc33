"""The oldest onnxruntime that loads an artifact: the table logic, our artifacts against the
installed runtime, and (slow, needs the package registry) that exact version loading them while
the release before it refuses."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import onnxruntime
import pytest

from compress.measure.ort import read_metadata
from compress.onnx.ort_compat import ORT_RELEASES, min_onnxruntime, version_tuple


@pytest.mark.parametrize(("ir", "opsets", "expected", "why"), [
    (8, {"": 15}, "1.10.0", "the oldest release this table lists"),
    (8, {"": 17}, "1.12.0", "ai.onnx opset 17"),
    (9, {"": 17}, "1.15.0", "IR version 9"),
    (10, {"": 18}, "1.18.0", "IR version 10"),
    (10, {"ai.onnx": 21, "com.microsoft": 1}, "1.18.0", "IR version 10"),
    (10, {"": 18, "ai.onnx.ml": 5}, "1.22.0", "ai.onnx.ml opset 5"),
    (11, {"": 23}, "1.23.0", "IR version 11"),
])
def test_the_newest_requirement_decides(ir, opsets, expected, why):
    # execute
    got = min_onnxruntime(ir, opsets)
    # assert
    assert (got["version"], got["why"]) == (expected, why)
    assert got["reference"].startswith("https://onnxruntime.ai/")


def test_beyond_the_table_and_ort_format_are_said_plainly():
    # execute
    future = min_onnxruntime(99, {"": 18})
    ort_format = min_onnxruntime(10, {"": 18}, ort_format_by="1.32.0")
    # assert
    assert future["version"].startswith("> ") and "newer than any release" in future["why"]
    assert ort_format["version"] == "1.32.0" and "ORT format" in ort_format["why"]


def test_table_is_ordered_and_never_goes_backwards():
    # a later release supports at least what an earlier one does, column by column
    for older, newer in zip(ORT_RELEASES, ORT_RELEASES[1:], strict=False):
        assert version_tuple(older[0]) < version_tuple(newer[0])
        assert all(a <= b for a, b in zip(older[1:], newer[1:], strict=True))
    assert version_tuple("1.19.0.dev20240101+cpu") == (1, 19, 0)


def test_our_artifacts_need_no_newer_runtime_than_the_installed_one(compress_run):
    # setup
    root, summary = compress_run
    installed = version_tuple(onnxruntime.__version__)
    for a in summary.manifest["artifacts"]:
        # execute
        meta = read_metadata(root / a["path"]) if a["format"] == "onnx" else None
        # assert
        assert version_tuple(a["min_onnxruntime"]) <= installed, a
        if meta is not None:
            assert meta["compress.min_onnxruntime"]["version"] == a["min_onnxruntime"]


def _venv_with(tmp: Path, wheels: Path, spec: str) -> Path | None:
    """A venv holding onnxruntime `spec` and numpy<2 (old runtimes are built against numpy 1),
    from the package registry; None when it is not reachable or has no matching wheel."""
    target = tmp / spec.replace("=", "").replace("<", "lt")
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                         str(wheels / target.name), spec, "numpy<2"],
                        capture_output=True, text=True, timeout=180)
    if dl.returncode != 0:
        return None
    venv.EnvBuilder(with_pip=True).create(target)
    py = target / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    *map(str, (wheels / target.name).glob("*.whl"))], check=True, timeout=300)
    return py


LOAD = ("import sys, onnxruntime as ort\n"
        "ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
        "print(ort.__version__)\n")


@pytest.mark.slow
def test_the_computed_minimum_loads_the_artifact_and_the_release_before_does_not(
        compress_run, tmp_path):
    # setup
    if shutil.which("pip") is None and subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("pip is not available to fetch an older onnxruntime")
    root, summary = compress_run
    ship = next(a for a in summary.manifest["artifacts"] if a["ship"])
    minimum = ship["min_onnxruntime"]
    wheels = tmp_path / "wheels"
    try:
        at_min = _venv_with(tmp_path, wheels, f"onnxruntime=={minimum}")
        before = _venv_with(tmp_path, wheels, f"onnxruntime<{minimum}")
    except subprocess.TimeoutExpired:
        at_min = before = None
    if at_min is None or before is None:
        pytest.skip(f"the package registry is not reachable or has no onnxruntime {minimum} / "
                    f"< {minimum} wheel for this Python")
    model = str(root / ship["path"])
    # execute
    ok = subprocess.run([str(at_min), "-c", LOAD, model], capture_output=True, text=True)
    refused = subprocess.run([str(before), "-c", LOAD, model], capture_output=True, text=True)
    # assert
    assert ok.returncode == 0 and ok.stdout.strip() == minimum, ok.stderr[-500:]
    assert refused.returncode != 0 and "IR version" in refused.stderr + refused.stdout
