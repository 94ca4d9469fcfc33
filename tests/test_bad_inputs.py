"""Bad input, one row each, through the CLI: exit 2, one line that names the problem (no
traceback), and not one file or folder created or changed anywhere the command could reach.

A row is (id, how to build the command line, text the message must contain). A builder gets a
`Case` (a scratch folder plus the tiny run's artifacts), writes the bad input and returns argv.
Adding a row is one line, e.g. for a stage that arrives later:

    ("unknown_calibration", pipeline(add({"id": "q", "stage": "quantize", "input":
     "teacher_onnx", "calibration": {"method": "magic"}})), "unknown method 'magic'"),
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from compress.cli import cli
from tests.conftest import TINY_PIPELINE


@dataclass
class Case:
    tmp: Path
    ckpt: Path  # the tiny run's checkpoint and ONNX model: inputs, never written
    onnx: Path
    held: list[int] = field(default_factory=list)  # lock file descriptors held during the row

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def npz_option(self, **changes) -> str:
        """A --data option naming `self.npz(**changes)`."""
        return f"{{source: npz, path: {self.npz(**changes)}}}"

    def npz(self, name: str = "data.npz", **changes) -> str:
        """A valid .npz (60 train / 20 test samples, 5 features, 3 classes) with `changes`
        (an array, or None to leave it out)."""
        rng = np.random.default_rng(0)
        arrays = {"x_train": rng.normal(size=(60, 5)).astype(np.float32),
                  "y_train": np.arange(60) % 3,
                  "x_test": rng.normal(size=(20, 5)).astype(np.float32),
                  "y_test": np.arange(20) % 3}
        arrays.update(changes)
        path = self.tmp / name
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
        return str(path)


Build = Callable[[Case], list[str]]


def pipeline(mutate: Callable[[dict], object] = lambda p: None,
             out: Callable[[Case], str] | None = None) -> Build:
    """`compress run` of the tiny pipeline after `mutate` edits it."""

    def build(c: Case) -> list[str]:
        raw = copy.deepcopy(TINY_PIPELINE)
        mutate(raw)
        path = c.file("bad.yaml", yaml.safe_dump(raw, sort_keys=False))
        return ["run", path, "--out", out(c) if out else c.out]

    return build


def add(stage: dict) -> Callable[[dict], None]:
    return lambda p: p["stages"].append(stage)


def text(content: str | bytes) -> Build:
    return lambda c: ["run", c.file("bad.yaml", content), "--out", c.out]


def npz(**changes) -> Build:
    """`compress run` of the tiny pipeline on a .npz made of good arrays with `changes`."""

    def build(c: Case) -> list[str]:
        path = c.npz(**changes)
        return pipeline(lambda p: p.update(data={"source": "npz", "path": path}))(c)

    return build


def train(*options: str) -> Build:
    return lambda c: ["train", "--out", c.out, *options]


class Evil:
    """Unpickling this would run code: it opens (creates) a file."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def evil_checkpoint(c: Case) -> str:
    path = c.tmp / "evil.pt"
    torch.save({"format": "compress.checkpoint/1", "payload": Evil(str(c.tmp / "pwned"))}, path)
    return str(path)


def foreign_checkpoint(c: Case) -> str:
    path = c.tmp / "foreign.pt"
    torch.save({"w": torch.ones(2)}, path)
    return str(path)


def locked(c: Case) -> str:
    """The tiny pipeline's output folder, locked as a running `compress run` holds it."""
    root = c.tmp / "out" / "tiny"
    root.mkdir(parents=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    c.held.append(fd)
    return c.out


def later_train(p: dict) -> None:
    add({"id": "late", "stage": "train", "model": {"arch": "mlp"}})(p)
    p["stages"][1]["input"] = "late"


def with_options(build: Build, *options: Callable[[Case], str] | str) -> Build:
    """`build`'s command line plus options (strings, or builders of a path in the case)."""
    return lambda c: [*build(c), *(o(c) if callable(o) else o for o in options)]


def tiny_root(c: Case) -> str:
    return str(c.onnx.parents[1])


def run_without_bench(c: Case) -> str:
    return str(Path(c.file("nb/manifest.json", json.dumps(
        {"pipeline": "nb", "stages": {"teacher": {"stage": "train"}}}))).parent)


def changed_copy(c: Case) -> str:
    """A copy of the tiny run whose ONNX model changed after its bench measured it."""
    copy_root = c.tmp / "changed"
    shutil.copytree(tiny_root(c), copy_root)
    with open(copy_root / "teacher_onnx" / "model.onnx", "ab") as f:
        f.write(b"\0")
    return str(copy_root)


def compare(*args: Callable[[Case], str] | str) -> Build:
    return lambda c: ["compare", *(a(c) if callable(a) else a for a in args)]


def png(path: Path, size: tuple[int, int] = (8, 8), value: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (value, 255 - value, 40)).save(path)


def images(make: Callable[[Path], object], **data) -> Build:
    """`compress run` of the tiny pipeline on an image folder: two good classes of 4 PNGs each,
    then `make(folder)` spoils it."""

    def build(c: Case) -> list[str]:
        folder = c.tmp / "imgs"
        for k in ("a", "b"):
            for i in range(4):
                png(folder / k / f"{i}.png", value=60 * i)
        make(folder)
        spec = {"source": "image_folder", "path": str(folder), **data}
        return pipeline(lambda p: p.update(data=spec))(c)

    return build


def emptied(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


def truncated_png(folder: Path) -> None:
    good = (folder / "a" / "0.png").read_bytes()
    (folder / "a" / "0.png").write_bytes(good[:-30])  # the header survives, the pixels not


def table(text: str, **data) -> Build:
    """`compress run` of the tiny pipeline on a CSV file with this text."""

    def build(c: Case) -> list[str]:
        spec = {"source": "csv", "path": c.file("t.csv", text), "label": "y", **data}
        return pipeline(lambda p: p.update(data=spec))(c)

    return build


GOOD_ROWS = "".join(f"{i},{i % 3 * 2.5},{'xyz'[i % 2]}\n" for i in range(12))


def external_weights(c: Case, damage: Callable[[Path], object]) -> str:
    """The tiny ONNX model saved with its weights in model.onnx.data, then `damage(data file)`."""
    import onnx

    path = c.tmp / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save(onnx.load(str(c.onnx)), str(path), save_as_external_data=True,
              location="model.onnx.data", size_threshold=0)
    damage(path.parent / "model.onnx.data")
    return str(path)


def cut_in_half(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


NAN = np.full((20, 5), np.nan, np.float32)
INF = np.full((60, 5), np.inf, np.float32)

BAD: list[tuple[str, Build, str]] = [
    # the pipeline file
    ("missing_pipeline_file", lambda c: ["run", str(c.tmp / "no.yaml")], "pipeline file not found"),
    ("pipeline_is_a_folder", lambda c: ["run", str(c.tmp)], "cannot read the pipeline file"),
    ("pipeline_not_utf8", text(b"name: \xff\xfe\n"), "cannot read the pipeline file"),
    ("malformed_yaml", text("name: x\nstages: [\n  {id: a, stage: train\n"),
     "malformed YAML at line 4, column 1"),
    ("yaml_python_tag", text("name: !!python/object/apply:os.system ['echo x']\n"),
     "malformed YAML at line 1, column 7"),
    ("not_a_mapping", text("- a\n- b\n"), "expected a mapping with name, data and stages"),
    # unknown keys
    ("unknown_top_key", pipeline(lambda p: p.update(stage=[])),
     "field 'stage': unknown field 'stage'; did you mean 'stages'?"),
    ("unknown_stage_key", pipeline(lambda p: p["stages"][0].update(epoch=3)),
     "stage 'teacher', field 'epoch': unknown field 'epoch'; did you mean 'epochs'?"),
    ("unknown_model_key", pipeline(lambda p: p["stages"][0]["model"].update(hiden=[8])),
     "field 'model.hiden': unknown field 'hiden'; did you mean 'hidden'?"),
    ("unknown_data_key", pipeline(lambda p: p["data"].update(sed=1)),
     "data, field 'sed': unknown field 'sed'; did you mean 'seed'?"),
    # a stage that cannot read the pipeline's kind of data, refused before anything runs
    ("array_stage_on_text_data", pipeline(lambda p: p.update(data={"source": "pydoc"})),
     "stage 'teacher': a train stage needs array data (inputs and labels: digits, mnist1d, "
     "npz, csv, image_folder), but data source 'pydoc' is text"),
    ("text_stage_on_array_data",
     pipeline(lambda p: p.update(stages=[{"id": "t", "stage": "pretrained"}])),
     "stage 't': a pretrained stage needs text (sentences: pydoc), but data source"),
    # wrong types
    ("wrong_type_int", pipeline(lambda p: p["stages"][0].update(epochs="many")),
     "field 'epochs': not a number of epochs (1 to 10000) nor auto"),
    ("wrong_type_list", pipeline(lambda p: p["stages"][2].update(batch_sizes=1)),
     "field 'batch_sizes': Input should be a valid list (got 1)"),
    ("wrong_type_mapping", pipeline(lambda p: p["stages"][0].update(model="mlp")),
     "field 'model': Input should be a valid dictionary"),
    ("stages_not_a_list", pipeline(lambda p: p.update(stages={"teacher": {}})),
     "field 'stages': Input should be a valid list"),
    # out-of-range values and missing fields
    ("negative_lr", pipeline(lambda p: p["stages"][0].update(lr=-1)),
     "field 'lr': Input should be greater than 0 (got -1)"),
    ("zero_epochs", pipeline(lambda p: p["stages"][0].update(epochs=0)),
     "field 'epochs': not a number of epochs (1 to 10000) nor auto (train until validation "
     "stops improving, at most max_epochs) (got 0)"),
    ("val_fraction_too_big", pipeline(lambda p: p["data"].update(val_fraction=0.7)),
     "data, field 'val_fraction': Input should be less than 0.5 (got 0.7)"),
    ("opset_too_old", pipeline(lambda p: p["stages"][1].update(opset=12)),
     "field 'opset': Input should be greater than or equal to 18 (got 12)"),
    ("negative_threads", pipeline(lambda p: p["stages"][2].update(threads=[-1])),
     "field 'threads': every value must be >= 0"),
    ("no_stages", pipeline(lambda p: p.update(stages=[])), "should have at least 1 item"),
    ("missing_data", pipeline(lambda p: p.pop("data")),
     "bad.yaml: data: required field is missing"),
    # unknown names, with the valid choices
    ("unknown_stage", pipeline(lambda p: p["stages"][0].update(stage="trane")),
     "unknown stage 'trane'; choose one of"),
    ("unknown_arch", pipeline(lambda p: p["stages"][0].update(model={"arch": "vgg"})),
     "unknown arch 'vgg'; choose one of 'mlp', 'resnet'"),
    ("transformer_heads_not_dividing_width", pipeline(lambda p: p["stages"][0].update(
     model={"arch": "transformer", "width": 30, "heads": 4})),
     "field 'model.heads': heads (4) must divide width (30)"),
    ("rnn_unknown_cell", pipeline(lambda p: p["stages"][0].update(
     model={"arch": "rnn", "cell": "elman"})),
     "field 'model.cell': Input should be 'gru' or 'lstm'"),
    ("unknown_dataset", pipeline(lambda p: p.update(data={"source": "cifar"})),
     "unknown source 'cifar'; choose one of 'digits', 'mnist1d', 'npz'"),
    ("unknown_optimizer", pipeline(lambda p: p["stages"][0].update(optimizer="rmsprop")),
     "field 'optimizer': Input should be 'sgd', 'adam' or 'adamw'"),
    ("unknown_calibration", pipeline(add({"id": "q", "stage": "quantize", "input":
     "teacher_onnx", "calibration": {"method": "magic"}})),
     "field 'calibration.method': Input should be 'minmax', 'entropy' or 'percentile'"),
    ("unknown_prune_importance", pipeline(add({"id": "p", "stage": "prune", "input": "teacher",
     "importance": "random"})), "field 'importance': Input should be 'l1', 'l2', 'bn_scale'"),
    # (an ONNX teacher is allowed since issue 17; a bench result is not a teacher)
    ("distill_from_bench", pipeline(add({"id": "s", "stage": "distill", "teacher": "bench"})),
     "stage 'bench' produces"),
    # stage references
    ("dangling_ref", pipeline(lambda p: p["stages"][1].update(input="ghost")),
     "field 'input': stage 'ghost' does not exist (earlier stages: teacher)"),
    ("later_ref", pipeline(later_train), "stage 'late' is defined later; move it above"),
    ("cyclic_ref", pipeline(lambda p: p["stages"][1].update(input="bench")),
     "cyclic reference teacher_onnx -> bench -> teacher_onnx"),
    ("self_ref", pipeline(lambda p: p["stages"][2].update(models=["bench"])),
     "a stage cannot consume itself"),
    ("wrong_kind_ref", pipeline(lambda p: p["stages"][2].update(models=["teacher"])),
     "produces a checkpoint, but this field needs an ONNX model; add an export stage in "
     "between"),
    ("duplicate_id", pipeline(lambda p: p["stages"][2].update(id="teacher")),
     "stage 'teacher': id used twice"),
    # output paths named in the YAML
    ("name_escapes", pipeline(lambda p: p.update(name="../escape")),
     "field 'name': '../escape' is not a plain folder name"),
    ("stage_id_escapes", pipeline(lambda p: p["stages"][2].update(id="../../x")),
     "field 'id': '../../x' is not a plain folder name"),
    ("absolute_name", pipeline(lambda p: p.update(name="/tmp/x")),
     "field 'name': '/tmp/x' is not a plain folder name"),
    # gates
    ("gate_unknown_metric", pipeline(lambda p: p.update(gates={"metrics": [
        {"metric": "teacher.accuracy", "min": 1}]})), "stage 'teacher' has no metric 'accuracy'"),
    ("gate_unknown_bench_metric", pipeline(lambda p: p.update(gates={"metrics": [
        {"metric": "bench.teacher_onnx.b2_t1.p50_ms", "max": 1}]})),
     "stage 'bench' has no metric 'teacher_onnx.b2_t1.p50_ms'"),
    ("gate_unknown_stage", pipeline(lambda p: p.update(gates={"metrics": [
        {"metric": "student.params", "max": 1}]})), "names stage 'student', which does not exist"),
    ("gate_without_bench", pipeline(lambda p: (p["stages"].pop(), p.update(gates={
        "min_accuracy_pct": 50}))), "gates, field 'bench': there is no bench stage"),
    ("gate_unknown_model", pipeline(lambda p: p.update(gates={
        "candidate": "zz", "min_accuracy_pct": 1})), "'zz' is not among bench 'bench' models"),
    ("gate_setting_not_measured", pipeline(lambda p: p.update(gates={
        "min_latency_speedup": 1, "batch_size": 64})), "does not measure batch 64"),
    ("gate_without_bound", pipeline(lambda p: p.update(gates={"metrics": [
        {"metric": "teacher.params"}]})), "give min, max or both"),
    # .npz data
    ("npz_missing_file", pipeline(lambda p: p.update(data={"source": "npz", "path": "no.npz"})),
     "no.npz: file not found"),
    ("npz_is_a_folder", pipeline(lambda p: p.update(data={"source": "npz", "path": "."})),
     "is a folder, not a .npz file"),
    ("npz_corrupt", lambda c: pipeline(lambda p: p.update(data={"source": "npz", "path": c.file(
        "d.npz", b"PK\x03\x04 truncated")}))(c), "not a readable .npz file"),
    ("npz_missing_array", npz(y_test=None), "missing array(s) y_test"),
    ("npz_val_without_labels", npz(x_val=np.zeros((3, 5), np.float32)), "missing array(s) y_val"),
    ("npz_length_mismatch", npz(y_train=np.arange(59) % 3), "60 inputs but 59 labels"),
    ("npz_string_inputs", npz(x_train=np.array([["a"] * 5] * 60)), "inputs must be numeric"),
    ("npz_fractional_labels", npz(y_train=np.linspace(0, 2, 60)), "labels must be integers"),
    ("npz_nan", npz(x_test=NAN), "x_test holds 100 NaN/Inf value(s)"),
    ("npz_inf", npz(x_train=INF), "x_train holds 300 NaN/Inf value(s)"),
    ("npz_negative_label", npz(y_test=np.arange(20) % 3 - 1), "negative label -1"),
    ("npz_label_not_in_train", npz(y_test=np.arange(20) % 4),
     "y_test has label 3 but y_train only goes up to 2"),
    ("npz_label_out_of_range", npz(y_train=np.where(np.arange(60) % 3 == 2, 999, 0)),
     "labels up to 999 but only 2 distinct classes"),
    ("npz_empty_split", npz(x_test=np.zeros((0, 5), np.float32), y_test=np.zeros(0, np.int64)),
     "the test split is empty"),
    ("npz_pickled_objects", npz(x_train=np.array([object()] * 60)), "not a readable .npz file"),
    ("npz_bad_in_stage_command", lambda c: ["train", "--data", c.npz_option(x_test=NAN), "--out",
                                            str(c.tmp / "new" / "deeper" / "t")], "NaN/Inf"),
    # image folders
    ("images_missing_folder", pipeline(lambda p: p.update(data={"source": "image_folder",
                                                               "path": "nowhere"})),
     "nowhere: folder not found"),
    ("images_empty_folder", images(emptied), "imgs: the folder is empty"),
    ("images_class_without_images", images(lambda f: (f / "c").mkdir()),
     "c: class folder holds no PNG or JPEG images"),
    ("images_not_an_image_file", images(lambda f: (f / "a" / "notes.txt").write_text("x")),
     "notes.txt: not a PNG or JPEG file (suffix '.txt')"),
    ("images_corrupt_png", images(lambda f: (f / "b" / "9.png").write_bytes(b"\x89PNG junk")),
     "9.png: not an image Pillow can read"),
    ("images_truncated_png", images(truncated_png), "0.png: cannot decode it"),
    ("images_mixed_sizes", images(lambda f: png(f / "b" / "big.png", (16, 12))),
     "the images differ in size, so set `size: [H, W]`"),
    ("images_single_class", images(lambda f: shutil.rmtree(f / "b")),
     "only one class folder (a); a classifier needs at least two classes"),
    ("images_too_few_per_class", images(lambda f: [(f / "b" / f"{i}.png").unlink()
                                                   for i in range(2)]),
     "too few image(s) per class ('b' has 2)"),
    ("images_splits_mixed_with_classes", images(lambda f: png(f / "train" / "a" / "0.png")),
     "mix fixed splits and classes"),
    ("images_bad_channels", images(lambda f: None, channels=2),
     "data, field 'channels': Input should be 1 or 3"),
    # CSV tables
    ("csv_missing_file", pipeline(lambda p: p.update(
        data={"source": "csv", "path": "no.csv", "label": "y"})), "no.csv: file not found"),
    ("csv_empty", table(""), "t.csv: the file is empty"),
    ("csv_missing_label_column", table("a,b,z\n" + GOOD_ROWS),
     "data, field 'label': no column 'y'; (columns: a, b, z)"),
    ("csv_unknown_feature", table("a,b,y\n" + GOOD_ROWS, features=["a", "c"]),
     "data, field 'features': no column 'c'"),
    ("csv_ragged_row", table("a,b,y\n1,2,x\n3,y\n" + GOOD_ROWS),
     "t.csv, line 3: 2 cells but the header has 3 columns"),
    ("csv_non_numeric", table("a,b,y\n" + GOOD_ROWS + "4,four,x\n"),
     "t.csv, line 14, column 'b': 'four' is not a number"),
    ("csv_empty_cell", table("a,b,y\n1,,x\n" + GOOD_ROWS), "line 2, column 'b': empty cell"),
    ("csv_nan", table("a,b,y\n" + GOOD_ROWS + "NaN,1,x\n"),
     "line 14, column 'a': 'NaN' is not a finite number"),
    ("csv_single_class", table("a,b,y\n1,2,x\n3,4,x\n5,6,x\n"),
     "column 'y' holds one class ('x')"),
    # ONNX models with external weights (model.onnx + model.onnx.data)
    ("external_data_missing", lambda c: ["bench", external_weights(c, Path.unlink), "--out",
                                         c.out, "--data", "digits"],
     "its weights file model.onnx.data is missing"),
    ("external_data_wrong_size", lambda c: ["bench", external_weights(c, cut_in_half), "--out",
                                            c.out, "--data", "digits"],
     "weights file model.onnx.data is 4,"),
    # checkpoints
    ("checkpoint_missing", lambda c: ["export", str(c.tmp / "no.pt"), "--out", c.out],
     "no.pt: checkpoint not found"),
    ("checkpoint_truncated", lambda c: ["export", c.file("cut.pt", c.ckpt.read_bytes()[:4000]),
                                        "--out", c.out], "not a readable checkpoint"),
    ("checkpoint_pickled_object", lambda c: ["export", evil_checkpoint(c), "--out", c.out],
     "refused to load: the checkpoint holds Python objects"),
    ("checkpoint_foreign", lambda c: ["export", foreign_checkpoint(c), "--out", c.out],
     "not a compress checkpoint"),
    ("onnx_given_as_checkpoint", lambda c: ["export", str(c.onnx), "--out", c.out],
     "is already an ONNX model; give a checkpoint, or --format ort to convert it"),
    # ONNX models
    ("onnx_missing", lambda c: ["bench", str(c.tmp / "no.onnx"), "--out", c.out],
     "no.onnx: ONNX model not found"),
    ("onnx_truncated", lambda c: ["bench", c.file("cut.onnx", c.onnx.read_bytes()[:3000]),
                                  "--out", c.out], "not a readable ONNX file"),
    ("onnx_corrupt", lambda c: ["bench", c.file("junk.onnx", b"\x08junk" * 200), "--out", c.out,
                                "--data", "digits"], "not a readable ONNX file"),
    ("onnx_input_shape_mismatch", lambda c: [
        "bench", str(c.onnx), "--out", str(c.tmp / "new" / "b"), "--data", c.npz_option()],
     "model input is ['N', 1, 8, 8] but the data's samples are ['N', 5]; the model was made "
     "for data source 'digits': give that data"),
    # inspect and edge formats
    ("inspect_missing", lambda c: ["inspect", str(c.tmp / "no.onnx")],
     "no.onnx: file not found; give an .onnx or .ort file"),
    ("inspect_folder", lambda c: ["inspect", str(c.tmp)], "is a folder, not a model file"),
    ("inspect_not_a_model", lambda c: ["inspect", c.file("notes.txt", "just some notes\n")],
     "notes.txt: not an ONNX or ORT-format model"),
    ("inspect_truncated_onnx", lambda c: ["inspect", c.file("cut.onnx",
                                                            c.onnx.read_bytes()[:3000])],
     "cut.onnx: not an ONNX or ORT-format model"),
    ("export_unknown_format", lambda c: ["export", str(c.ckpt), "--format", "tflite", "--out",
                                         c.out], "'tflite' is not one of 'onnx', 'ort'"),
    ("export_ort_of_missing_onnx", lambda c: ["export", str(c.tmp / "no.onnx"), "--format",
                                              "ort", "--out", c.out],
     "no.onnx: ONNX model not found"),
    ("export_ort_of_corrupt_onnx", lambda c: ["export", c.file("junk.onnx", b"\x08junk" * 200),
                                              "--format", "ort", "--out", c.out],
     "junk.onnx: not an ONNX or ORT-format model"),
    ("convert_of_a_checkpoint", pipeline(add({"id": "e", "stage": "convert",
                                              "input": "teacher"})),
     "field 'input': stage 'teacher' produces a checkpoint, but this field needs an ONNX model"),
    # output folders
    ("output_is_a_file", pipeline(out=lambda c: c.file("occupied", "x")),
     "occupied is a file, not a folder); choose another with --out"),
    ("stage_output_is_a_file", lambda c: ["export", str(c.ckpt), "--out",
                                          c.file("occupied", "x") + "/e"],
     "occupied is a file, not a folder); choose another with --out"),
    ("output_locked_by_another_run", pipeline(out=locked),
     "another compress run is using this output folder"),
    ("verify_not_a_pipeline_folder", lambda c: ["verify", str(c.tmp)],
     "not a pipeline output folder (no manifest.json)"),
    ("report_not_a_pipeline_folder", lambda c: ["report", str(c.tmp)],
     "not a pipeline output folder (no manifest.json)"),
    ("verify_corrupt_manifest", lambda c: ["verify", c.file("o/manifest.json", "{")[:-14]],
     "manifest.json: not valid JSON"),
    # CI reports of `compress run`: checked before the run; bad input writes no report
    ("junit_path_is_a_folder", with_options(pipeline(), "--junit", lambda c: str(c.tmp)),
     "compress run: option --junit: "),
    ("summary_md_under_a_file", with_options(pipeline(), "--summary-md",
                                             lambda c: c.file("occupied", "x") + "/s.md"),
     "option --summary-md: "),
    ("junit_with_bad_pipeline", with_options(
        pipeline(lambda p: p["stages"][0].update(epoch=3)), "--json", "--junit",
        lambda c: str(c.tmp / "r" / "junit.xml"), "--summary-md", lambda c: str(c.tmp / "s.md")),
     "unknown field 'epoch'"),
    # compress compare
    ("compare_missing_folder", compare(lambda c: str(c.tmp / "nope"), tiny_root),
     "compress compare: baseline "),
    ("compare_not_a_run", compare(tiny_root, lambda c: str(c.tmp)),
     "not a pipeline output folder (no manifest.json)"),
    ("compare_run_without_bench", compare(run_without_bench, tiny_root),
     "the run has no bench stage"),
    ("compare_unknown_model", compare(tiny_root, tiny_root, "--models", "zz"),
     "option --models: 'zz' is not in both runs"),
    ("compare_negative_threshold", compare(tiny_root, tiny_root, "--max-size-increase-pct", "-5"),
     "option --max-size-increase-pct: Input should be greater than or equal to 0"),
    ("compare_md_is_a_folder", compare(tiny_root, tiny_root, "--md", lambda c: str(c.tmp)),
     "compress compare: option --md: "),
    ("compare_model_changed_since_bench", compare(tiny_root, changed_copy),
     "changed since its bench measured it"),
    # stage command options
    ("option_bad_choice", train("--data", "digits", "--optimizer", "rmsprop"),
     "'rmsprop' is not one of 'sgd', 'adam', 'adamw'"),
    ("option_out_of_range", train("--data", "digits", "--lr", "-3"),
     "option --lr: Input should be greater than 0"),
    ("option_malformed_yaml", train("--data", "{source: ["), "not valid inline YAML at column 11"),
    ("option_unknown_dataset", train("--data", "cifar"), "unknown source 'cifar'"),
    ("option_unknown_arch", train("--data", "digits", "--model", "{arch: vgg}"),
     "unknown arch 'vgg'"),
    ("option_unknown", train("--data", "digits", "--epoch", "3"),
     "compress train: No such option '--epoch'. (Did you mean one of: '--epochs'"),
]


def snapshot(*roots: Path) -> dict[str, object]:
    """Every folder and file under `roots`, files with size and mtime: any change shows."""
    seen: dict[str, object] = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            seen[str(p)] = "dir" if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return seen


@pytest.mark.parametrize("name,build,needle", BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, build, needle, tiny_run,
                                                         tiny_checkpoint, tiny_onnx, tmp_path,
                                                         monkeypatch):
    # setup: relative paths resolve in the scratch folder, so a stray write would show there
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    case = Case(work, tiny_checkpoint, tiny_onnx)
    argv = build(case)
    before = snapshot(tmp_path, tiny_run[0])
    # execute
    try:
        res = CliRunner().invoke(cli, argv, prog_name="compress")
    finally:
        for fd in case.held:
            os.close(fd)
    # assert
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0], lines[0]
    assert res.stdout == ""
    assert snapshot(tmp_path, tiny_run[0]) == before


def test_the_table_covers_enough_bad_inputs():
    assert len(BAD) >= 25 and len({row[0] for row in BAD}) == len(BAD)
