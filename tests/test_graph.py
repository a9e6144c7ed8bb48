"""Graph form and blocks: explicit inputs, several inputs and outputs, expansion, and errors at the right line."""

import os

import numpy as np
import pytest

import dlspec
from dlspec.parity import parity

GRAPH = """\
dlspec: 1
name: two_towers
inputs:
  left: {shape: [3, 8, 8]}
  right: {shape: [6]}
outputs: [logits, embedding]
blocks:
  residual:
    params: [filters]
    defaults: {filters: 3}
    layers:
      - {name: conv, type: conv2d, filters: $filters, kernel: 3, padding: same}
      - {name: act, type: activation, activation: relu}
      - {name: sum, type: add, inputs: [act, x]}
layers:
  - {name: stem, type: block, block: residual, repeat: 2, inputs: [left]}
  - {name: pooled, type: global_avgpool}
  - {name: embedding, type: dense, units: 4, inputs: [right]}
  - {name: joined, type: concat, inputs: [pooled, embedding], axis: 1}
  - {name: logits, type: dense, units: 2}
"""


def test_graph_with_two_inputs_two_outputs_and_a_repeated_block(spec_file):
    model = dlspec.load(spec_file(GRAPH))
    assert [n.name for n in model.graph.nodes] == [
        "stem.0.conv", "stem.0.act", "stem.0.sum", "stem.1.conv", "stem.1.act", "stem.1.sum", "pooled",
        "embedding", "joined", "logits"]
    assert model.graph.node("stem.1.sum").inputs == ("stem.1.act", "stem.0.sum")
    assert model.graph.node("pooled").inputs == ("stem.1.sum",)
    assert model.graph.outputs == ["logits", "embedding"]
    report = parity(model, batch=3)
    assert report.ok, report.table()
    assert [p.output for p in report.pairs] == ["logits", "embedding"] * 3
    assert report.outputs["onnx"][0].shape == (3, 2) and report.outputs["onnx"][1].shape == (3, 4)


def test_generated_torch_source_mirrors_the_hierarchy(spec_file):
    source = dlspec.generate(dlspec.load(spec_file(GRAPH)), "torch")
    assert "class Residual(nn.Module):\n" in source  # the block is a class, its repeat a Sequential of instances
    assert "        self.stem = nn.Sequential(Residual(), Residual())\n" in source
    assert "def forward(self, left, right):" in source
    assert "        x = self.stem(left)  # spec.yaml:16\n" in source  # each layer's comment on its line of forward
    assert "        out = out + x  # spec.yaml:14\n" in source  # relu outputs are never overwritten in place
    assert "        embedding = self.embedding(right)  # spec.yaml:18\n" in source
    assert "        x = torch.cat([x, embedding], dim=1)  # spec.yaml:19\n" in source
    assert "        logits = self.logits(x)  # spec.yaml:20\n" in source
    assert "return logits, embedding" in source  # several outputs: each returned under its spec name


def test_nodes_may_be_written_in_any_order(spec_file):
    text = ("dlspec: 1\nname: m\ninputs: {x: {shape: [4]}}\noutputs: [out]\nlayers:\n"
            "  - {name: out, type: add, inputs: [a, b]}\n"
            "  - {name: a, type: dense, units: 2, inputs: [x]}\n"
            "  - {name: b, type: dense, units: 2, inputs: [x]}\n")
    model = dlspec.load(spec_file(text))
    assert [n.name for n in model.graph.nodes] == ["a", "b", "out"]


def error_of(spec_file, text):
    path = spec_file(text, "bad.yaml")
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    return str(info.value).replace(str(path.parent) + os.sep, "")


HEAD = "dlspec: 1\nname: m\ninputs: {x: {shape: [3, 8, 8]}}\n"


@pytest.mark.parametrize("body, message", [
    ("layers:\n  - {name: a, type: conv2d, filters: 3, kernel: 3, inputs: [xx]}\n",
     "bad.yaml:5:61: layers[0].inputs[0]: unknown input, did you mean 'x'? Received: 'xx'"),
    ("layers:\n  - {name: a, type: add, inputs: [b, x]}\n  - {name: b, type: add, inputs: [a, x]}\n",
     "bad.yaml:5:34: layers[0].inputs: the graph has a cycle: a -> b -> a. Received: 'b'"),
    ("layers:\n  - {name: a, type: activation, activation: relu, inputs: [a]}\n",
     "bad.yaml:5:59: layers[0].inputs: the graph has a cycle: a -> a. Received: 'a'"),
    ("layers:\n  - {name: a, type: conv2d, filters: 4, kernel: 3}\n  - {name: s, type: add, inputs: [a, x]}\n",
     "bad.yaml:6:34: layers[1].inputs: s (add) on input shape (4, 6, 6), (3, 8, 8): shapes do not broadcast "
     "(numpy rule, right-aligned): axis 1 has sizes [3, 4]. Received: '(N, 4, 6, 6), (N, 3, 8, 8)'"),
    ("layers:\n  - {name: s, type: concat, axis: 1, inputs: [x]}\n",
     "bad.yaml:5:46: layers[0].inputs: s (concat) on input shape (3, 8, 8): concat needs two or more inputs. "
     "Received: 1"),
    ("layers:\n  - {type: flatten, inputs: [x, x]}\n",
     "bad.yaml:5:29: layers[0].inputs: flatten_1 (flatten) on input shape (3, 8, 8), (3, 8, 8): flatten takes "
     "one input. Received: ['x', 'x']"),
    ("outputs: [nope]\nlayers:\n  - {type: flatten}\n",
     "bad.yaml:4:11: outputs[0]: unknown input. Received: 'nope'"),
    ("layers:\n  - {name: fc, type: flatten}\n  - {name: fc.1, type: dense, units: 2}\n",
     "bad.yaml:6:5: layers[1]: 'fc.1' lies inside 'fc', which is a node itself. Received: 'fc.1'"),
    ("layers:\n  - {name: 0a, type: flatten}\n",
     "bad.yaml:5:12: layers[0].name: must be an identifier, or a dotted path of identifiers and indices such as "
     "layer1.0.conv1. Received: '0a'"),
    ("layers:\n  - {name: features.0, type: flatten}\n  - {name: '1', type: flatten}\n",
     "bad.yaml:6:12: layers[1].name: a top-level name must start with an identifier. Received: '1'"),
])
def test_graph_errors(spec_file, body, message):
    assert error_of(spec_file, HEAD + body) == message


BLOCKS = HEAD + """\
blocks:
  unit:
    params: [filters, stride]
    defaults: {stride: 1}
    layers:
      - {name: conv, type: conv2d, filters: $filters, kernel: 3, stride: $stride, padding: same}
      - {name: bn, type: batchnorm}
"""


@pytest.mark.parametrize("layers, message", [
    ("  - {type: block, block: unti, args: {filters: 4}}\n",
     "bad.yaml:12:26: layers[0].block: unknown block, did you mean 'unit'? Received: 'unti'"),
    ("  - {type: block, block: unit}\n",
     "bad.yaml:12:5: layers[0]: block 'unit' needs a value for 'filters'. Received: {}"),
    ("  - {type: block, block: unit, args: {filters: 4, strides: 2}}\n",
     "bad.yaml:12:60: layers[0].args.strides: block 'unit' has no parameter 'strides', did you mean 'stride'? "
     "Received: 'strides'"),
    ("  - {type: block, name: stage, block: unit, repeat: 2, args: {filters: -4}}\n",
     "bad.yaml:9:45: blocks.unit.layers[0].filters: must be a positive integer (in block instance stage.0). "
     "Received: -4"),
    ("  - {type: block, name: stage, block: unit, args: {filters: 4, stride: [1, 2, 3]}}\n",
     "bad.yaml:9:74: blocks.unit.layers[0].stride: must be a positive integer, or a list of one per spatial axis "
     "(in block instance stage). Received: [1, 2, 3]"),
    ("  - {type: flatten}\n  - {type: block, name: late, block: unit, args: {filters: 4}}\n",
     "bad.yaml:9:9: blocks.unit.layers[0]: late.conv (conv2d) on input shape (192,): conv2d needs samples of "
     "rank 3 ([C, H, W]) (in block instance late). Received: (192,)"),
])
def test_block_errors(spec_file, layers, message):
    assert error_of(spec_file, BLOCKS + "layers:\n" + layers) == message


def test_undefined_parameter_in_a_block_body(spec_file):
    text = HEAD + ("blocks:\n  b:\n    params: [width]\n    layers:\n"
                   "      - {type: conv2d, filters: $widht, kernel: 1}\n"
                   "layers:\n  - {type: block, block: b, name: s, args: {width: 2}}\n")
    assert error_of(spec_file, text) == ("bad.yaml:8:33: blocks.b.layers[0].filters: unknown block parameter, "
                                         "did you mean 'width'? (in block instance s). Received: '$widht'")


def test_a_block_that_uses_itself(spec_file):
    text = HEAD + ("blocks:\n  b:\n    layers:\n      - {type: block, block: b}\n"
                   "layers:\n  - {type: block, block: b, name: s}\n")
    assert error_of(spec_file, text) == ("bad.yaml:7:30: blocks.b.layers[0].block: blocks may not use themselves "
                                         "(b -> b) (in block instance s). Received: 'b'")


def test_blocks_expand_with_defaults_and_first_args(spec_file):
    text = BLOCKS + "layers:\n  - {type: block, name: s, block: unit, repeat: 3, args: {filters: 4}, " \
                    "first_args: {stride: 2}}\n"
    model = dlspec.load(spec_file(text))
    assert [(n.name, n.shape) for n in model.graph.nodes if n.op == "conv2d"] == [
        ("s.0.conv", (4, 4, 4)), ("s.1.conv", (4, 4, 4)), ("s.2.conv", (4, 4, 4))]
    weights = dlspec.init_weights(model, 0)
    assert sorted(weights)[:4] == ["s.0.bn.bias", "s.0.bn.running_mean", "s.0.bn.running_var", "s.0.bn.weight"]
    assert np.isfinite(parity(model, batch=2).pairs[0].max_abs)


@pytest.mark.parametrize("body, message", [
    ("layers:\n  - {name: a, type: flatten}\n  - {name: b, type: dense, units: 2, inputs: [x]}\n"
     "  - {name: c, type: dense, units: 2, inputs: [b]}\n",
     "bad.yaml:5:5: layers[0]: a feeds no model output; list it in `outputs` or remove it. Received: 'a'"),
    ("layers:\n  - {name: e, type: embedding, vocabulary: 5, units: 2}\n",
     "bad.yaml:5:5: layers[0]: e (embedding) needs int64 input, but 'x' is float32. Received: 'x'"),
    ("layers:\n  - {name: head.class, type: flatten}\n",
     "bad.yaml:5:12: layers[0].name: uses a reserved name ('class') (a Python keyword or a name generated code "
     "uses). Received: 'head.class'"),
    ("layers:\n  - {name: head.items, type: flatten}\n",
     "bad.yaml:5:12: layers[0].name: uses a reserved name ('items') (a Python keyword or a name generated code "
     "uses). Received: 'head.items'"),
])
def test_more_graph_errors(spec_file, body, message):
    assert error_of(spec_file, HEAD + body) == message


def test_a_node_may_not_take_a_block_instance_name(spec_file):
    text = BLOCKS + ("layers:\n  - {type: block, name: stage, block: unit, args: {filters: 4}}\n"
                     "  - {name: stage.conv, type: flatten}\n")
    assert error_of(spec_file, text) == ("bad.yaml:13:12: layers[1].name: the name 'stage.conv' is already taken "
                                         "by blocks.unit.layers[0]. Received: 'stage.conv'")


def test_automatic_names_skip_input_names(spec_file):
    model = dlspec.load(spec_file("dlspec: 1\nname: m\ninputs: {dense_1: {shape: [3]}}\nlayers:\n"
                                  "  - {type: dense, units: 2}\n"))
    assert [n.name for n in model.graph.nodes] == ["dense_2"]
