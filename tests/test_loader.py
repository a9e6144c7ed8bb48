"""The loader: YAML and JSON into plain data with positions; YAML 1.2 core scalars; nothing executable."""

import pytest

from dlspec.errors import SpecError
from dlspec.loader import format_path, parse_text


@pytest.mark.parametrize("text, value", [
    ("a: yes", "yes"), ("a: on", "on"), ("a: no", "no"),  # YAML 1.1 booleans stay strings
    ("a: true", True), ("a: False", False), ("a: null", None), ("a: ~", None), ("a:", None),
    ("a: 1e-5", 1e-5), ("a: 1.0e-3", 1e-3), ("a: -3", -3), ("a: 0x10", "0x10"), ("a: 010", 10),
    ("a: 1_000", 1000), ("a: '12'", "12"), ('a: "true"', "true"), ("a: .5", 0.5), ("a: 3.", 3.0),
])
def test_scalars_follow_yaml_1_2_core(text, value):
    got = parse_text(text).data["a"]
    assert got == value and type(got) is type(value)


def test_json_is_read_with_the_same_scalars_and_positions():
    doc = parse_text('{\n  "dlspec": 1,\n  "rate": 1e-5,\n  "name": "m",\n  "flag": true\n}', "s.json")
    assert doc.data == {"dlspec": 1, "rate": 1e-5, "name": "m", "flag": True}
    assert (doc.values[("rate",)].line, doc.values[("rate",)].col) == (3, 11)
    assert (doc.keys[("name",)].line, doc.keys[("name",)].col) == (4, 3)


def test_positions_of_nested_values():
    doc = parse_text("layers:\n  - type: dense\n    units: 5\n  - {type: flatten}\n", "f.yaml")
    assert str(doc.values[("layers", 0, "units")]) == "f.yaml:3:12"
    assert str(doc.values[("layers", 1)]) == "f.yaml:4:5"
    assert str(doc.loc(("layers", 1, "missing"))) == "f.yaml:4:5"  # nearest ancestor


@pytest.mark.parametrize("text, rule", [
    ("a: !!str 3", "YAML tags are not allowed in a spec"),
    ("a: !custom 3", "YAML tags are not allowed in a spec"),
    ("a: &x 3\nb: *x", "YAML anchors and aliases are not allowed in a spec"),
    ("a: 1\na: 2", "duplicate key (first defined at line 1)"),
    ("? [1, 2]\n: 3", "mapping keys must be plain strings"),
    ("a: 1\n---\nb: 2", "a spec file holds exactly one document"),
])
def test_rejected_yaml(text, rule):
    with pytest.raises(SpecError) as info:
        parse_text(text)
    assert info.value.rule == rule


def test_billion_laughs_is_rejected_at_the_first_anchor():
    text = 'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n'
    with pytest.raises(SpecError) as info:
        parse_text(text, "laughs.yaml")
    assert str(info.value) == "laughs.yaml:1:4: a: YAML anchors and aliases are not allowed in a spec. Received: 'a'"


def test_format_path():
    assert format_path(("layers", 2, "units")) == "layers[2].units"
    assert format_path(("inputs", "x", "shape", 0)) == "inputs.x.shape[0]"
    assert format_path(()) == ""
