#!/usr/bin/env bash
# GPU table for issue 19 (docs/performance.md, "GPU"): on a machine with an NVIDIA GPU and internet access,
# builds a throw-away venv, installs onnxruntime-gpu + tensorrt + torch/ultralytics from the registries, exports
# YOLO11n with dynamic shapes, and prints detector img/s at batch 1/8/32 (project vs ultralytics vs raw ORT),
# fp16 vs fp32 agreement, decode streams (NVDEC vs CPU), and the scale harness's streams at p95 < 1 s.
#
#   benchmarks/gpu/run.sh             # on the GPU machine (about 8 minutes, most of it pip)
#   benchmarks/gpu/run.sh --dry-run   # anywhere: the project's venv, CPU provider, short timings, no installs
#
# Environment: GPU_VENV (default /tmp/tubeline-gpu-venv), SCALE_STREAMS (default 1,4,8,16),
# TORCH_SPEC (default "torch==2.14.1 torchvision==0.29.1", see /work/shared/docs/ENVIRONMENT.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; fi
work="$(mktemp -d /tmp/tubeline-gpu.XXXXXX)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS

say() { printf '\n== %s (%ds)\n' "$1" "$((SECONDS - started))"; }

if [[ $dry == 1 ]]; then
  py="$repo/.venv/bin/python"
  providers="cpu"
  batches="1,8"
  seconds=1
  streams="${SCALE_STREAMS:-1}"
  echo "dry run: CPU provider, project venv, no installs"
else
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no NVIDIA GPU visible (nvidia-smi failed); use --dry-run for the CPU path" >&2
    exit 2
  fi
  say "GPU"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  venv="${GPU_VENV:-/tmp/tubeline-gpu-venv}"
  say "venv $venv"
  python3 -m venv "$venv"
  py="$venv/bin/python"
  "$py" -m pip install -q --upgrade pip
  # The project and its dependencies (non-editable, into the throw-away venv only), then the GPU runtime in
  # place of the CPU one (both install the module `onnxruntime`), TensorRT's Python wheels, torch + ultralytics.
  "$py" -m pip install -q "$repo"
  "$py" -m pip uninstall -q -y onnxruntime || true
  read -r -a torch_spec <<< "${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
  "$py" -m pip install -q "onnxruntime-gpu" "tensorrt" "${torch_spec[@]}" ultralytics
  # TensorRT's and CUDA's libraries live inside the wheels: put them on the loader path.
  libs="$("$py" - <<'PY'
import importlib.util, pathlib
dirs = set()
for name in ("tensorrt_libs", "nvidia"):
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            dirs.update(str(p.parent) for p in pathlib.Path(root).rglob("*.so*"))
print(":".join(sorted(dirs)))
PY
)"
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  "$py" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'
  providers="tensorrt,cuda,cpu"
  batches="1,8,32"
  seconds=4
  streams="${SCALE_STREAMS:-1,4,8,16}"
  "$py" -m workers.cli models install >/dev/null 2>&1 || true
fi

say "YOLO11n export with dynamic batch and spatial axes"
yolo=""
pt=""
if "$py" - "$work" <<'PY'
import sys
from pathlib import Path
from ultralytics import YOLO
work = Path(sys.argv[1])
try:
    model = YOLO("yolo11n.pt")  # real COCO weights (downloaded by ultralytics)
except Exception as exc:  # offline: random weights, same graph and cost
    print(f"yolo11n.pt unavailable ({exc}); exporting random weights from yolo11n.yaml")
    model = YOLO("yolo11n.yaml")
out = Path(model.export(format="onnx", imgsz=640, dynamic=True, opset=17, simplify=False))
out.rename(work / "yolo11n-dyn.onnx")
if Path("yolo11n.pt").exists():
    Path("yolo11n.pt").rename(work / "yolo11n.pt")
PY
then
  yolo="$work/yolo11n-dyn.onnx"
  if [[ -f "$work/yolo11n.pt" ]]; then pt="$work/yolo11n.pt"; fi
else
  echo "ultralytics unavailable: YOLO rows skipped"
fi

say "decode clip (1080p H.264, 10 s)"
ffmpeg -hide_banner -loglevel error -y -i "$repo/../shared/testdata/vtest.avi" -vf scale=1920:1080,fps=25 -t 10 \
  -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p "$work/clip_1080p.mp4" \
  || ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1920x1080:rate=25 -t 10 \
       -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p "$work/clip_1080p.mp4"

say "detector, fp16 and decode table"
args=(--providers "$providers" --batches "$batches" --seconds "$seconds" --clip "$work/clip_1080p.mp4")
if [[ -n "$yolo" ]]; then args+=(--yolo "$yolo"); fi
if [[ -n "$pt" ]]; then args+=(--ultralytics "$pt"); fi
PYTHONPATH="$repo" "$py" benchmarks/gpu/detector_bench.py "${args[@]}"

say "scale harness, streams $streams, p95 capture->indexed < 1 s"
models_env="[${providers}]"
TUBELINE_MODELS__PROVIDERS="$models_env" PYTHONPATH="$repo" "$py" benchmarks/scale/run.py \
  --streams "$streams" --size 1920x1080 --warmup-s 8 --measure-s 15 --p95-limit-s 1 --png "$work/scale.png"

say "done"
