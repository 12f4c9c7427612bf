/* Ends in a VM fault: a CSR instruction (rdcycle) is illegal in the VM. Not compared with qemu. */
#include "opml.h"
int main(void) {
    u32 v;
    print("before\n");
    __asm__ volatile(".word 0xc0002573\n\tmv %0, a0" : "=r"(v) : : "a0");   /* csrrs a0, cycle, x0 */
    return (int)v;
}
