"""The YAML-to-dataclass loader behind qwen-train's run configuration and qwen-data's pipeline file:
values are typed by the field's annotation, and each problem is one line naming file and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pytest

from foundation.dataclass_yaml import FieldError, build_dataclass, read_yaml


@dataclass
class Optimizer:
    lr: float = 3e-4
    warmup_steps: int = 10
    decay_steps: Optional[int] = None


@dataclass
class Run:
    name: str = "run"
    resume: bool = True
    languages: tuple[str, ...] = ("en",)
    prefixes: list = field(default_factory=list)
    optimizer: Optimizer = field(default_factory=Optimizer)


def test_values_are_typed_by_their_annotations():
    run = build_dataclass(Run, {"name": "a", "languages": ["en", "zh"], "prefixes": ("x",),
                                "optimizer": {"lr": "1e-3", "warmup_steps": 5.0, "decay_steps": None}}, "run.yaml:")
    assert run == Run(name="a", languages=("en", "zh"), prefixes=["x"], optimizer=Optimizer(1e-3, 5, None))
    assert isinstance(run.optimizer.warmup_steps, int)


def test_an_int_is_a_float_and_an_empty_section_is_the_defaults():
    run = build_dataclass(Run, {"optimizer": None}, "run.yaml:")
    assert run.optimizer == Optimizer()
    assert build_dataclass(Optimizer, {"lr": 1}, "run.yaml: optimizer").lr == 1.0


@pytest.mark.parametrize("values, message", [
    ({"optimizer": {"warmup_steps": "ten"}}, "run.yaml: optimizer.warmup_steps: expected int, got 'ten'"),
    ({"optimizer": {"warmup_steps": 2.5}}, "run.yaml: optimizer.warmup_steps: expected int, got 2.5"),
    ({"optimizer": {"lr": True}}, "run.yaml: optimizer.lr: expected float, got True"),
    ({"resume": "yes"}, "run.yaml: resume: expected bool, got 'yes'"),
    ({"name": 3}, "run.yaml: name: expected str, got 3"),
    ({"name": None}, "run.yaml: name: expected str, got None"),
    ({"languages": "en"}, "run.yaml: languages: expected tuple, got 'en'"),
    ({"optimizer": [1]}, "run.yaml: optimizer: expected a mapping of options, got list"),
    ({"optimizer": {"l_r": 1}},
     "run.yaml: optimizer.l_r: unknown option (known: lr, warmup_steps, decay_steps)"),
])
def test_a_bad_value_is_one_line_naming_file_and_key(values, message):
    with pytest.raises(FieldError) as error:
        build_dataclass(Run, values, "run.yaml:")
    assert str(error.value) == message


def test_a_top_level_that_is_not_a_mapping_names_the_file():
    with pytest.raises(FieldError, match=r"^run\.yaml: expected a mapping of options, got list$"):
        build_dataclass(Run, ["a"], "run.yaml:")


def test_every_unknown_key_gets_its_own_line():
    with pytest.raises(FieldError) as error:
        build_dataclass(Run, {"nme": "a", "resme": True}, "run.yaml:")
    assert [line.split(":")[1].strip() for line in str(error.value).splitlines()] == ["nme", "resme"]


def test_fixed_fields_are_set_by_the_caller_not_the_file():
    run = build_dataclass(Run, {"name": "a"}, "x.yaml: stages.clean", fixed={"resume": False})
    assert (run.name, run.resume) == ("a", False)
    with pytest.raises(FieldError, match=r"^x\.yaml: stages\.clean\.resume: unknown option"):
        build_dataclass(Run, {"resume": True}, "x.yaml: stages.clean", fixed={"resume": False})


def test_read_yaml_names_the_file(tmp_path):
    missing, broken = tmp_path / "missing.yaml", tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(FieldError, match=rf"^{missing}: cannot read \(No such file or directory\)$"):
        read_yaml(missing)
    with pytest.raises(FieldError, match=rf"^{broken}: not valid YAML \("):
        read_yaml(broken)
