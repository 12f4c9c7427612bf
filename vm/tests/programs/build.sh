#!/usr/bin/env bash
# Builds every C program here into OUTDIR/NAME.elf as a static RV32IM executable, plus
# matmul_test.elf (one repetition, for the tests). Needs Debian's gcc-riscv64-unknown-elf.
# Each ELF is written under a temporary name and renamed into place, so a test process reading
# OUTDIR never sees a half-written file while another build (debug and release tests) runs.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
cc=riscv64-unknown-elf-gcc
command -v "$cc" >/dev/null || { echo "build.sh: $cc not found; install gcc-riscv64-unknown-elf (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$out"
flags=(-march=rv32im -mabi=ilp32 -O2 -ffreestanding -nostdlib -static -fno-builtin -Wall -Werror -Wno-unused-function)
build() {
  local tmp="$out/.$2.$$"
  "$cc" "${flags[@]}" "${@:3}" "$here/start.S" "$here/$1" -lgcc -o "$tmp" || { rm -f "$tmp"; exit 1; }
  mv -f "$tmp" "$out/$2"
}
for src in "$here"/*.c; do
  name=$(basename "$src" .c)
  case $name in
    # Its patched function sits in an "awx" section, which makes the data segment RWX on purpose.
    selfmod) build "$name.c" "$name.elf" -Wl,--no-warn-rwx-segments ;;
    *) build "$name.c" "$name.elf" ;;
  esac
done
build matmul.c matmul_test.elf -DREPS=1
ls "$out"
