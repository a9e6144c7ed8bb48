#!/usr/bin/env bash
# The zoo on one GPU (run on the device machine from the repository root, with onnxruntime-gpu in
# /tmp/ortgpu and pydantic's wheels in .whl, see shared/tools/ortgpu-wheel.sh):
#   bash bench/gpu_zoo.sh tests    the GPU tests (tests/test_gpu.py), every new zoo model's ONNX on CUDA
#   bash bench/gpu_zoo.sh compare  dlspec compare for the zoo, fp16, at batch 256 and batch 1
# Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/ortgpu:/tmp/site:$PWD PYTHONUNBUFFERED=1 ORT_DISABLE_TELEMETRY=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/machine.txt"
python3 -c "import torch, onnxruntime; print('torch', torch.__version__, 'onnxruntime', onnxruntime.__version__,
onnxruntime.get_available_providers())" | tee -a "$out/machine.txt"
case "${1:-}" in
  tests)
    python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log" ;;
  compare)
    for m in ${MODELS:-resnet50 vit_b_16 convnext_tiny mobilenet_v3_large efficientnet_b0 bert_small}; do
      timeout 240 python3 -m dlspec compare "specs/$m.yaml" --device cuda --fp16 --batch "${BATCH:-256}" \
        --iterations 30 --paths "onnxruntime,onnxruntime cuda-graph,torch,torch.compile" 2>&1 | grep -v "^dlspec compare:" | tee -a "$out/compare.log"
      timeout 200 python3 -m dlspec compare "specs/$m.yaml" --device cuda --fp16 --batch 1 --iterations 200 \
        --paths "onnxruntime,onnxruntime cuda-graph,torch,torch.compile reduce-overhead" 2>&1 | grep -v "^dlspec compare:" | tee -a "$out/compare.log"
    done ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
