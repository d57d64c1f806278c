#!/usr/bin/env bash
# The demo: a small InternViT + UperNet trained with layer decay on a
# synthetic ADE20K-layout dataset (made here, no download), ~20 s on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY tools/make_synthetic_ade20k.py data/synthetic_ade20k
$PY tools/train.py configs/demo/internvit_tiny_upernet_synthetic_ade20k.py \
  --work-dir "${WORK_DIR:-work_dirs/demo}" "$@"
