#!/usr/bin/env bash
# The project's test command: install what is missing, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec "${PYTHON:-python3}" -m pytest tests "$@"
