#!/usr/bin/env bash
# The main job: builds the example programs and runs `opml demo` on one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
vm/tests/programs/build.sh target/riscv-programs >/dev/null
cargo run --release --quiet -- demo "$@"
