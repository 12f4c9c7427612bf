#!/usr/bin/env bash
# Quantizes the f32 MNIST models (models/mnist-*/float.*) into the integer models the project uses
# (models/mnist-*/model.json + weights.safetensors), calibrating on the first 1,000 training digits,
# and prints their held-out accuracy. Deterministic: rerunning rewrites the same bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
for m in mnist-cnn mnist-mlp; do
  target/release/opml model import "models/$m" --calibration data/mnist/train.safetensors --samples 1000 --out "models/$m"
  target/release/opml model eval "models/$m" data/mnist/test.safetensors
done
