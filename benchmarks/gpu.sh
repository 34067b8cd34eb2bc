#!/usr/bin/env bash
# Images/s and MFU on one GPU: the medtrans Runner beside a plain PyTorch loop for DeiT-S
# classification at 224, DeepLabV3-DeiT-S at 512 and a DINO step (DeiT-S, 2 x 224 + 6 x 96
# crops), in bf16, eager then compiled; then timm's way of training DeiT-S (bf16 autocast,
# fused AdamW, compiled) as the reference. MFU is printed against the GPU's bf16 dense
# datasheet peak where benchlib.py lists the GPU (989 TFLOP/s for an H200).
#
#   bash benchmarks/gpu.sh                     # from the repository root, medtrans installed
#   STEPS=20 CLS_BATCH=128 bash benchmarks/gpu.sh
#
# Environment: PYTHON (default python), STEPS (timed steps per side, 30), WARMUP (untimed
# steps per side, compilation included, 5), CLS_BATCH (256), SEG_BATCH (16), DINO_BATCH (64).
set -euo pipefail

PYTHON=${PYTHON:-python}
# A relative path made absolute before the cd below (not resolved: a venv's python is a link).
[[ "$PYTHON" == */* ]] && PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
CLS_BATCH=${CLS_BATCH:-256}
SEG_BATCH=${SEG_BATCH:-16}
DINO_BATCH=${DINO_BATCH:-64}
cd "$(dirname "$0")"

"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else
    "benchmarks/gpu.sh: no CUDA device; the CPU figures come from the scripts it calls, run alone")'
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv || true
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'

for compile in "" "--compile"; do
    echo "=== DeiT-S classification, 224, batch $CLS_BATCH, bf16 ${compile:-eager}"
    "$PYTHON" cls_step.py --amp $compile --batch-size "$CLS_BATCH" --steps "$STEPS" --warmup "$WARMUP"
    echo "=== DeepLabV3-DeiT-S, 512, batch $SEG_BATCH, bf16 ${compile:-eager}"
    "$PYTHON" train_step_overhead.py --amp $compile --size 512 --batch-size "$SEG_BATCH" \
        --steps "$STEPS" --warmup "$WARMUP"
    echo "=== DINO DeiT-S, batch $DINO_BATCH, bf16 ${compile:-eager}"
    "$PYTHON" dino_step.py --amp $compile --batch-size "$DINO_BATCH" --steps "$STEPS" \
        --warmup "$WARMUP"
done
echo "=== timm's way: DeiT-S, batch $CLS_BATCH, bf16 autocast, fused AdamW"
"$PYTHON" timm_reference.py --batch-size "$CLS_BATCH" --steps "$STEPS" --warmup "$((WARMUP + 5))" --eager
"$PYTHON" timm_reference.py --batch-size "$CLS_BATCH" --steps "$STEPS" --warmup "$((WARMUP + 5))"
