#!/usr/bin/env bash
# Writes models/mnist-cnn/float.onnx, the f32 CNN as an ONNX graph (scripts/mnist/export_onnx.py),
# from models/mnist-cnn/float.{json,safetensors}. Creates scripts/mnist/.venv with the pinned
# requirements. Deterministic: rerunning rewrites the same bytes. Extra arguments go to the script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$here/.venv/bin/python" "$here/export_onnx.py" "$@"
