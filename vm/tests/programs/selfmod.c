/* Self-modifying code: main rewrites the first instruction of a function that lives in a
 * writable and executable section, then calls it again. Catches a stale decoded-instruction cache.
 * (The VM has no page permissions; qemu-user needs the segment to be RWX, hence the "awx" flags.) */
#include "opml.h"

/* patched(x): first instruction is rewritten below; initially returns x + 1. */
__asm__(".section .selfmod,\"awx\",@progbits\n"
        ".balign 4\n"
        ".globl patched\n"
        "patched:\n"
        "  addi a0, a0, 1\n"
        "  ret\n"
        ".previous\n");
extern u32 patched[];
extern u32 patched_call(u32) __asm__("patched");

static inline void fence_i(void) { __asm__ volatile(".word 0x0000100f" ::: "memory"); } /* fence.i */

/* addi a0, a0, imm (I-type: imm[11:0] rs1=a0 funct3=0 rd=a0 opcode=0x13) */
static u32 addi_a0(i32 imm) { return ((u32)imm & 0xfff) << 20 | 10u << 15 | 0u << 12 | 10u << 7 | 0x13u; }

int main(void) {
    u32 sum = 0;
    print("original: "); print_u32(patched_call(100)); print("\n");
    sum += patched_call(100);
    for (i32 k = -3; k <= 3; k++) {
        *(volatile u32 *)&patched[0] = addi_a0(k * 100);
        fence_i();
        u32 r = patched_call(1000);
        print("addi a0, a0, "); print_i32(k * 100); print(" -> "); print_u32(r); print("\n");
        sum += r;
    }
    /* Patch to a different opcode: slli a0, a0, 4. */
    *(volatile u32 *)&patched[0] = 4u << 20 | 10u << 15 | 1u << 12 | 10u << 7 | 0x13u;
    fence_i();
    u32 r = patched_call(3);
    print("slli a0, a0, 4 -> "); print_u32(r); print("\n");
    sum += r;
    return (int)(sum % 251);
}
