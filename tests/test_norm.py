"""Issue 9: the activation registry, new activations, norms over any axes, adaptive pooling, stochastic depth,
and the fixes found by differential testing."""

import re
import typing
from pathlib import Path

import numpy as np
import pytest

import dlspec
from dlspec.activations import ACTIVATIONS
from dlspec.backends import registry  # noqa: F401  (the backends' tables below import their modules)
from dlspec.ir.norm import adaptive_bins
from dlspec.parity import parity
from dlspec.spec.layers import Activation, ActivationName

DOCS = Path(__file__).resolve().parents[1] / "docs"


def flat(source: str) -> str:
    """Generated source with each wrapped call joined on one line."""
    return re.sub(r",\s*\)", ")", re.sub(r"\(\s+", "(", re.sub(r",\n\s+", ", ", source)))


def model(shape, layers, name="m"):
    return dlspec.from_dict({"dlspec": 1, "name": name, "inputs": {"x": {"shape": shape}}, "layers": layers})


def test_every_backend_lowers_exactly_the_registry_activations():
    from dlspec.backends import keras_emit, onnx_emit, torch_emit

    for table in (torch_emit.ACTIVATIONS, keras_emit.ACTIVATIONS, onnx_emit.ACTIVATIONS):
        assert list(table) == list(ACTIVATIONS)


def test_spec_activation_names_and_attributes_come_from_the_registry():
    assert typing.get_args(ActivationName) == tuple(ACTIVATIONS)
    attrs = {a for act in ACTIVATIONS.values() for a in act.attrs}
    assert attrs <= set(Activation.model_fields)
    assert {a: Activation.model_fields[a].default for a in attrs} == {
        "negative_slope": 0.01, "alpha": 1.0, "approximate": "none", "axis": -1, "beta": 1.0, "threshold": 20.0}


def test_docs_list_every_registry_activation():
    spec_md = (DOCS / "spec.md").read_text()
    listed = re.search(r"\| `activation` \| one of (.*?) \| required \|", spec_md).group(1)
    assert re.findall(r"`(\w+)`", listed) == list(ACTIVATIONS)
    semantics = (DOCS / "semantics.md").read_text()
    for name in ACTIVATIONS:
        assert f"| `{name}`" in semantics, name


def test_keras_fused_softmax_on_conv2d_runs_over_the_logical_last_axis():
    """Was: Keras' Conv2D(activation='softmax') ran over the channels, 0.48 off torch."""
    m = model([3, 6, 6], [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "softmax"}])
    source = flat(dlspec.generate(m, "keras"))
    assert "activation=" not in source.split("conv2d_1_raw = ")[1].splitlines()[0]  # the conv has none fused
    assert 'conv2d_1 = keras.layers.Softmax(axis=2, name="conv2d_1.softmax")(conv2d_1_raw)' in source
    report = parity(m, batch=3, seed=1)
    assert report.ok and max(p.max_abs for p in report.pairs) < 1e-6, report.table()


def test_keras_fused_softmax_on_dense_stays_fused():
    source = dlspec.generate(model([9], [{"type": "dense", "units": 4, "activation": "softmax"}]), "keras")
    assert 'activation="softmax"' in source and "Softmax(" not in source


def test_leaky_relu_negative_slope_is_exact_in_keras():
    """Was: validation passed, then keras.layers.LeakyReLU raised its own ValueError."""
    m = model([3, 7], [{"type": "activation", "activation": "leaky_relu", "negative_slope": -0.3}])
    assert 'TorchLeakyReLU(negative_slope=-0.3, name="leaky_relu_1")' in flat(dlspec.generate(m, "keras"))
    x = np.array([[[-2.0, -1.0, 0.0, 1.0, 2.0, -0.5, 3.0]] * 3], dtype=np.float32)
    out = np.asarray(dlspec.build(m, "keras")(x))
    np.testing.assert_allclose(out[0, 0], [0.6, 0.3, 0.0, 1.0, 2.0, 0.15, 3.0], rtol=1e-6)
    assert parity(m, batch=3, seed=2).ok


def test_softplus_follows_torchs_threshold_in_every_backend():
    import torch

    m = model([8], [{"type": "activation", "activation": "softplus", "beta": 2.0, "threshold": 3.0}])
    x = np.array([[-3.0, -1.0, 0.0, 1.0, 1.4, 1.6, 2.0, 10.0]], dtype=np.float32)
    expected = torch.nn.functional.softplus(torch.from_numpy(x), beta=2.0, threshold=3.0).numpy()
    assert expected[0, 5] == pytest.approx(1.6)  # 2 * 1.6 > 3: x itself
    assert np.asarray(dlspec.build(m, "keras")(x)) == pytest.approx(expected, abs=1e-6)
    report = parity(m, batch=4, seed=0)
    assert report.ok, report.table()


def test_hardsigmoid_is_torchs_relu6_form():
    x = np.linspace(-4, 4, 9, dtype=np.float32)[None]
    m = model([9], [{"type": "activation", "activation": "hardsigmoid"}])
    expected = np.clip(x + 3, 0, 6) / 6
    for backend in ("torch", "keras"):
        net = dlspec.build(m, backend)
        out = net(__import__("torch").from_numpy(x)).detach().numpy() if backend == "torch" else np.asarray(net(x))
        np.testing.assert_allclose(out, expected, atol=1e-7)


def test_adaptive_bins_are_torchs():
    assert adaptive_bins(10, 7) == ((0, 2), (1, 3), (2, 5), (4, 6), (5, 8), (7, 9), (8, 10))
    assert adaptive_bins(3, 5) == ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3))
    assert adaptive_bins(6, 3) == ((0, 2), (2, 4), (4, 6))


def test_adaptive_pool_lowerings_by_case():
    uneven = model([3, 10, 9], [{"type": "adaptive_avgpool", "output_size": [7, 7]}])
    source = flat(dlspec.generate(uneven, "keras"))
    assert 'AdaptivePool(kind="avg", output_size=(7, 7), name="adaptive_avgpool_1")' in source
    even = model([3, 6, 6], [{"type": "adaptive_maxpool", "output_size": [3, 2]}])
    assert "keras.layers.MaxPooling2D(pool_size=(2, 3), strides=(2, 3)" in flat(dlspec.generate(even, "keras"))
    assert "F.adaptive_max_pool2d(x, output_size=(3, 2))" in dlspec.generate(even, "torch")
    one = model([3, 5, 6], [{"type": "adaptive_avgpool"}])
    assert "F.adaptive_avg_pool2d(x, output_size=1)" in dlspec.generate(one, "torch")


def test_layernorm_over_channels_permutes_in_torch_and_not_in_keras():
    m = model([3, 7, 6], [{"type": "conv2d", "filters": 4, "kernel": 3},
                          {"type": "layernorm", "axes": [1], "eps": 1e-6}])
    torch_src, keras_src = flat(dlspec.generate(m, "torch")), flat(dlspec.generate(m, "keras"))
    assert "self.layernorm_1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)" in torch_src
    assert "nn.LayerNorm(normalized_shape=4, eps=1e-06)" in torch_src
    assert "LayerNorm(axis=-1, epsilon=1e-06" in keras_src
    assert 'name="layernorm_1")(conv2d_1)' in keras_src  # the conv output is normalised channels-last, no Permute


@pytest.mark.parametrize("layer, message", [
    ({"type": "layernorm", "axes": [0]},
     "layers[0].axes: must not contain the batch axis 0. Received: [0]"),
    ({"type": "layernorm", "axes": [2, -1]},
     "layers[0].axes: layernorm_1 (layernorm) on input shape (4, 5): axes name the same axis twice. "
     "Received: [2, -1]"),
    ({"type": "rmsnorm", "axes": [3]},
     "layers[0].axes: rmsnorm_1 (rmsnorm) on input shape (4, 5): axes must be non-batch axes of a "
     "rank-3 tensor (batch included: 1..2 or -2..-1). Received: [3]"),
    ({"type": "adaptive_avgpool", "output_size": [2, 2]},
     "layers[0].output_size: adaptive_avgpool_1 (adaptive_avgpool) on input shape (4, 5): needs one "
     "value for the single spatial axis. Received: [2, 2]"),
    ({"type": "stochastic_depth", "rate": 1.0},
     "layers[0].rate: must be a number in [0, 1). Received: 1.0"),
])
def test_norm_errors_are_located(layer, message):
    with pytest.raises(dlspec.SpecError) as err:
        model([4, 5], [layer])
    assert str(err.value).split(": ", 1)[1] == message  # after the location in the generated YAML


def test_prelu_weight_is_torchs_parameter_initially_a_quarter():
    from dlspec.weights import init_weights

    m = model([3, 5, 6], [{"type": "prelu"}, {"type": "prelu", "shared": True}])
    weights = init_weights(m)
    assert weights["prelu_1.weight"].tolist() == [0.25, 0.25, 0.25]
    assert weights["prelu_2.weight"].tolist() == [0.25]
    net = dlspec.build(m, "torch", weights)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {"prelu_1.weight": (3,), "prelu_2.weight": (1,)}


def test_stochastic_depth_drops_whole_samples_in_training_and_is_the_identity_at_inference():
    import torch

    m = model([2, 3], [{"type": "stochastic_depth", "rate": 0.5}])
    x = np.ones((64, 2, 3), dtype=np.float32)
    net = dlspec.build(m, "torch")
    assert np.array_equal(net.eval()(torch.from_numpy(x)).numpy(), x)
    torch.manual_seed(0)
    out = net.train()(torch.from_numpy(x)).numpy().reshape(64, -1)
    assert set(np.unique(out)) == {0.0, 2.0} and all(len(set(row)) == 1 for row in out)
    keras_net = dlspec.build(m, "keras")
    assert np.array_equal(np.asarray(keras_net(x, training=False)), x)
    out = np.asarray(keras_net(x, training=True)).reshape(64, -1)
    assert set(np.unique(out)) == {0.0, 2.0} and all(len(set(row)) == 1 for row in out)


def test_stochastic_depth_batch_mode_draws_once_per_batch():
    import torch

    net = dlspec.build(model([3], [{"type": "stochastic_depth", "rate": 0.5, "mode": "batch"}]), "torch").train()
    torch.manual_seed(1)
    outs = [set(np.unique(net(torch.ones(16, 3)).numpy())) for _ in range(20)]
    assert {0.0} in outs and {2.0} in outs and all(len(o) == 1 for o in outs)


def test_training_parity_turns_stochastic_depth_off_as_it_does_dropout():
    from dlspec.train.parity import without_dropout

    m = model([6], [{"type": "stochastic_depth", "rate": 0.3}, {"type": "dropout", "rate": 0.2}])
    assert [n.attrs["rate"] for n in without_dropout(m).graph.nodes] == [0.0, 0.0]


def test_training_parity_runs_with_stochastic_depth_prelu_and_the_new_norms():
    """torch and Keras train step for step on a net with the new ops (stochastic depth off, as dropout)."""
    from dlspec.train.parity import train_parity

    m = dlspec.loads("""\
dlspec: 1
name: net
inputs: {x: {shape: [3, 6, 5]}}
layers:
  - {type: conv2d, filters: 4, kernel: 3, activation: hardswish}
  - {type: layernorm, axes: [1], eps: 1.0e-6}
  - {type: prelu}
  - {type: stochastic_depth, rate: 0.3}
  - {type: rmsnorm, axes: [-2, -1]}
  - {type: adaptive_avgpool, output_size: [3, 2]}
  - {type: flatten}
  - {type: dense, units: 4, activation: softplus}
  - {type: dense, units: 3}
train:
  loss: cross_entropy
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
  batch_size: 8
""")  # not Adam: rmsnorm over H, W per channel makes layernorm_1.weight's gradient ~0, and Adam scales noise up
    report = train_parity(m, steps=20, plot=False)
    assert report.torch_loss[0] != report.torch_loss[-1]
    assert report.max_rel_loss <= 1e-5, report.table()
    assert report.max_weight_diff <= 1e-5, report.table()


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_onnx_lowerings_agree_with_torch_at_every_opset(opset):
    """ReduceMean/ReduceMax take axes as an input from opset 18, and Mish exists from 18: both paths."""
    import torch

    from dlspec.backends import onnx as onnx_backend
    from dlspec.parity import random_inputs, random_weights

    m = model([3, 7, 6], [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "mish"},
                          {"type": "rmsnorm", "axes": [1]}, {"type": "prelu"},
                          {"type": "adaptive_maxpool", "output_size": [3, 3]},
                          {"type": "activation", "activation": "softplus", "beta": 2.0},
                          {"type": "adaptive_avgpool", "output_size": [2, 1]}])
    weights, (x,) = random_weights(m, 4), random_inputs(m, 3, 4)
    expected = dlspec.build(m, "torch", weights).eval()(torch.from_numpy(x)).detach().numpy()
    proto = dlspec.build(m, "onnx", weights, opset=opset)
    assert proto.opset_import[0].version == opset
    assert ("Mish" in {n.op_type for n in proto.graph.node}) == (opset >= 18)
    (out,) = onnx_backend.run(proto, [x])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_both_backends_train_with_stochastic_depth_on():
    """In training the masks differ between torch and Keras (as dropout's); both learn the digits."""
    from dlspec.train import fit, prepare

    m = dlspec.loads("""\
dlspec: 1
name: digits_sd
inputs: {image: {shape: [1, 8, 8]}}
layers:
  - {type: conv2d, filters: 16, kernel: 3, padding: same, activation: hardswish}
  - {type: stochastic_depth, rate: 0.2}
  - {type: layernorm, axes: [1]}
  - {type: adaptive_avgpool, output_size: [3, 3]}
  - {type: flatten}
  - {type: dense, units: 10}
train:
  loss: cross_entropy
  optimizer: {type: adam, lr: 3.0e-3}
  batch_size: 64
  epochs: 3
  metrics: [accuracy]
  validation_split: 0.2
""")
    data = prepare(m, "digits")
    for backend in ("torch", "keras"):
        history, _, _ = fit(m, backend, data, dlspec.init_weights(m, 0), progress=False)
        assert history.epochs[-1]["val_accuracy"] > 0.6, (backend, history.epochs[-1])
