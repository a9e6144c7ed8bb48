"""Bad specs give one located message with the rule and the received value; nothing runs."""

import os
import subprocess
import textwrap

import pytest
from conftest import PYTHON

import dlspec
from dlspec.spec import LAYER_TYPES

HEAD = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [784]}\nlayers:\n"


def error_of(spec_file, text, name="bad.yaml"):
    path = spec_file(text, name)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    return str(info.value).replace(str(path.parent) + os.sep, "")


@pytest.mark.parametrize("body, message", [
    ("  - {type: dense, units: 256}\n  - {type: dense, units: 128}\n  - {type: dense, units: -3}\n",
     "bad.yaml:8:26: layers[2].units: must be a positive integer. Received: -3"),
    ("  - {type: dropout, rate: 1.5}\n",
     "bad.yaml:6:27: layers[0].rate: must be a number in [0, 1). Received: 1.5"),
    ("  - {type: dense, units: '256'}\n",
     "bad.yaml:6:26: layers[0].units: must be an integer. Received: '256'"),
    ("  - {type: dense, units: 2.5}\n",
     "bad.yaml:6:26: layers[0].units: must be an integer. Received: 2.5"),
    ("  - {type: dense, units: true}\n",
     "bad.yaml:6:26: layers[0].units: must be an integer. Received: True"),
    ("  - {type: dense}\n",
     "bad.yaml:6:5: layers[0]: missing required key 'units'. Received: {'type': 'dense'}"),
    ("  - {type: dense, unit: 3}\n",
     "bad.yaml:6:19: layers[0].unit: unknown key, did you mean 'units'? Received: 'unit'"),
    ("  - {type: dens, units: 3}\n",
     "bad.yaml:6:12: layers[0].type: unknown layer type, did you mean 'dense'? Received: 'dens'"),
    ("  - {units: 3}\n",
     f"bad.yaml:6:5: layers[0]: a layer needs a 'type': one of {len(LAYER_TYPES) + 1} layer types such as dense, "
     "conv2d, lstm or "
     "block (docs/spec.md lists them). Received: {'units': 3}"),
    ("  - {type: dense, units: 3, activation: relu7}\n",
     "bad.yaml:6:41: layers[0].activation: must be one of 'linear', 'relu', 'relu6', 'leaky_relu', 'elu', "
     "'gelu', 'silu', 'sigmoid', 'tanh', 'softmax', 'hardswish', 'hardsigmoid', 'mish' or 'softplus'. "
     "Received: 'relu7'"),
    # unknown name in an activation layer: located at .activation, not at the layer
    ("  - {type: activation, activation: relu7}\n",
     "bad.yaml:6:36: layers[0].activation: must be one of 'linear', 'relu', 'relu6', 'leaky_relu', 'elu', "
     "'gelu', 'silu', 'sigmoid', 'tanh', 'softmax', 'hardswish', 'hardsigmoid', 'mish' or 'softplus'. "
     "Received: 'relu7'"),
    ("  - {type: activation, activation: relu, beta: 2.0}\n",
     "bad.yaml:6:48: layers[0].beta: applies only to activation 'softplus', not 'relu'. Received: 2.0"),
    ("  - {type: activation, activation: relu, negative_slope: 0.1}\n",
     "bad.yaml:6:58: layers[0].negative_slope: applies only to activation 'leaky_relu', not 'relu'. Received: 0.1"),
    ("  - {type: batchnorm, momentum: 0}\n",
     "bad.yaml:6:33: layers[0].momentum: must be a number in (0, 1]. Received: 0"),
    ("  - {type: layernorm, eps: .nan}\n",
     "bad.yaml:6:28: layers[0].eps: must be a finite number. Received: nan"),
    ("  - {type: reshape, shape: [0, 4]}\n",
     "bad.yaml:6:28: layers[0].shape: entries must be positive integers, with at most one -1. Received: [0, 4]"),
    ("  - {type: dense, units: 3, name: a}\n  - {type: dense, units: 3, name: a}\n",
     "bad.yaml:7:35: layers[1].name: duplicate name, already used by layers[0]. Received: 'a'"),
    ("  - {type: dense, units: 3, name: x}\n",
     "bad.yaml:6:35: layers[0].name: duplicate name, already used by an input. Received: 'x'"),
    ("  - {type: dense, units: 3, name: forward}\n",
     "bad.yaml:6:35: layers[0].name: uses a reserved name (a Python keyword or a name generated code uses). "
     "Received: 'forward'"),
    ("  - {type: dense, units: 3, name: 1st}\n",
     "bad.yaml:6:35: layers[0].name: must be an identifier, or a dotted path of identifiers and indices such as "
     "layer1.0.conv1. Received: '1st'"),
    ("  - {type: reshape, shape: [5, -1]}\n",
     "bad.yaml:6:28: layers[0].shape: reshape_1 (reshape) on input shape (784,): cannot reshape 784 elements "
     "(784,) into (5, -1). Received: [5, -1]"),
    ("  - {type: activation, activation: softmax, axis: 3}\n",
     "bad.yaml:6:51: layers[0].axis: softmax_1 (activation) on input shape (784,): axis must be a non-batch "
     "axis of a rank-2 tensor (batch included: 1..1 or -1..-1). Received: 3"),
    ("  - {type: reshape, shape: [1, 2, 2, 2, 98]}\n  - {type: batchnorm}\n",
     "bad.yaml:7:5: layers[1]: batchnorm_1 (batchnorm) on input shape (1, 2, 2, 2, 98): batchnorm takes "
     "samples of rank 1 to 4 ([C], [C, L], [C, H, W], [C, D, H, W]). Received: (1, 2, 2, 2, 98)"),
])
def test_layer_errors(spec_file, body, message):
    assert error_of(spec_file, HEAD + body) == message


@pytest.mark.parametrize("text, message", [
    ("dlspec: 1\nname: m\ninputs: [\n",
     "bad.yaml:4:1: invalid YAML: expected the node content, but found '<stream end>'. Received: 'end of file'"),
    ("dlspec: 1\nname: m\n  bad indent: 3\n",
     "bad.yaml:3:13: invalid YAML: mapping values are not allowed here. Received: 'bad indent: 3'"),
    ("dlspec: 1\nname: m\nname: n\n",
     "bad.yaml:3:1: name: duplicate key (first defined at line 2). Received: 'name'"),
    ("dlspec: 2\nname: m\ninputs: {x: {shape: [3]}}\nlayers: [{type: flatten}]\n",
     "bad.yaml:1:9: dlspec: must be one of 1. Received: 2"),
    ("dlspec: 1\nname: m\ninputs: {x: {shape: [3]}}\n",
     "bad.yaml:1:1: missing required key 'layers'. Received: a mapping with keys dlspec, name, inputs"),
    ("dlspec: 1\nname: m\ninputs: {x: {shape: [3]}, y: {shape: [3]}}\nlayers: [{type: flatten}]\n",
     "bad.yaml:4:10: layers[0]: the first layer of a model with several inputs must name its `inputs`. "
     "Received: {'type': 'flatten'}"),
    ("- just\n- a list\n",
     "bad.yaml:1:1: a spec must be a mapping with keys dlspec, name, inputs, layers. Received: ['just', 'a list']"),
    ("dlspec: 1\nname: &a m\n",
     "bad.yaml:2:7: name: YAML anchors and aliases are not allowed in a spec. Received: 'a'"),
])
def test_document_errors(spec_file, text, message):
    assert error_of(spec_file, text) == message


def test_softmax_over_the_batch_axis_is_rejected(spec_file):
    text = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [3, 7]}\nlayers:\n" \
           "  - {type: activation, activation: softmax, axis: -3}\n"
    assert "axis must be a non-batch axis of a rank-3 tensor" in error_of(spec_file, text)


def test_several_errors_are_reported_in_file_order(spec_file):
    text = HEAD + "  - {type: dense, units: -1}\n  - {type: dropout, rate: 2}\n"
    assert error_of(spec_file, text).splitlines() == [
        "bad.yaml:6:26: layers[0].units: must be a positive integer. Received: -1",
        "bad.yaml:7:27: layers[1].rate: must be a number in [0, 1). Received: 2"]


def test_json_errors_point_into_the_json_file(spec_file):
    text = '{"dlspec": 1, "name": "m", "inputs": {"x": {"shape": [4]}},\n "layers": [{"type": "dense", "units": 0}]}\n'
    assert error_of(spec_file, text, "bad.json") == \
        "bad.json:2:40: layers[0].units: must be a positive integer. Received: 0"


HOSTILE = 'x"); import os; os.system("touch {marker}") #'


def test_hostile_name_is_rejected_and_never_runs(spec_file, tmp_path):
    marker = tmp_path / "owned"
    name = HOSTILE.format(marker=marker)
    for text in (HEAD + f"  - {{type: dense, units: 3, name: '{name}'}}\n",
                 f"dlspec: 1\nname: '{name}'\ninputs: {{x: {{shape: [3]}}}}\nlayers: [{{type: flatten}}]\n",
                 f"dlspec: 1\nname: m\ninputs: {{'{name}': {{shape: [3]}}}}\nlayers: [{{type: flatten}}]\n"):
        message = error_of(spec_file, text)
        assert "must be an identifier" in message and "Received: 'x\"); import os" in message
    assert not marker.exists()


def test_yaml_python_tags_never_run(spec_file, tmp_path):
    marker = tmp_path / "owned"
    text = f'dlspec: 1\nname: !!python/object/apply:os.system ["touch {marker}"]\n'
    assert error_of(spec_file, text) == \
        "bad.yaml:2:7: name: YAML tags are not allowed in a spec. " \
        "Received: 'tag:yaml.org,2002:python/object/apply:os.system'"
    assert not marker.exists()


def test_hostile_description_and_file_name_stay_inert(tmp_path):
    marker = tmp_path / "owned"
    text = textwrap.dedent(f'''\
        dlspec: 1
        name: m
        description: "x\\"\\"\\"\\nimport os; os.system('touch {marker}')\\n'''
                           f'''\\u2028import os; os.system('touch {marker}')"
        inputs: {{x: {{shape: [3]}}}}
        layers: [{{type: dense, units: 2}}]
        ''')
    path = tmp_path / "evil\nimport os; os.system('touch owned').yaml"
    path.write_text(text)
    for backend in ("torch", "keras"):
        source = dlspec.generate(dlspec.load(path), backend)
        compile(source, "generated.py", "exec")
        module = {}
        exec(compile(source, "generated.py", "exec"), module)  # defining the module runs nothing hostile
        assert not marker.exists()
        assert "\nimport os" not in source


def test_cli_reports_bad_spec_with_status_2_and_no_traceback(spec_file):
    path = spec_file(HEAD + "  - {type: dense, units: -3}\n")
    result = subprocess.run([PYTHON, "-m", "dlspec", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {path}:6:26: layers[0].units: must be a positive integer. Received: -3\n"


def test_cli_missing_file(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "summary", str(tmp_path / "nope.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: no such file.\n"


def test_numeric_bounds_use_dlspec_wording(spec_file):
    text = HEAD + "  - {type: dense, units: 2, regularizer: {l2: -1.0}}\n"
    assert error_of(spec_file, text) == "bad.yaml:6:47: layers[0].regularizer.l2: must be at least 0. Received: -1.0"


def test_groupnorm_with_single_value_groups_is_refused(spec_file):
    """torch's group_norm raises on such groups at batch 1; the output would be the bias alone anyway."""
    text = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [4, 1, 1]}\nlayers:\n  - {type: groupnorm, groups: 4}\n"
    assert error_of(spec_file, text) == (
        "bad.yaml:6:31: layers[0].groups: groupnorm_1 (groupnorm) on input shape (4, 1, 1): each group must hold "
        "at least 2 values (channels / groups x spatial positions of (4, 1, 1) gives 1). Received: 4")


TRAIN_HEAD = HEAD + "  - {type: dense, units: 2}\ntrain:\n  loss: {type: cross_entropy}\n"


def test_adam_betas_are_written_as_a_yaml_list(spec_file):
    model = dlspec.load(spec_file(TRAIN_HEAD + "  optimizer: {type: adam, betas: [0.8, 0.99]}\n"))
    assert list(model.spec.train.optimizer.betas) == [0.8, 0.99]
    assert error_of(spec_file, TRAIN_HEAD + "  optimizer: {type: adam, betas: [0.8]}\n") == (
        "bad.yaml:9:34: train.optimizer.betas: must have at least 2 entries. Received: [0.8]")
    assert error_of(spec_file, TRAIN_HEAD + "  optimizer: {type: adam, betas: [0.8, 1.0]}\n") == (
        "bad.yaml:9:40: train.optimizer.betas[1]: must be less than 1. Received: 1.0")


@pytest.mark.parametrize("train, message", [
    ("  loss: {type: hinge}\n  optimizer: {type: sgd, lr: 0.1}\n",
     "bad.yaml:8:16: train.loss.type: unknown loss type: must be one of 'cross_entropy', 'binary_cross_entropy', "
     "'mse', 'l1', 'huber'. Received: 'hinge'"),
    ("  loss: mae\n  optimizer: {type: sgd, lr: 0.1}\n",
     "bad.yaml:8:9: train.loss: unknown loss type: must be one of 'cross_entropy', 'binary_cross_entropy', "
     "'mse', 'l1', 'huber', did you mean 'mse'? Received: 'mae'"),
    ("  loss: mse\n  optimizer: {type: adagrad, lr: 0.1}\n",
     "bad.yaml:9:21: train.optimizer.type: unknown optimizer type: must be one of 'sgd', 'adam', 'adamw', "
     "'rmsprop'. Received: 'adagrad'"),
    ("  loss: mse\n  optimizer: {type: sgd, lr: 0.1}\n  schedule: {type: onecycle}\n",
     "bad.yaml:10:20: train.schedule.type: unknown schedule type: must be one of 'step', 'multistep', "
     "'exponential', 'cosine', 'reduce_on_plateau'. Received: 'onecycle'"),
])
def test_unknown_registry_entries_are_located_errors(spec_file, train, message):
    """Losses, optimizers and schedules are registries keyed by spec class: an unknown entry is one located
    error naming the entries there are (not a layer-type message, not two lines for one problem)."""
    assert error_of(spec_file, HEAD + "  - {type: dense, units: 3}\ntrain:\n" + train) == message


def test_unknown_initializer_is_a_located_error(spec_file):
    assert error_of(spec_file, HEAD + "  - {type: dense, units: 3, kernel_initializer: xavier}\n") == (
        "bad.yaml:6:49: layers[0].kernel_initializer: must be one of 'glorot_uniform', 'glorot_normal', "
        "'he_uniform', 'he_normal', 'lecun_uniform', 'lecun_normal', 'normal', 'zeros' or 'ones'. "
        "Received: 'xavier'")
