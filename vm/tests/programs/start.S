# Entry point of the test programs: set gp, call main, exit with its return value.
# sp is set by the loader (the opml VM and qemu-user both provide a stack).
    .section .text.start
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    call main
    li a7, 93
    ecall
1:  j 1b
