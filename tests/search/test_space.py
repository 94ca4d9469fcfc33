"""The search space: ranges, choices and fixed values, and every malformed one refused with the
field named."""

from __future__ import annotations

import optuna
import pytest
from pydantic import ValidationError

from compress.search.space import SearchSpace

BASE = {"model": {"arch": "resnet", "width": {"choices": [16, 24, 32]},
                  "stages": {"low": 1, "high": 3}}}


def test_two_parameters_sample_inside_their_ranges():
    # setup
    space = SearchSpace.model_validate(BASE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    # execute
    drawn = [space.sample(study.ask(), {"temperature": 4.0, "alpha": 0.9, "epochs": 5})
             for _ in range(20)]
    # assert
    assert [p.name for p in space.params()] == ["model.width", "model.stages"]
    assert {d["model"]["width"] for d in drawn} <= {16, 24, 32}
    assert {d["model"]["stages"] for d in drawn} <= {1, 2, 3}
    assert len({d["model"]["stages"] for d in drawn}) > 1
    assert all(d["epochs"] == 5 and d["int8"] == "auto" and d["prune_ratio"] == 0.0
               for d in drawn)
    assert space.size() == 9


def test_list_choices_for_mlp_hidden_come_back_as_lists():
    # setup
    space = SearchSpace.model_validate({"model": {"arch": "mlp",
                                                  "hidden": {"choices": [[8], [16, 8]]}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    # execute
    drawn = {tuple(space.sample(study.ask(), {"temperature": 4, "alpha": 0.9, "epochs": 1})
                   ["model"]["hidden"]) for _ in range(10)}
    # assert
    assert drawn == {(8,), (16, 8)}


def test_the_space_hash_changes_with_the_space():
    # setup / execute
    a = SearchSpace.model_validate(BASE).sha256()
    b = SearchSpace.model_validate({**BASE, "prune_ratio": {"choices": [0, 0.25]}}).sha256()
    # assert
    assert a != b


@pytest.mark.parametrize("space, words", [
    ({"model": {"arch": "resnet", "widht": {"choices": [8, 16]}}}, "model.widht: unknown field"),
    ({"model": {"arch": "resnet", "width": {"low": 16, "high": 16}}}, "is empty"),
    ({"model": {"arch": "resnet", "width": {"low": 32, "high": 16}}}, "is inverted"),
    ({"model": {"arch": "resnet", "width": {"choices": [16]}}}, "at least two values"),
    ({"model": {"arch": "resnet", "width": {"choices": [16, 16]}}}, "repeats a value"),
    ({"model": {"arch": "resnet", "width": 16}}, "searches nothing"),
    ({"model": {"arch": "resnet", "stages": {"low": 1, "high": 9}}}, "model.stages: 9"),
    ({"model": {"arch": "resnet", "width": 16}, "alpha": {"low": 0.5, "high": 2}},
     "alpha: 2"),
    ({"model": {"arch": "resnet", "width": 16}, "int8": {"choices": ["auto", "fp16"]}},
     "int8: 'fp16'"),
    ({"model": {"arch": "nope", "width": {"choices": [8, 16]}}}, "model.arch"),
])
def test_bad_spaces_are_refused_naming_the_field(space, words):
    # setup / execute
    with pytest.raises(ValidationError) as e:
        SearchSpace.model_validate(space)
    # assert
    assert words in str(e.value)
