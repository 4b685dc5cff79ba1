#!/usr/bin/env bash
# handgrad's CUDA checks on a lent GPU machine, in two calls of about 5 minutes each on an H100 with
# 16 cores (a call may run 10 minutes at most, the lease 15 in all):
#   bash .gpu/gpu.sh speed    the benchmark's compiled step (section 8) and train.py's default recipe
#                             for two epochs, hand and torch, eager and --model.compile reduce-overhead
#   bash .gpu/gpu.sh tests    every CUDA test, handgrad.check --device cuda (one process per op, or
#                             the ops named in $CHECK_OPS), the benchmark's sections 1-3
# Not part of CI (CI has no GPU). Beside ../shared/gpu/README.md's recipe: copy this file and the
# wheels into .gpu/, then run it there with .gpu carried; logs land in $OUT.
set -u
PART=${1:-all}
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
T0=$(date +%s); at() { echo "[t=$(( $(date +%s) - T0 ))s] $*"; }
if ls .gpu/*.whl >/dev/null 2>&1; then      # what LightningCLI needs beyond the machine's image
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site
python3 -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  'lightning', lightning.__version__, torch.cuda.get_device_name())" | tee "$OUT/00-device.log"

if [ "$PART" = speed ] || [ "$PART" = all ]; then
    at "python -m handgrad.bench --device cuda --quick --sections 8"
    timeout 240 python3 -m handgrad.bench --device cuda --quick --sections 8 --json "$OUT/50-bench-compiled.json" \
        > "$OUT/50-bench-compiled-cuda.log" 2>&1
    echo "bench rc=$?"; grep -vE "Warning|warn\(" "$OUT/50-bench-compiled-cuda.log" | tail -9
    for compile in none reduce-overhead; do
        for impl in hand torch; do
            at "train.py, default recipe, two epochs, --model.impl $impl --model.compile $compile"
            log="$OUT/60-train-$impl-$compile.log"
            timeout 100 python3 train.py --trainer.accelerator gpu --trainer.devices 1 --trainer.max_epochs 2 \
                --trainer.enable_progress_bar false --trainer.default_root_dir "/tmp/runs-$impl-$compile" \
                --model.impl "$impl" --model.compile "$compile" > "$log" 2>&1
            echo "rc=$?"; grep -E "test_acc" "$log"
            python3 -c "import json, glob; r = json.load(open(glob.glob('/tmp/runs-$impl-$compile/*/results.json')[0]))
print('epoch seconds', [round(e['seconds'], 2) for e in r['epochs']], 'test_acc', r['test_acc'])" 2>&1 | tail -1
        done
    done
fi

if [ "$PART" = tests ] || [ "$PART" = all ]; then
    # In parallel (the GPU has room; each is bound by the CPU's kernel launches): the CUDA tests on
    # 10 xdist workers, and the check with one process per op.
    at "CUDA tests and handgrad.check --device cuda"
    timeout 280 python3 -m pytest -v -k cuda -p no:cacheprovider -n 10 -rfE --tb=short \
        tests/test_autograd.py tests/test_conv_pool.py tests/test_losses.py tests/test_nn.py \
        tests/test_norm_embedding.py tests/test_ops.py tests/test_train.py > "$OUT/10-pytest-cuda.log" 2>&1 &
    mkdir -p /tmp/check
    for op in ${CHECK_OPS:-$(python3 -c "from handgrad.ops import OPS; print(*OPS)")}; do
        timeout 270 python3 -W ignore -m handgrad.check --device cuda --op "$op" > "/tmp/check/$op.log" 2>&1 &
    done
    wait
    grep -E "passed|failed" "$OUT/10-pytest-cuda.log" | tail -1; grep -E "^(FAILED|ERROR)" "$OUT/10-pytest-cuda.log"
    for f in /tmp/check/*.log; do grep -v "Warning\|^  " "$f"; done > "$OUT/20-check-cuda.log"
    grep -E "^(FAIL|all passed|FAILED)" "$OUT/20-check-cuda.log"
    at "python -m handgrad.bench --device cuda --quick --sections 1,2,3"
    timeout 100 python3 -m handgrad.bench --device cuda --quick --sections 1,2,3 --json "$OUT/30-bench.json" \
        > "$OUT/30-bench-cuda.log" 2>&1
    echo "bench rc=$?"; grep -E "^[0-9]\. |took" "$OUT/30-bench-cuda.log"
fi
at "done"
