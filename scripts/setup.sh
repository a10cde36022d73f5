#!/usr/bin/env bash
# Create .venv (if needed) and install archspec with everything the tests need. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch is pinned in pyproject.toml. Which build comes depends on the index: from PyPI on Linux x86-64 it is the
# CUDA build (several GB of nvidia-* wheels). TORCH_INDEX_URL picks the index for torch alone, e.g. the CPU build,
# the usual choice on a laptop:
#     TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
# Unset (the default), pip chooses as it does for `pip install torch` on this machine.
TORCH_PIN=$(grep -o '"torch==[^"]*"' pyproject.toml | head -n 1 | tr -d '"')
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "installing $TORCH_PIN from $TORCH_INDEX_URL"
    .venv/bin/python -m pip install -q --disable-pip-version-check --index-url "$TORCH_INDEX_URL" "$TORCH_PIN"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# Graphviz's `dot` renders `archspec diagram` to SVG/PNG; tests/test_diagram.py needs it and fails without it.
if ! command -v dot >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    { $SUDO apt-get install -y -q graphviz >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q graphviz >/dev/null 2>&1; }; } \
      || echo "WARNING: could not install Graphviz (apt-get install graphviz): the diagram tests will FAIL" >&2
fi
