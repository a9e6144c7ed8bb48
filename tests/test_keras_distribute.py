"""Keras under tf.distribute.MirroredStrategy (``dlspec train --backend keras --replicas N``).

TensorFlow fixes its logical devices when its runtime starts, and other tests start it in this pytest
process, so every scenario runs in a new process, as the torchrun test in test_train.py does.
"""

import json
import subprocess
import textwrap

import numpy as np
from conftest import PYTHON

import dlspec

# dropout off, Adam with coupled weight decay, a step schedule, a regularizer (its penalty must count once)
# and clipping by the global norm (it must see the all-reduced gradient); batch 45 gives replicas unequal
# shares (22 and 23 rows), so an unweighted mean of the replicas' losses would show
SPEC = """\
dlspec: 1
name: mirrored_mlp
inputs: {x: {shape: [1, 8, 8]}}
layers:
  - {type: flatten}
  - {type: dense, units: 32, activation: relu, regularizer: {l1: 1.0e-3, l2: 1.0e-2}}
  - {type: dense, units: 10}
train:
  loss: cross_entropy
  optimizer: {type: adam, lr: 1.0e-2, weight_decay: 1.0e-3}
  schedule: {type: step, step_size: 1, gamma: 0.5}
  clip: {norm: 1.0}
  epochs: 3
  batch_size: 45
  validation_split: 0.1
  metrics: [accuracy]
"""


def _data(path, n: int):
    """n samples of 1x8x8 with labels from a fixed random linear teacher."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    y = np.argmax(x.reshape(n, 64) @ rng.normal(size=(64, 10)), axis=1)
    np.savez(path, x_train=x, y_train=y)
    return path


def _train(spec, data, out, *options):
    return subprocess.Popen([PYTHON, "-m", "dlspec", "train", str(spec), "--data", str(data), "-o", str(out),
                             *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def test_two_replicas_train_like_one(tmp_path):
    """Same global batches and seed: 2 logical CPU replicas give 1 replica's weights and step losses."""
    spec = tmp_path / "mlp.yaml"
    spec.write_text(SPEC)
    data = _data(tmp_path / "data.npz", 240)  # 216 for training: batches of 45 and a last one of 36
    runs = [_train(spec, data, tmp_path / "one", "--backend", "keras"),  # both at once: CI has 2 cores
            _train(spec, data, tmp_path / "two", "--backend", "keras", "--replicas", "2")]
    (rc1, _, err1), (rc2, out2, err2) = (_finish(p) for p in runs)
    assert rc1 == 0 and rc2 == 0, err1[-2000:] + err2[-2000:]
    assert "2 replicas (MirroredStrategy)" in out2 and "done after 3 epochs and 15 steps" in out2
    a = dlspec.load_weights(tmp_path / "one" / "weights.safetensors")
    b = dlspec.load_weights(tmp_path / "two" / "weights.safetensors")
    assert a.keys() == b.keys() and max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-5
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert len(h1["step_loss"]) == len(h2["step_loss"]) == 15
    assert float(np.max(np.abs(np.subtract(h1["step_loss"], h2["step_loss"])))) <= 1e-5
    assert h1["epochs"][-1]["accuracy"] == h2["epochs"][-1]["accuracy"]  # outputs come back in batch order
    assert abs(h1["epochs"][-1]["val_loss"] - h2["epochs"][-1]["val_loss"]) <= 1e-5
    assert (tmp_path / "two" / "model.keras").is_file()


def test_replica_usage_errors(tmp_path):
    """Each refusal exits with status 2 and one error line that names the rule and what was received."""
    spec = tmp_path / "mlp.yaml"
    spec.write_text(SPEC)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(SPEC.replace("batch_size: 45", "batch_size: 1"))
    ragged = tmp_path / "ragged.yaml"
    ragged.write_text(SPEC.replace("validation_split: 0.1", "validation_split: 0.0"))
    data, odd = _data(tmp_path / "data.npz", 240), _data(tmp_path / "odd.npz", 181)  # 181 = 4 * 45 + 1
    cases = {
        (spec, data, "torch", "2"): "--replicas applies to the keras backend (torch runs several processes with "
                                    "torchrun --nproc-per-node N). Received: --backend torch --replicas 2",
        (tiny, data, "keras", "2"): "--replicas 2 splits every batch into 2 shares, so batch_size must be at "
                                    "least 2. Received: batch_size 1",
        (ragged, odd, "keras", "2"): "--replicas 2 splits every batch into 2 shares, so a batch needs at least 2 "
                                     "samples; change batch_size or the number of samples. Received: a batch of 1 "
                                     "(the last batch of 181 training samples)",
    }
    runs = {case: _train(case[0], case[1], tmp_path / f"out{i}", "--backend", case[2], "--replicas", case[3])
            for i, case in enumerate(cases)}
    for case, message in cases.items():
        rc, _, stderr = _finish(runs[case])
        assert (rc, stderr.strip().splitlines()[-1]) == (2, f"error: {message}"), stderr[-2000:]
    assert not list(tmp_path.glob("out*/*.safetensors"))


BN_SPEC = """\
dlspec: 1
name: mirrored_bn
inputs: {x: {shape: [1, 8, 8]}}
layers:
  - {type: conv2d, filters: 8, kernel: 3, padding: same, use_bias: false}
  - {type: batchnorm, name: bn}
  - {type: activation, activation: relu}
  - {type: flatten}
  - {type: dense, units: 16, use_bias: false}
  - {type: batchnorm, name: bn2}
  - {type: dense, units: 10}
train:
  loss: cross_entropy
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
  epochs: 2
  batch_size: 45
  validation_split: 0.1
"""


def test_batchnorm_statistics_span_the_replicas(tmp_path):
    """BatchNorm normalises with the global batch's statistics (summed over replicas), so 2 replicas train
    like 1, running statistics included; per-replica statistics would differ at the first step."""
    spec = tmp_path / "bn.yaml"
    spec.write_text(BN_SPEC)
    data = _data(tmp_path / "data.npz", 240)
    runs = [_train(spec, data, tmp_path / "one", "--backend", "keras"),
            _train(spec, data, tmp_path / "two", "--backend", "keras", "--replicas", "2")]
    (rc1, _, err1), (rc2, _, err2) = (_finish(p) for p in runs)
    assert rc1 == 0 and rc2 == 0, err1[-2000:] + err2[-2000:]
    a = dlspec.load_weights(tmp_path / "one" / "weights.safetensors")
    b = dlspec.load_weights(tmp_path / "two" / "weights.safetensors")
    assert {"bn.running_mean", "bn.running_var", "bn2.running_var"} <= a.keys()
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-5
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text())["step_loss"] for d in ("one", "two"))
    assert len(h1) == 10 and float(np.max(np.abs(np.subtract(h1, h2)))) <= 1e-6


def _python(code: str):
    return subprocess.run([PYTHON, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_replicas_need_tensorflow_not_yet_started():
    """Logical devices are fixed once TensorFlow runs: a process that started it with one CPU device is told so."""
    result = _python("""
        import dlspec
        from dlspec.backends.keras import import_keras
        from dlspec.train.keras_loop import KerasTrainer

        model = dlspec.loads("dlspec: 1\\nname: m\\ninputs: {x: {shape: [4]}}\\nlayers: [{type: dense, units: 2}]\\n"
                             "train: {loss: mse, optimizer: {type: sgd, lr: 0.1}, batch_size: 4}\\n")
        import_keras()  # starts TensorFlow with one CPU device
        try:
            KerasTrainer(model, dlspec.init_weights(model, 0), model.spec.train, replicas=2)
        except dlspec.UsageError as err:
            print(err)
        """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == (
        "--replicas 2 needs the CPU split into 2 logical devices before TensorFlow starts, and TensorFlow already "
        "runs in this process with 1; train in a new process (dlspec train does). Received: 1 logical CPU devices")


def test_replicas_draw_their_own_dropout_masks():
    """Equal rows on two replicas get different dropout masks, each dropping about the rate."""
    result = _python("""
        import json
        import numpy as np
        import dlspec
        from dlspec.train.keras_loop import KerasTrainer

        model = dlspec.loads("dlspec: 1\\nname: m\\ninputs: {x: {shape: [4]}}\\nlayers:\\n"
                             "  - {type: dense, units: 256}\\n  - {type: dropout, rate: 0.5}\\n"
                             "train: {loss: mse, optimizer: {type: sgd, lr: 0.1}, batch_size: 4}\\n")
        trainer = KerasTrainer(model, dlspec.init_weights(model, 0), model.spec.train, replicas=2)
        x, y = trainer.tensors(np.ones((4, 4), np.float32), np.zeros((4, 256), np.float32))
        _, out = trainer.step(x, y, 0.0)
        print(json.dumps((trainer.numpy(out) == 0).tolist()))
        """)
    assert result.returncode == 0, result.stderr[-2000:]
    dropped = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    assert dropped.shape == (4, 256)
    assert 0.4 < dropped.mean() < 0.6
    # rows 0-1 are replica 0's share, rows 2-3 replica 1's: the same place in each share, a different mask
    assert (dropped[0] != dropped[2]).any() and (dropped[1] != dropped[3]).any()


def test_one_process_trains_several_models_on_replicas():
    """Two models of different shapes on 2 replicas in one process (the second MirroredStrategy's collectives
    would collide with the first's), each equal to one replica: SGD with Nesterov momentum, a frozen layer and
    clipping by value; centered RMSprop with momentum."""
    result = _python("""
        import numpy as np
        import dlspec
        from dlspec.train import fit
        from dlspec.train.parity import synthetic_data

        HEAD = "dlspec: 1\\nname: m\\ninputs: {x: {shape: [12]}}\\nlayers:\\n"
        TRAIN = "train: {loss: cross_entropy, optimizer: %s, batch_size: 31, epochs: 2, validation_split: 0.0%s}\\n"
        specs = [HEAD + "  - {type: dense, units: 16, trainable: false}\\n  - {type: dense, units: 4}\\n" +
                 TRAIN % ("{type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 1.0e-3}",
                          ", clip: {value: 0.05}"),
                 HEAD + "  - {type: dense, units: 24, activation: tanh}\\n  - {type: dense, units: 3}\\n" +
                 TRAIN % ("{type: rmsprop, lr: 1.0e-3, momentum: 0.5, centered: true}", "")]
        for text in specs:
            model = dlspec.loads(text)
            data, weights = synthetic_data(model, model.spec.train, 6, 0), dlspec.init_weights(model, 0)
            (h2, w2, _), (h1, w1, _) = (fit(model, "keras", data, weights, progress=False, replicas=r) for r in (2, 1))
            print(max(float(np.max(np.abs(w1[k] - w2[k]))) for k in w1),
                  float(np.max(np.abs(np.subtract(h1.step_loss, h2.step_loss)))), len(h1.step_loss))
        """)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.strip().splitlines()[-2:]]
    assert [row[2] for row in rows] == ["12", "12"]  # 186 samples: 6 batches of 31 (shares of 15 and 16), 2 epochs
    assert all(float(weight) <= 1e-5 and float(loss) <= 1e-5 for weight, loss, _ in rows), rows
