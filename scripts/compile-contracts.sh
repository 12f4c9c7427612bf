#!/usr/bin/env bash
# Compiles the Solidity contracts with the pinned solc-js into contracts/out/ (committed artifacts).
# `scripts/compile-contracts.sh --check` only reports stale artifacts.
set -euo pipefail
cd "$(dirname "$0")/../contracts"
if [ ! -d node_modules/solc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node scripts/compile.js "$@"
