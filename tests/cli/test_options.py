"""Generated options: `--field null` on the command line means what `field: null` means in YAML."""

from __future__ import annotations

import importlib
import typing

import click
import pytest
from click.testing import CliRunner

from compress.cli.main import cli
from compress.cli.options import build_config, config_options, given_options
from compress.measure.energy import EnergyConfig
from compress.report.compare import CompareConfig
from compress.stages import STAGES

CLASSES = [d.config_cls for d in STAGES.values()] + [EnergyConfig, CompareConfig]
NULLABLE = [(cls, name) for cls in CLASSES for name, f in cls.model_fields.items()
            if type(None) in typing.get_args(f.annotation)]


# Required fields that are not stage ids: a smallest valid value
EXAMPLES = {("SearchConfig", "space"): {"model": {"arch": "resnet", "width": {"choices": [8, 16]}}}}


def _fill_required(cls) -> dict:
    """Placeholder values for the required fields (stage ids), so the class validates."""
    out = {}
    for name, f in cls.model_fields.items():
        if (cls.__name__, name) in EXAMPLES:
            out[name] = EXAMPLES[(cls.__name__, name)]
        elif f.is_required():
            if typing.get_origin(f.annotation) is list:
                # as many stage ids as the field needs (explain compares two models at least)
                least = next((m.min_length for m in f.metadata if hasattr(m, "min_length")), 1)
                out[name] = [f"x{i}" for i in range(max(1, least or 1))]
            else:
                out[name] = "x"
    return out


def test_every_nullable_field_is_found():
    names = {(c.__name__, n) for c, n in NULLABLE}
    assert ("TrainConfig", "patience") in names and ("EnergyConfig", "cores") in names
    assert len(NULLABLE) >= 15


@pytest.mark.parametrize(("cls", "field"), NULLABLE,
                         ids=[f"{c.__name__}.{n}" for c, n in NULLABLE])
def test_null_on_the_command_line_sets_the_field_to_none(cls, field):
    # setup: a command with the options generated from the class, as every stage command has
    seen = {}

    @click.command()
    @config_options(cls, skip=set())
    def command(**values):
        seen.update(given_options(values))

    # execute
    res = CliRunner().invoke(command, ["--" + field.replace("_", "-"), "null"])
    # assert
    assert res.exit_code == 0, res.output
    assert seen == {field: None}
    cfg = cls.model_validate({**_fill_required(cls), **seen})
    assert getattr(cfg, field) is None


@pytest.mark.parametrize("word", ["none", "~", "NULL"])
def test_every_yaml_spelling_of_null_works(word):
    @click.command()
    @config_options(STAGES["train"].config_cls, skip=set())
    def command(**values):
        assert given_options(values)["patience"] is None

    assert CliRunner().invoke(command, ["--patience", word]).exit_code == 0


def test_an_option_not_given_keeps_its_default():
    cfg = build_config(STAGES["train"].config_cls, "compress train",
                       {"id": "t", "patience": None, "epochs": 3})
    assert cfg.patience == 10 and cfg.epochs == 3


def test_compress_train_patience_null_reaches_the_stage(monkeypatch, tmp_path):
    # setup: the real command, stopped where it would start training
    main = importlib.import_module("compress.cli.stages")  # where the stage commands live
    ran = []
    monkeypatch.setattr(main, "run_standalone", lambda cfg, *args, **kw: ran.append(cfg))
    # execute
    res = CliRunner().invoke(cli, ["train", "--data", "digits", "--out", str(tmp_path / "t"),
                                   "--patience", "null", "--num-workers", "2"])
    # assert
    assert res.exit_code == 0, res.output
    assert ran[0].patience is None and ran[0].num_workers == 2
