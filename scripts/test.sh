#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, the slow group included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
