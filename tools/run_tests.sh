#!/usr/bin/env bash
# The project's test command: install what is missing, build the docs with
# warnings as errors, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash tools/setup.sh
"$PY" -m sphinx -W --keep-going -q -b html docs/en build/docs
exec "$PY" -m pytest tests "$@"
