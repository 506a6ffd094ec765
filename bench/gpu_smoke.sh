#!/usr/bin/env bash
# Every method once at demo size on a GPU, with timings: the check to run first on a new GPU host.
#   bench/gpu_smoke.sh [DEVICE]        (default cuda; `bench/gpu_smoke.sh cpu` runs the same on the CPU)
# Needs the environment `./dev.sh test` sets up (.venv). Builds the tiny demo world (560 images) in a scratch
# workspace, then: encoders, caption precompute (both methods), attention encoder, encoder halves, BrainDiVE
# (8 seeds), Brain-IT fit + reconstruction (4 images), the simulated subject, the GPU BrainDiVE bench at 512 px
# (SD-2.1-base architecture, random weights) when DEVICE is CUDA. Prints one line per step: seconds, exit status.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cuda}
WS=$(mktemp -d /tmp/voxelscope-gpu-smoke.XXXXXX)
OUT=$WS/out
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 VOXELSCOPE_WORKSPACE=$WS/workspace VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow
PY=.venv/bin/python
if [ "$DEVICE" != cpu ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device visible to PyTorch (torch $($PY -c 'import torch; print(torch.__version__)'))" >&2
  exit 1
fi
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
failed=0
step() {  # step NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then
    printf '%-28s %5d s  ok\n' "$name" $((SECONDS - t0))
  else
    printf '%-28s %5d s  FAILED (exit %d; log: %s)\n' "$name" $((SECONDS - t0)) $? "$OUT/$name.log"
    failed=1
  fi
}
step "world (tiny)"          $PY -m backend demo build --tiny
step "encoders"              $PY -m backend encoder fit --device "$DEVICE"
step "captions (both)"       $PY -m backend captions all --device "$DEVICE" --n 5000 --voxels 0-511
step "attention encoder"     $PY -m backend attention fit --subject subj01 --device "$DEVICE" --max-epochs 5
step "encoder halves"        $PY -m backend encoder halves --device "$DEVICE"
step "BrainDiVE (8 seeds)"   $PY -m backend synthesis run FFA-1 --seeds 8 --steps 50 --device "$DEVICE" --out "$OUT/ffa.png"
step "Brain-IT fit"          $PY -m backend reconstruction fit --device "$DEVICE" --epochs 5 --min-steps 0
step "reconstruction"        $PY -m backend reconstruction run bit --subject subj01 --images 4 --device "$DEVICE"
step "simulated subject"     $PY -m backend simulate respond "$OUT/ffa.png"
if [ "$DEVICE" != cpu ]; then
  step "BrainDiVE SD-2.1 512px" $PY bench/braindive_gpu.py --device "$DEVICE"
  tail -n 20 "$OUT/BrainDiVE SD-2.1 512px.log"
fi
echo "logs and images: $OUT"
exit $failed
