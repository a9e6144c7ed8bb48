#!/usr/bin/env bash
# DDP equivalence on GPUs with NCCL: one process against two, same global batch and seed, for an MLP
# and for a CNN with BatchNorm (SyncBatchNorm under DDP on CUDA).
# Run on a 2-GPU machine from the repository root with dlspec's dependencies importable.
set -euo pipefail
work=$(mktemp -d)
train='train:
  loss: cross_entropy
  optimizer: {type: adam, lr: 1.0e-2, weight_decay: 1.0e-4}
  schedule: {type: step, step_size: 1, gamma: 0.5}
  epochs: 2
  batch_size: 64
  validation_split: 0.1
  metrics: [accuracy]'
cat > "$work/mlp.yaml" <<SPEC
dlspec: 1
name: ddp_mlp
inputs: {x: {shape: [1, 8, 8]}}
layers:
  - {type: flatten}
  - {type: dense, units: 64, activation: relu}
  - {type: dense, units: 10}
$train
SPEC
cat > "$work/bn_cnn.yaml" <<SPEC
dlspec: 1
name: ddp_bn_cnn
inputs: {x: {shape: [1, 8, 8]}}
layers:
  - {type: conv2d, filters: 16, kernel: 3, padding: same, use_bias: false}
  - {type: batchnorm}
  - {type: activation, activation: relu}
  - {type: flatten}
  - {type: dense, units: 10}
$train
SPEC
for spec in mlp bn_cnn; do
  python3 -m dlspec train "$work/$spec.yaml" --backend torch --device cuda -o "$work/$spec-one" | tail -1
  python3 -m torch.distributed.run --nproc-per-node 2 -m dlspec train "$work/$spec.yaml" --backend torch \
      --device cuda -o "$work/$spec-two" 2>&1 | grep -v "^W" | tail -1
  python3 - "$work" "$spec" <<'PY'
import sys, numpy as np, dlspec, json
w, spec = sys.argv[1], sys.argv[2]
a = dlspec.load_weights(f"{w}/{spec}-one/weights.safetensors")
b = dlspec.load_weights(f"{w}/{spec}-two/weights.safetensors")
la = json.load(open(f"{w}/{spec}-one/history.json"))["step_loss"]
lb = json.load(open(f"{w}/{spec}-two/history.json"))["step_loss"]
print(f"{spec}: NCCL, 2 GPUs vs 1: max |weight difference| = {max(float(np.max(np.abs(a[k] - b[k]))) for k in a):.3e}"
      f" (BatchNorm statistics included); max relative step-loss difference = "
      f"{max(abs(x - y) / abs(x) for x, y in zip(la, lb)):.3e} over {len(la)} steps")
PY
done
