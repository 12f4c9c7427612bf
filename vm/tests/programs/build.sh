#!/usr/bin/env bash
# Builds every C program here into OUTDIR/NAME.elf as a static RV32IM executable, plus
# matmul_test.elf (one repetition, for the tests). Needs Debian's gcc-riscv64-unknown-elf.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
cc=riscv64-unknown-elf-gcc
command -v "$cc" >/dev/null || { echo "build.sh: $cc not found; run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$out"
flags=(-march=rv32im -mabi=ilp32 -O2 -ffreestanding -nostdlib -static -fno-builtin -Wall -Werror -Wno-unused-function)
build() { "$cc" "${flags[@]}" "${@:3}" "$here/start.S" "$here/$1" -lgcc -o "$out/$2"; }
for src in "$here"/*.c; do
  name=$(basename "$src" .c)
  build "$name.c" "$name.elf"
done
build matmul.c matmul_test.elf -DREPS=1
ls "$out"
