#!/usr/bin/env bash
# Baselines for `opml bench gemm` (see ort_gemm.py): installs onnxruntime, onnx and numpy into a
# venv under .cache/ on first use, then prints their G MAC/s on the given shapes.
# Usage: scripts/bench/ort_gemm.sh [--threads T] [--runs N] MxKxN...
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/ort-gemm-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet onnxruntime onnx numpy
fi
exec "$venv/bin/python" "$root/scripts/bench/ort_gemm.py" "$@"
