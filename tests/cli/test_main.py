"""The command line's table of commands: lazy loading that starts without torch, and the help
it lists matching each command's own docstring."""

from __future__ import annotations

import subprocess
import sys

import click
from click.utils import make_default_short_help

from compress.cli.main import COMMANDS, cli
from compress.stages import MODULES, STAGES, stage_def

# Every command's --help in one fresh interpreter; what it imported is printed at the end.
HELP_ALL = """
import contextlib, io, sys
from compress.cli import cli
for args in [[], *([name] for name in sys.argv[1:])]:
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main([*args, "--help"], prog_name="compress", standalone_mode=False)
print(sorted(m for m in ("torch", "onnx", "onnxruntime", "sklearn", "transformers", "numpy")
             if m in sys.modules))
"""


def test_no_help_imports_torch_or_the_onnx_stack():
    # execute: `compress --help`, then `compress <cmd> --help` for every command
    res = subprocess.run([sys.executable, "-c", HELP_ALL, *COMMANDS], capture_output=True,
                         text=True, timeout=120)
    # assert: numpy is allowed (the data sources' configs), the heavy libraries are not
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] in ("[]", "['numpy']")


def test_the_listed_help_is_each_commands_own_first_sentence():
    ctx = click.Context(cli)
    for name, (_, _, listed) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(1000) == make_default_short_help(listed, 1000), name


def test_every_command_is_in_the_table():
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    assert cli.get_command(ctx, "no-such-command") is None


def test_python_dash_m_compress_runs():
    res = subprocess.run([sys.executable, "-m", "compress", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and "compress run --help" in res.stdout


def test_each_stage_module_registers_the_stage_it_is_listed_for():
    assert set(STAGES) == set(MODULES)
    for name, module in MODULES.items():
        assert stage_def(name).fn.__module__ == f"compress.stages.{module}"


def test_stage_options_are_built_when_the_command_is_used(tmp_path):
    # a stage command lists its config class's fields once asked for its parameters
    command = cli.get_command(click.Context(cli), "prune")
    names = {p.name for p in command.get_params(click.Context(command))}
    assert {"ratio", "importance", "trust_code", "out"} <= names
    # and asking twice does not add them twice
    again = [p.name for p in command.get_params(click.Context(command))]
    assert len(again) == len(set(again))


USER_MODELS = """
from torch import nn

def build(num_classes: int = 10, width: int = 16):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(),
                         nn.Linear(width, num_classes))
"""


def test_compress_train_takes_a_model_from_the_current_directory_with_consent(
        tmp_path, monkeypatch):
    # setup: a model factory in a file of the user's, in the directory the command runs in
    from click.testing import CliRunner

    from compress import artifacts

    (tmp_path / "my_models.py").write_text(USER_MODELS)
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "digits", "--model",
            '{arch: python, factory: "my_models:build", kwargs: {width: 8}}',
            "--epochs", "1", "--out", "t"]
    # execute: without consent, then with it
    refused = CliRunner().invoke(cli, args)
    written = sorted(p.name for p in tmp_path.iterdir())
    trusted = CliRunner().invoke(cli, [*args, "--trust-code"])
    # assert: refused in one line before anything is written; then trained, factory recorded
    assert refused.exit_code == 2 and "--trust-code" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert written == ["my_models.py"]
    assert trusted.exit_code == 0, trusted.output
    spec = artifacts.load_checkpoint(tmp_path / "t" / "model.pt")["model"]
    assert spec["factory"] == "my_models:build" and spec["kwargs"] == {"width": 8}
    assert spec["source_file"] == str((tmp_path / "my_models.py").resolve())
