#!/usr/bin/env bash
# Install everything internvl_optim needs, in the order that works on a CPU
# machine with Python 3.11 (idempotent: a second run only checks versions).
#
#   torch 2.13.0 (CPU)   first, and repeated in every pip call so no resolver
#                        can replace it
#   mmengine 0.10.7
#   mmcv 2.1.0 + ops     source build against that torch: --no-build-isolation
#                        and setuptools<81; ~12 min the first time, then pip's
#                        wheel cache makes it seconds
#   mmsegmentation 1.2.2 with ftfy and regex (used but not declared by it)
#   mmdet 3.3.0 (pure Python)
#   pytest, deepspeed 0.15.4, timm 1.0.31 (no deps), transformers 5.24.0,
#   accelerate 1.15.0, trl 1.16.0 + datasets 5.2.0, sphinx 9.0.4 +
#   myst-parser 5.2.0 (docs), and this package (editable)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=torch==2.13.0
PIP="$PY -m pip install --progress-bar off"

installed() {  # installed NAME VERSION -> exit 0 if that exact version is installed
  $PY - "$1" "$2" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]).split('+')[0] == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

installed torch 2.13.0 || $PIP "$TORCH"
installed mmengine 0.10.7 || $PIP "$TORCH" mmengine==0.10.7
if ! installed mmcv 2.1.0 || ! $PY -c 'import mmcv.ops' 2>/dev/null; then
  echo "Building mmcv 2.1.0 with ops (about 12 minutes the first time)..."
  $PIP "$TORCH" "setuptools<81" wheel
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} $PIP --no-build-isolation "$TORCH" mmcv==2.1.0
fi
installed mmsegmentation 1.2.2 || $PIP "$TORCH" mmsegmentation==1.2.2
# MMDetection 3.3.0: a pure-Python wheel that accepts mmcv 2.1.0; its
# configs ship in the wheel, and MMSeg's Mask2Former/MaskFormer need it
installed mmdet 3.3.0 || $PIP "$TORCH" mmdet==3.3.0
$PY -c 'import ftfy, regex, pytest' 2>/dev/null || $PIP "$TORCH" ftfy regex pytest
# safetensors reads and writes the HuggingFace weight files (InternViT)
installed safetensors 0.8.0 || $PIP "$TORCH" safetensors==0.8.0
# DeepSpeed for MMEngine's DeepSpeedStrategy (runs on CPU with gloo). 0.15.4:
# MMEngine 0.10.7 imports deepspeed.runtime.fp16.onebit, gone in later
# releases. No prebuilt ops; no isolated build env (it would fetch a torch).
installed deepspeed 0.15.4 || DS_BUILD_OPS=0 $PIP --no-build-isolation "$TORCH" "setuptools<81" wheel deepspeed==0.15.4
# timm 1.0.31, the oracle of the tests and benchmarks/timm_zoo.py: without
# its dependencies, since it would pull a torchvision (which cannot be
# imported beside this CPU torch); timm builds models and groups without it
# (internvl_optim.analysis.timm_oracle stands in for it in that process)
installed timm 1.0.31 || { $PIP "$TORCH" huggingface_hub pyyaml && \
  $PIP --no-deps timm==1.0.31; }
# transformers 5.24 (pure Python): HuggingFace vision towers and VLMs in tests
installed transformers 5.24.0 || $PIP "$TORCH" transformers==5.24.0
# accelerate: what transformers.Trainer runs on (the HF Trainer test)
installed accelerate 1.15.0 || $PIP "$TORCH" accelerate==1.15.0
# TRL (pure Python) and datasets: TRL's SFTTrainer test
installed trl 1.16.0 && installed datasets 5.2.0 || \
  $PIP "$TORCH" transformers==5.24.0 accelerate==1.15.0 trl==1.16.0 \
    datasets==5.2.0
# Sphinx + MyST build the docs site (docs/en), part of the test command
$PY -c 'import sphinx, myst_parser' 2>/dev/null || \
  $PIP "$TORCH" sphinx==9.0.4 myst-parser==5.2.0
# The package itself, pointing at this checkout.
$PIP --no-deps --no-build-isolation -e . >/dev/null
$PY -c 'import torch, mmcv.ops, mmseg, mmdet, internvl_optim; print("ready: torch", torch.__version__, "mmseg", mmseg.__version__, "mmdet", mmdet.__version__)'
