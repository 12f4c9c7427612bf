#!/usr/bin/env bash
# The main job: an end-to-end opML dispute on the embedded chain (`opml demo`). It needs nothing
# installed beyond the Rust toolchain: the contracts' artifacts, the model and the digits are in
# the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet -- demo "$@"
