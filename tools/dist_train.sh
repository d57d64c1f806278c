#!/usr/bin/env bash
# Distributed training over torchrun:  tools/dist_train.sh CONFIG NPROC [train.py args]
# On machines without GPUs the processes use the gloo backend.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NPROC [--work-dir DIR] [--cfg-options ...]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  tools/train.py "$CONFIG" --launcher pytorch "$@"
