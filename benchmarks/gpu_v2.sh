#!/usr/bin/env bash
# One GPU session, start to end (~8 minutes on one H200): the CUDA paths of the trainer, then the
# v2 PP and TP-control diffusion checkpoints trained side by side on the one GPU with the same
# wall-clock budget and the same settings, then the few-step student distilled from the PP one.
#
#   bash benchmarks/gpu_v2.sh OUTDIR [TRAIN_MINUTES]
#
# Run in the repository root on the GPU machine (its python3 holds torch with CUDA; ppviz is
# taken from the tree through PYTHONPATH; shapely, zarr, dask and their needs, where the machine
# lacks them, installed first from carried wheels: see benchmarks/README.md). OUTDIR gets session.log, logs.tgz (every stage's log)
# and one .tgz per checkpoint (unpack into pretrained/). Each stage is timed in session.log; a stage
# that fails is logged and the later stages that do not need it still run.
set -u
OUTDIR=${1:?usage: gpu_v2.sh OUTDIR [TRAIN_MINUTES]}
MIN=${2:-2.4}
PY=${PYTHON:-python3}
W=${WORK:-/tmp/ppviz-v2}
L=$W/logs  # stage logs, packed into OUTDIR/logs.tgz (the device returns few files)
mkdir -p "$OUTDIR" "$W" "$L"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
log() { echo "[$(date +%T)] $*" | tee -a "$OUTDIR/session.log"; }

log "machine: $(nvidia-smi -L 2>&1 | head -1); $(nproc) CPUs"
$PY -c "import torch, numpy, xarray; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'numpy', numpy.__version__, 'xarray', xarray.__version__)" 2>&1 | tee -a "$OUTDIR/session.log"
if ! $PY -c "import ppviz.cli" >> "$OUTDIR/session.log" 2>&1; then log "ppviz does not import"; exit 1; fi
# The synthetic data must be the same here as on the CPU that scores the checkpoints.
$PY - <<'EOF' 2>&1 | tee -a "$OUTDIR/session.log"
import hashlib
import numpy as np
from ppviz.data.source import load_dataset
a = np.ascontiguousarray(load_dataset(None).tp.isel(time=slice(0, 48)).values, dtype=np.float32)
print("synthetic tp[0:48] sha256", hashlib.sha256(a.tobytes()).hexdigest()[:16], "mean", float(a.mean()))
EOF

# Overridable for a dry run of this script on a CPU (tiny model, few steps).
# --loader memory: the stream loader's 5 workers fed only 5-6 steps/s of batch 32 on the H200 (data-bound);
# the whole training span in memory (177 MB) fed about 33 steps/s to each of two runs at once.
ARCH=${ARCH:-"--batch 32 --crop 64 --base-channels 40 --channel-mult 1,2,2 --blocks 1 --lr 5e-4 --loader memory"}
SMOKE=${SMOKE_STEPS:-120}
EVAL=${EVAL:-"--eval-dates 6 --eval-members 4"}

# 1. bf16 autocast on CUDA, at the v2 size (a check: the shipped v2 were trained in fp32, stage 3).
log "stage 1: bf16 autocast smoke, $SMOKE steps"
$PY -m ppviz train diffusion --target pp --out "$W/smoke" $ARCH --steps "$SMOKE" --workers 4 --eval-dates 1 \
    --eval-members 2 --log-every 20 > "$L/smoke.log" 2>&1
AMP=""
if [ $? -ne 0 ]; then
    log "bf16 autocast run FAILED (tail below); training v2 in fp32"; tail -5 "$L/smoke.log" | tee -a "$OUTDIR/session.log"
    AMP="--no-amp"
    $PY -m ppviz train diffusion --target pp --out "$W/smoke" $ARCH --steps "$SMOKE" --workers 4 --eval-dates 1 \
        --eval-members 2 --log-every 20 --no-amp --overwrite > "$L/smoke.log" 2>&1 || { log "fp32 FAILED too"; exit 1; }
fi
RATE=$($PY - "$W/.smoke.train/train_log.jsonl" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
a, b = recs[1], recs[-1]  # skip the first 20 steps (start-up, cuDNN autotuning)
print(round((b["step"] - a["step"]) / (b["seconds"] - a["seconds"]), 1))
EOF
)
log "smoke: $RATE steps/s alone ${AMP:-with bf16 autocast}"

# 2. torch.compile and onnxruntime's CUDA provider, beside the main runs (checks, not inputs).
(
    $PY -m ppviz train diffusion --target pp --out "$W/compiled" $ARCH --steps 60 --workers 1 --eval-dates 1 \
        --eval-members 2 --log-every 20 --compile $AMP > "$L/compile.log" 2>&1 \
        && echo "torch.compile run: OK ($(tail -c 300 "$W/.compiled.train/train_log.jsonl" | tail -1))" \
        || echo "torch.compile run: FAILED: $(grep -v '^\s*$' "$L/compile.log" | tail -3)"
    $PY -m ppviz export onnx edm-pp-v1 --out "$W/edm-pp-v1-onnx" > "$L/onnx-export.log" 2>&1 \
        || echo "ONNX export: FAILED: $(grep -v '^\s*$' "$L/onnx-export.log" | tail -3)"
    [ -d "$W/edm-pp-v1-onnx" ] && $PY - "$W/edm-pp-v1-onnx" <<'EOF'
import sys, time
import numpy as np, onnxruntime as ort
from ppviz.data.regions import Region
from ppviz.data.source import load_dataset
from ppviz.pipeline import Models, downscale_time
m = Models.load(sys.argv[1], device="cuda")
ds = load_dataset(None)
t0 = time.perf_counter()
ens = downscale_time(m, ds, ds.time.values[-30], Region.named("alps"), members=4, steps=8, seed=0)
print("onnxruntime providers:", ort.get_available_providers(), "| used:", m.diffusion.precond.providers, "|",
      "finite" if np.isfinite(ens.tp_members).all() else "NOT FINITE", f"{time.perf_counter() - t0:.2f} s")
EOF
) > "$L/checks.log" 2>&1 &
CHECKS=$!

# 3. v2: PP and TP control, the same settings and the same minutes on the same GPU at once, in fp32
#    (as shipped; the learning-rate warm-up and the EMA half-life are set from the planned steps).
STEPS=${STEPS:-8000}
log "stage 3: v2 PP and TP, $STEPS steps planned, at most $MIN minutes each"
PIDS=""
for T in pp tp; do
    $PY -m ppviz train diffusion --target $T --out "$W/edm-$T-v2" $ARCH --steps "$STEPS" \
        $EVAL --log-every 100 --max-minutes "$MIN" --no-amp > "$L/train-$T.log" 2>&1 &
    PIDS="$PIDS $!"
done
wait $PIDS
for T in pp tp; do
    log "edm-$T-v2: $(grep -E 'time limit|held-out:|checkpoint:' "$L/train-$T.log" | grep -v 'time/s' | tr '\n' ' ' | cut -c1-600)"
    [ -d "$W/edm-$T-v2" ] && tar czf "$OUTDIR/edm-$T-v2.tgz" -C "$W" "edm-$T-v2"
done
tar czf "$OUTDIR/logs.tgz" -C "$W" logs

# 4. The few-step student of the new PP model (progressive distillation, as for v1's).
if [ -f "$W/edm-pp-v2/config.json" ]; then
    # about 90 s: a distillation step costs about two training steps (two teacher evaluations)
    SPR=${SPR:-$($PY -c "print(max(300, min(1500, int(float('$RATE') * 11) // 50 * 50)))")}
    log "stage 4: student of edm-pp-v2, 4 rounds x $SPR steps"
    $PY -m ppviz train distill --teacher "$W/edm-pp-v2" --out "$W/edm-pp-v2-student" --teacher-steps 16 \
        --steps-per-round "$SPR" --batch 32 --crop 32 --lr 2e-4 --seed 0 --anchor-fraction 0.5 --default-steps 2 \
        --workers 4 --state-dir "$W/student.distill" > "$L/distill.log" 2>&1 \
        && log "student: $(tail -1 "$L/distill.log")" || { log "distillation FAILED"; tail -5 "$L/distill.log" | tee -a "$OUTDIR/session.log"; }
fi

[ -d "$W/edm-pp-v2-student" ] && tar czf "$OUTDIR/edm-pp-v2-student.tgz" -C "$W" edm-pp-v2-student
wait $CHECKS; cat "$L/checks.log" >> "$OUTDIR/session.log"
tar czf "$OUTDIR/logs.tgz" -C "$W" logs
log "done"
