#!/usr/bin/env bash
# The fast path's GPU check (issue 7), as ONE command on a CUDA machine (budget: under 8 minutes
# on one H100/H200; the steps time out at 3 + 4.5 minutes):
#
#     bash benchmarks/gpu_check.sh            # from the repository root; results under $OUT
#
# 1. tests/test_fast.py + tests/test_gate.py with CUDA visible (the @pytest.mark.gpu tests run:
#    the captured step equals the eager step over warm-up, capture and replays; the stages take
#    the fast path by default and --eager's switch turns it off);
# 2. benchmarks/epoch_time.py: eager fp32 vs fast, VGG16 bs128 and ResNet56 bs64, every stage,
#    half an epoch per timed epoch (3 epochs a stage, the first dropped), extrapolated to 50,000
#    images and labelled so. Targets (issue 7): VGG16 <= 1.0 s/epoch, ResNet56 <= 4.0 s/epoch in
#    every stage; ratios >= 2.7x and >= 4.5x over eager fp32 in the same run.
#
# GPU_CHECK_DRY_RUN=1 runs it on a CPU machine (GPU tests skipped, benchmark in smoke mode) to
# check the script itself. Installs nothing. Needs python with torch >= 2.11 and numpy (PYTHON, default python3). tqdm and
# pytest are pure Python: when the machine's python lacks them they are taken from a carried
# .venv (carry .venv/lib/python3.11/site-packages/{tqdm,_pytest,pytest,pluggy,iniconfig,packaging}).
# Writes $OUT/env.txt, $OUT/pytest.txt, $OUT/epoch_time.txt and $OUT/epoch_time_gpu.json (copy
# the JSON to benchmarks/results/ and the table into benchmarks/results/README.md).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# pure-Python packages the machine's python may lack, from a carried .venv (never installed)
SHIM=$(mktemp -d)
for pkg in tqdm _pytest pytest pluggy iniconfig packaging; do
    if ! "$PY" -c "import $pkg" 2>/dev/null; then
        src=$(ls -d .venv/lib/python3*/site-packages/$pkg 2>/dev/null | head -1)
        [ -n "$src" ] && ln -s "$PWD/$src" "$SHIM/$pkg"
    fi
done
export PYTHONPATH="$PYTHONPATH:$SHIM"

{ date -u; "$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"; \
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null; } | tee "$OUT/env.txt"
BENCH=(--fraction 0.5 --epochs 3)
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then  # this script's own check on a CPU machine: smoke only
    BENCH=(--smoke --models vgg16-cifar)
else
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
fi

rc=0
echo "== tests (CUDA visible) ==" | tee "$OUT/pytest.txt"
timeout 180 "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_fast.py tests/test_gate.py \
    --durations=10 2>&1 | tee -a "$OUT/pytest.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1

echo "== epoch time: eager fp32 vs fast ==" | tee "$OUT/epoch_time.txt"
timeout 270 "$PY" benchmarks/epoch_time.py "${BENCH[@]}" --json "$OUT/epoch_time_gpu.json" \
    2>&1 | tee -a "$OUT/epoch_time.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
rm -rf "$SHIM"
echo "gpu_check: exit $rc (results in $OUT)"
exit $rc
