#!/usr/bin/env bash
# DDP equivalence on GPUs with NCCL: one process against two, same global batch and seed.
# Run on a 2-GPU machine from the repository root with dlspec's dependencies importable.
set -euo pipefail
work=$(mktemp -d)
cat > "$work/mlp.yaml" <<'SPEC'
dlspec: 1
name: ddp_mlp
inputs: {x: {shape: [1, 8, 8]}}
layers:
  - {type: flatten}
  - {type: dense, units: 64, activation: relu}
  - {type: dense, units: 10}
train:
  loss: cross_entropy
  optimizer: {type: adam, lr: 1.0e-2, weight_decay: 1.0e-4}
  schedule: {type: step, step_size: 1, gamma: 0.5}
  epochs: 2
  batch_size: 64
  validation_split: 0.1
  metrics: [accuracy]
SPEC
python3 -m dlspec train "$work/mlp.yaml" --backend torch --device cuda -o "$work/one" | tail -1
python3 -m torch.distributed.run --nproc-per-node 2 -m dlspec train "$work/mlp.yaml" --backend torch --device cuda \
    -o "$work/two" 2>&1 | grep -v "^W" | tail -3
python3 - "$work" <<'PY'
import sys, numpy as np, dlspec, json
w = sys.argv[1]
a, b = dlspec.load_weights(f"{w}/one/weights.safetensors"), dlspec.load_weights(f"{w}/two/weights.safetensors")
print("NCCL, 2 GPUs vs 1: max |weight difference| =", max(float(np.max(np.abs(a[k] - b[k]))) for k in a))
la = json.load(open(f"{w}/one/history.json"))["step_loss"]; lb = json.load(open(f"{w}/two/history.json"))["step_loss"]
print("max relative step-loss difference =", max(abs(x - y) / abs(x) for x, y in zip(la, lb)), "over", len(la), "steps")
PY
