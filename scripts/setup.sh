#!/usr/bin/env bash
# Create .venv (if needed) and install archspec with everything the tests need. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch==2.13.0 is pinned in the extras: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# Graphviz's `dot` renders `archspec diagram` to SVG/PNG; tests/test_diagram.py needs it and fails without it.
if ! command -v dot >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    { $SUDO apt-get install -y -q graphviz >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q graphviz >/dev/null 2>&1; }; } \
      || echo "WARNING: could not install Graphviz (apt-get install graphviz): the diagram tests will FAIL" >&2
fi
