#!/usr/bin/env bash
# Installs what opml's tests and demo need beyond the Rust toolchain: Debian's RISC-V cross compiler
# (to build the C test programs as RV32IM ELFs) and qemu-user (the reference emulator they are
# compared against). Does nothing when they are already there.
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
command -v cargo >/dev/null 2>&1 || {
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
}
