#!/usr/bin/env bash
# handgrad's CUDA checks in one call on a lent GPU machine (about 7 minutes on an H100 with 16 cores):
# every CUDA test, handgrad.check on cuda, the benchmark's quick mode and a two-epoch train.py.
# Not part of CI (CI has no GPU). Beside ../shared/gpu/README.md's recipe: copy this file and the
# wheels into .gpu/, then run `bash .gpu/gpu.sh` there with .gpu carried; logs land in $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
T0=$(date +%s); at() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
if ls .gpu/*.whl >/dev/null 2>&1; then      # what LightningCLI needs beyond the machine's image
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site
python3 -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  'lightning', lightning.__version__, torch.cuda.get_device_name())" | tee "$OUT/00-device.log"

# 1. In parallel (the GPU has room; each is bound by the CPU's kernel launches): the CUDA tests on
#    10 xdist workers, and the check with one process per op.
at "CUDA tests and handgrad.check --device cuda"
timeout 300 python3 -m pytest -v -k cuda -p no:cacheprovider -n 10 -rfE --tb=short \
    tests/test_autograd.py tests/test_conv_pool.py tests/test_losses.py tests/test_nn.py \
    tests/test_norm_embedding.py tests/test_ops.py > "$OUT/10-pytest-cuda.log" 2>&1 &
mkdir -p /tmp/check
for op in $(python3 -c "from handgrad.ops import OPS; print(*OPS)"); do
    timeout 290 python3 -W ignore -m handgrad.check --device cuda --op "$op" > "/tmp/check/$op.log" 2>&1 &
done
wait
grep -E "passed|failed" "$OUT/10-pytest-cuda.log" | tail -1; grep -E "^(FAILED|ERROR)" "$OUT/10-pytest-cuda.log"
for f in /tmp/check/*.log; do grep -v "Warning\|^  " "$f"; done > "$OUT/20-check-cuda.log"
grep -E "^(FAIL|all passed|FAILED)" "$OUT/20-check-cuda.log"

# 2. Alone, so that the timings are the GPU's: the benchmark, then train.py for two epochs.
at "python -m handgrad.bench --device cuda --quick"
timeout 150 python3 -m handgrad.bench --device cuda --quick --json "$OUT/30-bench.json" > "$OUT/30-bench-cuda.log" 2>&1
echo "bench rc=$?"; grep -E "^[0-9]\. |hand/torch|took" "$OUT/30-bench-cuda.log"
at "train.py, two epochs on the GPU"
timeout 90 python3 train.py --trainer.accelerator gpu --trainer.devices 1 --trainer.max_epochs 2 \
    --trainer.enable_progress_bar false --trainer.default_root_dir /tmp/runs > "$OUT/40-train-cuda.log" 2>&1
echo "train rc=$?"; grep -E "test_acc|Run written" "$OUT/40-train-cuda.log"
at "done"
