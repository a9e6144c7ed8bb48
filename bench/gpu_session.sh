#!/usr/bin/env bash
# Issue 13's measurements on the GPU machine, from the repository root, with onnxruntime-gpu in /tmp/ortgpu and
# pydantic's wheels in .whl (shared/tools/ortgpu-wheel.sh):
#   bash bench/gpu_session.sh levers   per-kernel profiles (resnet50, vit_b_16) and the export variants
#   bash bench/gpu_session.sh levers2  the CNN stem variants, profiles of the new export, training steady state
#   bash bench/gpu_session.sh levers3  depthwise convolutions: bias fused by cuDNN or a separate Add
#   bash bench/gpu_session.sh train    training against the hand-written loop, profiled
#   bash bench/gpu_session.sh verify   the GPU tests and dlspec compare at batch 256 on the final export
#   bash bench/gpu_session.sh stem     (fourth session) the stem as 2x2 pixel blocks against as before
#   bash bench/gpu_session.sh grouped  (fourth session) depthwise convolutions as groups of 8, 16, 32
#   bash bench/gpu_session.sh compile  (fourth session) training through torch.compile against the loop, the same
#   bash bench/gpu_session.sh fusions  (fifth session) SkipLayerNorm and the merged q/k/v projection, left out one
#                                      at a time (vit_b_16, bert_small; batch 256, and batch 1 as CUDA graphs)
#   bash bench/gpu_session.sh stem16   (sixth session) the pixel-block stem on 16 channels instead of 12, four ways
#   bash bench/gpu_session.sh qkv      (sixth session) the merged q/k/v product: Split, three Slices, three MatMuls
#   bash bench/gpu_session.sh poolrelu (sixth session) ResNet-50's stem Relu after its MaxPool, with the 16-channel stem
#   bash bench/gpu_session.sh fixedbatch  (fifth session) ViT-B/16 with the batch fixed in the session or
#                                      free; its compiled training
# Logs go to $OUT (or ./gpu-logs).
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/ortgpu:/tmp/site:$PWD PYTHONUNBUFFERED=1 ORT_DISABLE_TELEMETRY=1 OUT=$out
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,power.draw --format=csv,noheader
python3 -c "import torch, onnxruntime; print('torch', torch.__version__, 'onnxruntime', onnxruntime.__version__,
onnxruntime.get_available_providers())"
case "${1:-}" in
  levers)
    timeout 200 python3 bench/gpu_levers.py profile resnet50 vit_b_16 2>&1 | grep -v Warning | tee "$out/profile.log"
    timeout 240 python3 bench/gpu_levers.py variants vit_b_16 convnext_tiny bert_small --transformers \
      2>&1 | grep -v Warning | tee "$out/variants.log"
    timeout 90 python3 bench/gpu_levers.py variants resnet50 --cnn --saved-graph --json variants_cnn.json \
      2>&1 | grep -v Warning | tee -a "$out/variants.log" ;;
  levers2)
    timeout 150 python3 bench/gpu_levers.py variants resnet50 --cnn --json variants_cnn.json 2>&1 | grep -v Warning \
      | tee "$out/variants.log"
    timeout 120 python3 bench/gpu_levers.py profile vit_b_16 convnext_tiny --no-compile 2>&1 | grep -v Warning \
      | tee "$out/profile.log"
    timeout 150 python3 bench/train_gpu.py --profile 2>&1 | grep -v Warning | tee "$out/train.log"
    timeout 150 python3 bench/train_gpu.py --model vit_b_16 --batch 128 --steps 10 2>&1 | grep -v Warning \
      | tee -a "$out/train.log" ;;
  levers3)
    timeout 200 python3 bench/gpu_levers.py variants convnext_tiny mobilenet_v3_large efficientnet_b0 --depthwise \
      --json variants_depthwise.json 2>&1 | grep -v Warning | tee "$out/variants.log" ;;
  train)
    timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "tensorrt or matches_cpu_reference" \
      -rs 2>&1 | tail -n 8 | tee "$out/tests.log"
    timeout 200 python3 bench/train_gpu.py --profile 2>&1 | grep -v Warning | tee "$out/train.log"
    timeout 150 python3 bench/train_gpu.py --model vit_b_16 --batch 128 --steps 10 2>&1 | grep -v Warning \
      | tee -a "$out/train.log" ;;
  verify)
    timeout 250 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -n 15 | tee "$out/tests.log"
    for m in ${MODELS:-vit_b_16 convnext_tiny bert_small resnet50}; do
      timeout 120 python3 -m dlspec compare "specs/$m.yaml" --device cuda --fp16 --batch "${BATCH:-256}" \
        --iterations 30 --paths "onnxruntime,torch.compile" 2>&1 | grep -v "^dlspec compare:" | tee -a "$out/compare.log"
    done ;;
  stem)
    timeout 280 python3 bench/gpu_levers.py variants resnet50 mobilenet_v3_large efficientnet_b0 --stem \
      --json variants_stem.json 2>&1 | grep -v Warning | tee "$out/variants_stem.log" ;;
  grouped)
    timeout 280 python3 bench/gpu_levers.py variants convnext_tiny mobilenet_v3_large efficientnet_b0 --grouped \
      --json variants_grouped.json 2>&1 | grep -v Warning | tee "$out/variants_grouped.log" ;;
  fixedbatch)  # ViT-B/16 with the batch fixed: 0.82x with MatMulAddFusion on, 1.00x off (fifth session)
    timeout 300 python3 bench/gpu_levers.py variants vit_b_16 resnet50 bert_small --fixed-batch \
      --json variants_fixed_batch.json 2>&1 | grep -v Warning | tee "$out/variants_fixed_batch.log"
    timeout 200 python3 bench/train_gpu.py --model vit_b_16 --batch 128 --steps 10 --compile --steady 2>&1 \
      | grep -v Warning | tee "$out/train_compile_vit.log" ;;
  fusions)  # (fifth session) SkipLayerNormalization and one q/k/v MatMul, each left out; then the zoo's transformers
    timeout 200 python3 bench/gpu_levers.py variants vit_b_16 bert_small --fusions --json variants_fusions.json 2>&1 \
      | grep -v Warning | tee "$out/variants_fusions.log"
    timeout 200 python3 bench/gpu_levers.py variants vit_b_16 bert_small --fusions --batch 1 --iterations 200 --graph \
      --json variants_fusions_b1.json 2>&1 | grep -v Warning | tee "$out/variants_fusions_b1.log"
    for m in ${MODELS:-vit_b_16 bert_small}; do
      timeout 150 python3 -m dlspec compare "specs/$m.yaml" --device cuda --fp16 --batch 256 --iterations 30 \
        --paths "onnxruntime,onnxruntime cuda-graph,torch.compile" 2>&1 | grep -v "^dlspec compare:" \
        | tee -a "$out/compare_fusions.log"
      timeout 150 python3 -m dlspec compare "specs/$m.yaml" --device cuda --fp16 --batch 1 --iterations 200 \
        --paths "onnxruntime cuda-graph,torch.compile reduce-overhead" 2>&1 | grep -v "^dlspec compare:" \
        | tee -a "$out/compare_fusions.log"
    done ;;
  stem16)
    timeout 400 python3 bench/gpu_levers.py variants ${MODELS:-resnet50 mobilenet_v3_large efficientnet_b0} --stem16 \
      --json variants_stem16.json 2>&1 | grep -v Warning | tee "$out/variants_stem16.log" ;;
  qkv)
    timeout 250 python3 bench/gpu_levers.py variants vit_b_16 bert_small --qkv --json variants_qkv.json 2>&1 \
      | grep -v Warning | tee "$out/variants_qkv.log"
    timeout 250 python3 bench/gpu_levers.py variants vit_b_16 bert_small --qkv --batch 1 --iterations 200 --graph \
      --json variants_qkv_b1.json 2>&1 | grep -v Warning | tee "$out/variants_qkv_b1.log" ;;
  poolrelu)
    timeout 200 python3 bench/gpu_levers.py variants resnet50 --pool-relu --iterations 30 --json variants_pool_relu.json \
      2>&1 | grep -v Warning | tee "$out/variants_pool_relu.log" ;;
  compile)
    timeout "${LIMIT:-400}" python3 bench/train_gpu.py --compile --steady 2>&1 | grep -v Warning \
      | tee "$out/train_compile.log" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
