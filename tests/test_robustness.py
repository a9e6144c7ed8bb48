"""Issue 11: no spec crashes, hangs or yields broken source. One test per protected behaviour."""

import os
import subprocess
import textwrap

import pytest
from conftest import PYTHON, ROOT, SPECS

import dlspec


def error_of(spec_file, text, name="bad.yaml"):
    path = spec_file(text, name)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    return str(info.value).replace(str(path.parent) + os.sep, "")


# --- item 1: native libraries -------------------------------------------------------------------------------

@pytest.mark.parametrize("imports, backends", [("torch, keras, tensorflow", ("keras", "torch")),
                                               ("tensorflow", ("torch",))])
def test_builds_survive_tensorflow_imported_before_dlspec(imports, backends):
    # triton loaded after TensorFlow used to kill the process (exit 139); the user's import order must not matter
    script = textwrap.dedent(f"""
        import {imports}
        import dlspec
        spec = {str(SPECS / "mnist_mlp.yaml")!r}
        built = [type(dlspec.build(spec, backend)).__name__ for backend in {backends!r}]
        import torch
        net = dlspec.build(spec, "torch")
        opt = torch.optim.Adam(net.parameters())  # imports triton through torch._dynamo
        net(torch.zeros(2, 784)).sum().backward()
        opt.step()
        print("built", *built)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {"keras": "Functional", "torch": "MnistMlp"}
    assert proc.stdout.strip().splitlines()[-1] == " ".join(["built", *(expected[b] for b in backends)])


# --- item 2: documented limits, enforced at validation --------------------------------------------------------

HEAD = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [784]}\nlayers:\n"


@pytest.mark.parametrize("text, message", [
    ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [1, 8, 2147483648]}\nlayers:\n  - {type: maxpool2d, kernel: 2}\n",
     "bad.yaml:4:14: inputs.x.shape: a sample has at most 2,147,483,647 elements (the product of its shape). "
     "Received: [1, 8, 2147483648]"),
    ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [100000, 100000, 100000, 10000]}\nlayers:\n  - {type: flatten}\n",
     "bad.yaml:4:14: inputs.x.shape: a sample has at most 2,147,483,647 elements (the product of its shape). "
     "Received: [100000, 100000, 100000, 10000]"),
    ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [1, 1, 1, 1, 1, 1, 1, 1, 1]}\nlayers:\n  - {type: flatten}\n",
     "bad.yaml:4:14: inputs.x.shape: a sample has at most 8 axes. Received: [1, 1, 1, 1, 1, 1, 1, 1, 1]"),
    (HEAD + "  - {type: dense, units: 2147483648}\n",
     "bad.yaml:6:5: layers[0]: dense_1 (dense) on input shape (784,): the output has more than 2,147,483,647 "
     "elements. Received: [2147483648]"),
    (HEAD + "  - {type: dense, units: 2147483647}\n",
     "bad.yaml:6:5: layers[0]: dense_1 (dense) on input shape (784,): parameter 'weight' has more than "
     "2,147,483,647 elements. Received: [2147483647, 784]"),
    ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [40000]}\nlayers:\n" + "  - {type: dense, units: 40000}\n" * 3,
     "bad.yaml:8:5: layers[2]: dense_3 (dense) on input shape (40000,): the model has more than 4,294,967,296 "
     "parameters. Received: 4800120000"),
])
def test_absurd_sizes_fail_at_validation_with_the_limit(spec_file, text, message):
    assert error_of(spec_file, text) == message


def test_maxpool_on_a_huge_width_validates_at_once(spec_file):
    # the pooling geometry used to build a tuple as long as the output width (2**31 entries)
    import time

    path = spec_file("dlspec: 1\nname: m\ninputs:\n  x: {shape: [1, 1, 2147483647]}\nlayers:\n"
                     "  - {type: maxpool2d, kernel: 1, name: p}\n", "wide.yaml")
    start = time.perf_counter()
    model = dlspec.load(path)
    assert model.graph.node("p").shape == (1, 1, 2147483647)
    assert time.perf_counter() - start < 2


REPEAT = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [4]}\nblocks:\n  b:\n    layers:\n      - {type: dense, units: 4}\n"


def test_repeat_count_is_bounded_and_fails_fast(spec_file):
    import time

    start = time.perf_counter()
    text = REPEAT + "layers:\n  - {type: block, block: b, repeat: 1000000}\n"
    assert error_of(spec_file, text) == "bad.yaml:10:37: layers[0].repeat: must be at most 1000. Received: 1000000"
    assert time.perf_counter() - start < 2


def test_expanded_node_count_is_bounded(spec_file):
    text = REPEAT + "  c:\n    layers:\n      - {type: block, block: b, repeat: 1000}\n" \
                    "layers:\n  - {type: block, block: c, repeat: 1000}\n"
    assert error_of(spec_file, text) == (
        "bad.yaml:8:9: blocks.b.layers[0]: a model has at most 10,000 nodes once blocks are expanded "
        "(in block instance c_1.10.b_1.0). Received: 'c_1.10.b_1.0.dense_1'")


def test_limits_are_listed_in_the_spec_docs():
    from dlspec import errors

    text = (ROOT / "docs" / "spec.md").read_text()
    section = text[text.index("### Limits"):]
    for value in (errors.MAX_ELEMENTS, errors.MAX_PARAMS, errors.MAX_RANK, errors.MAX_NODES, errors.MAX_REPEAT,
                  errors.MAX_NESTING, errors.MAX_DIGITS, errors.MAX_NAME_PARTS):
        assert f"{value:,}" in section


# --- item 3: malformed specs give located errors, not tracebacks ---------------------------------------------

def test_integer_with_thousands_of_digits_is_a_located_error(spec_file):
    message = error_of(spec_file, HEAD + "  - {type: dense, units: " + "9" * 5000 + "}\n")
    assert message == ("bad.yaml:6:26: layers[0].units: an integer has at most 100 digits. "
                       "Received: '" + "9" * 76 + "...")


@pytest.mark.parametrize("opening, closing, path", [("[", "]", "[0]" * 30), ("{a: ", "}", ".a" * 30)])
def test_deep_nesting_is_a_located_error(spec_file, opening, closing, path):
    message = error_of(spec_file, HEAD + "  - " + opening * 1000 + "1" + closing * 1000 + "\n")
    column = 5 + len(opening) * 31
    assert message == f"bad.yaml:6:{column}: layers[0]{path}...: a spec nests at most 32 levels of mappings and lists."


@pytest.mark.parametrize("files, message", [
    ({"bad.yaml": "base: [1]\n"}, "bad.yaml:1:7: base: must be the path of a spec file. Received: [1]"),
    ({"bad.yaml": "base: list.yaml\n", "list.yaml": "[1, 2]\n"},
     "list.yaml:1:1: a base spec must be a mapping whose `layers` is a list. Received: [1, 2]"),
    ({"bad.yaml": "base: other.yaml\n", "other.yaml": "dlspec: 1\nlayers: 5\n"},
     "other.yaml:2:9: layers: a base spec must be a mapping whose `layers` is a list. Received: 5"),
    ({"bad.yaml": "base: mnist_mlp.yaml\nreplace: [1]\n"},
     "bad.yaml:2:10: replace: must be a mapping from layer names to layers. Received: [1]"),
    ({"bad.yaml": "base: mnist_mlp.yaml\nlayers: 3\n"}, "bad.yaml:2:9: layers: must be a list. Received: 3"),
    ({"bad.yaml": "base: mnist_mlp.yaml\nlayers: {a: 1}\n"},
     "bad.yaml:2:9: layers: must be a list. Received: {'a': 1}"),
    ({"bad.yaml": "base: " + "a" * 5000 + "\n"},
     "bad.yaml:1:7: base: cannot be a file name (File name too long). Received: '" + "a" * 76 + "..."),
    ({"bad.yaml": "base: mnist_mlp.yaml\nlayers: [{type: dense, units: 3}, {type: dense, units: 3, bad: 1}]\n"},
     "bad.yaml:2:59: layers[5].bad: unknown key. Received: 'bad'"),
])
def test_malformed_derived_specs_are_located_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(tmp_path / "bad.yaml")
    assert str(info.value).replace(str(tmp_path) + os.sep, "") == message


@pytest.mark.parametrize("name, shown", [("a.01", "'01'"), ("a." + "9" * 5000, "'999999999999'")])
def test_indices_in_node_names_are_canonical_and_short(spec_file, name, shown):
    # a 5000-digit index crashed torch code generation (int() of more than 4300 digits), found by bench/fuzz.py
    message = error_of(spec_file, HEAD + f"  - {{type: dense, units: 2, name: {name}}}\n")
    assert message == ("bad.yaml:6:35: layers[0].name: an index in a dotted name has at most 9 digits and no leading "
                       f"zero ({shown}). Received: {dlspec.errors.show(name)}")


def test_a_long_chain_written_last_to_first_validates_without_recursion(spec_file):
    n = 1500  # the topological sort used to recurse once per node: RecursionError past about 1,000
    lines = [f"  - {{type: activation, activation: relu, name: l{i}, inputs: [l{i + 1}]}}" for i in range(n - 1)]
    text = ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [4]}\noutputs: [l0]\nlayers:\n" + "\n".join(lines) +
            f"\n  - {{type: activation, activation: relu, name: l{n - 1}, inputs: [x]}}\n")
    model = dlspec.load(spec_file(text))
    assert [node.name for node in model.graph.nodes[:2]] == ["l1499", "l1498"]
    compile(dlspec.generate(model, "torch"), "<torch>", "exec")


def test_node_names_have_at_most_64_dotted_parts(spec_file):
    # 2,000 parts made torch code generation recurse once per part (RecursionError)
    ok = dlspec.load(spec_file(HEAD + f"  - {{type: dense, units: 2, name: {'.'.join(['a'] * 64)}}}\n", "ok.yaml"))
    compile(dlspec.generate(ok, "torch"), "<torch>", "exec")
    message = error_of(spec_file, HEAD + f"  - {{type: dense, units: 2, name: {'.'.join(['a'] * 2000)}}}\n")
    assert message == ("bad.yaml:6:5: layers[0]: a node name has at most 64 dotted parts once blocks are expanded. "
                       "Received: '" + "a." * 38 + "...")


# --- item 4: spec names that are Python words ------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("none", "NoneModel"), ("true", "TrueModel"), ("false", "FalseModel"),
                                       ("f", "FModel"), ("exception", "ExceptionModel"), ("path", "PathModel"),
                                       ("mnist_mlp", "MnistMlp")])
def test_spec_names_that_are_python_words_give_valid_classes(name, cls):
    source = dlspec.generate(dlspec.loads(HEAD.replace("name: m", f"name: '{name}'") +
                                          "  - {type: dense, units: 2}\n"), "torch")
    compile(source, "<torch>", "exec")
    assert f"\nclass {cls}(nn.Module):\n" in source
    assert f"    model = {cls}()\n" in source


def test_node_names_never_shadow_keras_helpers_or_builtins():
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from fuzzlib import check_source

    text = ("dlspec: 1\nname: m\ninputs:\n  x: {shape: [3, 8, 8]}\nlayers:\n"
            "  - {type: maxpool2d, kernel: 3, padding: 1, name: TorchPool}\n  - {type: batchnorm, name: BatchNorm}\n"
            "  - {type: flatten, name: print}\n  - {type: dense, units: 2, name: sum}\n")
    source = dlspec.generate(dlspec.loads(text), "keras")
    assert check_source(source, "keras") is None
    assert "    TorchPool_2 = TorchPool(\n" in source
    assert "    sum_2 = keras.layers.Dense(\n" in source


# --- item 5: long node names -------------------------------------------------------------------------------------

def test_long_node_names_keep_weight_keys_strings():
    from dlspec.backends.codegen import render as wrap

    name = "a" * 90
    source = dlspec.generate(dlspec.loads(HEAD + f"  - {{type: dense, units: 2, name: {name}}}\n"), "keras")
    assert f'"{name}"' in source  # the layer's name, a string however long (its weights load: next test)
    assert '",\n        ]' not in source
    assert wrap('y = weights["' + "k" * 120 + '"]', "") == 'y = weights[\n    "' + "k" * 120 + '"\n]'
    assert wrap("y = (" + "a + " * 30 + "b)", "") == "y = (\n    " + "a + " * 30 + "b\n)"


def test_long_node_names_load_their_weights_in_keras():
    from dlspec.weights import init_weights

    name = "a" * 90
    model = dlspec.loads(HEAD + f"  - {{type: dense, units: 2, name: {name}}}\n")
    weights = init_weights(model, 0)
    net = dlspec.build(model, "keras", weights)
    assert (net.get_layer(name).get_weights()[0] == weights[f"{name}.weight"].T).all()


# --- item 10: one line per error ---------------------------------------------------------------------------------

def test_yaml_reader_errors_are_one_located_line(spec_file):
    assert error_of(spec_file, "dlspec: 1\nname: m\x00\n") == (
        "bad.yaml:2:8: invalid YAML: special characters are not allowed. Received: '\\x00'")


def test_keys_with_line_breaks_are_shown_escaped(spec_file):
    message = error_of(spec_file, HEAD + '  - {type: dense, units: 2, "a\\nb": 1}\n')
    assert message == "bad.yaml:6:29: layers[0]['a\\nb']: unknown key. Received: 'a\\nb'"
    assert "\n" not in message


def test_every_spec_error_is_one_line():
    from dlspec.errors import Loc, SpecError

    err = SpecError(Loc("a\nb.yaml"), "x\u2028y", "rule\rmore", "v\nw")
    assert str(err) == "a\\nb.yaml:1:1: x\\u2028y: rule\\rmore. Received: 'v\\nw'"


def test_from_dict_refuses_data_json_cannot_hold():
    cyclic = []
    cyclic.append(cyclic)
    for data in ({"layers": {1, 2}}, {"units": 10**5000}, {"layers": cyclic}):
        with pytest.raises(dlspec.SpecError) as info:
            dlspec.from_dict(data)
        assert str(info.value).startswith("<dict>:1:1: spec data must be JSON-like: mappings with string keys, lists, ")
