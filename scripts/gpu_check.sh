#!/usr/bin/env bash
# The CUDA check of the speed work (issue 6), in one go, well under 6 minutes on one H100/H200:
#   1. tests/test_strategies.py with CUDA present (every agreement test also runs on "cuda");
#   2. a short engine run on CUDA (class dataset moved to the GPU once, no per-step host sync);
#   3. benchmarks/bench_episodes.py (dataset on the GPU vs pinned uploads) -> $OUT/bench_episodes.txt
#   4. benchmarks/bench_meta.py --device cuda  ->  $OUT/bench_cuda.txt
# Installs nothing from the network. The workbench needs tomli_w, which GPU images often lack:
# if it is missing, a wheel carried in .whl/ is installed into /tmp/site with --no-index, e.g.
#   pip download --no-deps --only-binary=:all: -d .whl tomli_w==1.2.0     (here, before the run)
# Usage: OUT=/some/folder scripts/gpu_check.sh        (PYTHON=... to pick the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import tomli_w" 2>/dev/null; then
    if compgen -G ".whl/tomli_w-*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/tomli_w-*.whl || exit 2
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    else
        echo "gpu_check: tomli_w is not installed and no wheel is in .whl/ (see the top of this script)" >&2
        exit 2
    fi
fi
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if ok else 'NO GPU'); sys.exit(0 if ok else 3)" \
    | tee "$OUT/gpu.txt" || { echo "gpu_check: no CUDA GPU visible to torch" >&2; exit 3; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/gpu.txt"

status=0
echo "== 1. strategy agreement tests (cpu and cuda)"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_strategies.py 2>&1 | tee "$OUT/tests_cuda.txt" || status=1

echo "== 2. engine on CUDA: MAML, Conv-4 on the bundled digits, 40 steps"
timeout 90 "$PY" -m workbench run digits_protonet --no-session --quiet \
    --set learner.name=maml --set model.backbone=conv4 --set model.filters=32 --set train.device=cuda \
    --set train.steps=40 --set train.log_every=10 --set train.eval_every=0 --set eval.episodes=50 \
    2>&1 | tee "$OUT/engine_cuda.txt" || status=1

echo "== 3. how episodes reach the GPU"
timeout 60 "$PY" benchmarks/bench_episodes.py --device cuda 2>&1 | tee "$OUT/bench_episodes.txt" || status=1

echo "== 4. benchmark on CUDA"
timeout 210 "$PY" benchmarks/bench_meta.py --device cuda --out "$OUT/bench_cuda.txt" 2>&1 | tee "$OUT/bench_cuda.log" \
    || status=1
exit $status
