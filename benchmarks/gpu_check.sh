#!/usr/bin/env bash
# The fast path's GPU check (issue 7), as ONE command on a CUDA machine (budget: under 8 minutes
# on one H100/H200; the steps time out at 3 + 4.5 minutes):
#
#     bash benchmarks/gpu_check.sh pack       # HERE, once: the pure-Python packages that travel,
#                                             # copied into .cache/gpu_site (ignored by git)
#     bash benchmarks/gpu_check.sh            # THERE, from the repository root, with
#                                             # .cache/gpu_site carried; results under $OUT
#     GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # HERE: the same script on the CPU with
#                                             # exactly the GPU machine's packages (see below)
#
# 1. tests/test_fast.py + tests/test_gate.py with CUDA visible (the @pytest.mark.gpu tests run:
#    the captured step equals the eager step over warm-up, capture and replays; the stages take
#    the fast path by default and --eager's switch turns it off; a NaN in a replayed step is
#    named at the epoch's end);
# 2. benchmarks/epoch_time.py: eager fp32 vs fast, VGG16 bs128 and ResNet56 bs64, every stage,
#    half an epoch per timed epoch (3 epochs a stage, the first dropped), extrapolated to 50,000
#    images and labelled so, each row with its train loss and top-1. Targets (issue 7): VGG16
#    <= 1.0 s/epoch, ResNet56 <= 4.0 s/epoch in every stage; ratios >= 2.7x and >= 4.5x over
#    eager fp32 in the same run; the fast loss and top-1 near the eager ones.
#
# Packages. The GPU machine's python (Python 3.12, torch 2.11, torchvision 0.26) has GPU_BASE
# below and their dependencies. What the check needs beyond them is pure Python and travels:
# CARRIED and their dependencies, minus what GPU_BASE brings, copied by `pack` from this
# checkout's .venv into .cache/gpu_site (carry that path; it is put first on PYTHONPATH there).
# The dry run builds an isolated site-packages of exactly GPU_BASE's closure (linked from the
# .venv) plus .cache/gpu_site and runs python with -S (no site-packages of its own), so a
# package missing on the GPU machine is missing here too. Both runs start with
# `pytest --version`. Installs nothing.
#
# Writes $OUT/env.txt, $OUT/pytest.txt, $OUT/epoch_time.txt and $OUT/epoch_time_gpu.json (copy
# the JSON to benchmarks/results/ and the table into benchmarks/results/README.md).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_check}
PY=${PYTHON:-python3}
GPU_BASE="torch torchvision numpy pillow pandas matplotlib seaborn tqdm scikit-learn onnx onnxruntime"
CARRIED="pytest pytest-timeout torch-pruning"   # pytest brings pluggy, iniconfig, pygments and py.py
CARRY_DIR=.cache/gpu_site
VENV_PY=${VENV_PY:-.venv/bin/python}

# site DEST MODE NAMES...: put the named distributions and their dependencies (this platform's
# markers, no extras) into DEST, from VENV_PY's site-packages; MODE link (symlinks, the dry run)
# or copy (files that travel). With EXCLUDE set, the closure of those names is left out.
site() {
    local dest=$1 mode=$2; shift 2
    "$VENV_PY" - "$dest" "$mode" "${EXCLUDE:-}" "$@" <<'EOF'
import importlib.metadata as md, os, shutil, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon

dest, mode, exclude, names = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]

def closure(roots):
    seen, todo = {}, list(roots)
    while todo:
        n = canon(todo.pop())
        if n in seen:
            continue
        try:
            d = md.distribution(n)
        except md.PackageNotFoundError:
            sys.exit(f"gpu_check: {n} is not installed in {sys.prefix}")
        seen[n] = d
        for r in d.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen

dists = closure(names)
for n in closure(exclude) if exclude else {}:
    dists.pop(n, None)
os.makedirs(dest, exist_ok=True)
for n, d in sorted(dists.items()):
    tops = {str(f).split("/")[0] for f in d.files or [] if not str(f).startswith("..")}
    for top in sorted(tops - {"__pycache__"}):
        src, dst = d.locate_file(top), os.path.join(dest, top)
        if os.path.lexists(dst) or not os.path.exists(src):
            continue  # a namespace folder (nvidia/, google/) shared by several distributions
        if mode == "link":
            os.symlink(os.path.abspath(src), dst)
        elif os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
print(f"gpu_check: {len(dists)} distributions into {dest}: {' '.join(sorted(dists))}", file=sys.stderr)
EOF
}

if [ "${1:-}" = pack ]; then  # here: what travels, as plain files
    rm -rf "$CARRY_DIR"
    EXCLUDE=$GPU_BASE site "$CARRY_DIR" copy $CARRIED || exit 1
    du -sh "$CARRY_DIR"
    echo "gpu_check: carry $CARRY_DIR with the working tree"
    exit 0
fi

mkdir -p "$OUT"
ISO=()
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then  # this script's own check on a CPU machine
    bash benchmarks/gpu_check.sh pack >/dev/null || exit 1  # afresh: what CARRIED names now
    BASE_SITE=$(mktemp -d)
    trap 'rm -rf "$BASE_SITE"' EXIT
    site "$BASE_SITE" link $GPU_BASE || exit 1
    PY=$VENV_PY
    ISO=(-S)  # no site-packages but the ones on PYTHONPATH
    export PYTHONPATH="$PWD:$PWD/$CARRY_DIR:$BASE_SITE"
else
    export PYTHONPATH="$PWD${CARRY_DIR:+:$PWD/$CARRY_DIR}${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== pytest --version ==" | tee "$OUT/pytest.txt"
ver=$("$PY" "${ISO[@]}" -m pytest --version 2>&1); prc=$?
echo "$ver" | tee -a "$OUT/pytest.txt"
if [ "$prc" != 0 ]; then
    echo "gpu_check: pytest does not start with these packages (carry $CARRY_DIR: bash benchmarks/gpu_check.sh pack)" \
        | tee -a "$OUT/pytest.txt"
    exit 1
fi

{ date -u; "$PY" "${ISO[@]}" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"; \
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null; } | tee "$OUT/env.txt"
BENCH=(--fraction 0.5 --epochs 3)
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    BENCH=(--smoke --models vgg16-cifar)
else
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 1
fi

rc=0
echo "== tests (CUDA visible) ==" | tee -a "$OUT/pytest.txt"
timeout 180 "$PY" "${ISO[@]}" -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_fast.py tests/test_gate.py \
    --durations=10 2>&1 | tee -a "$OUT/pytest.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1

echo "== epoch time: eager fp32 vs fast ==" | tee "$OUT/epoch_time.txt"
timeout 270 "$PY" "${ISO[@]}" benchmarks/epoch_time.py "${BENCH[@]}" --json "$OUT/epoch_time_gpu.json" \
    2>&1 | tee -a "$OUT/epoch_time.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
echo "gpu_check: exit $rc (results in $OUT)"
exit $rc
