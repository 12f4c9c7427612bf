/* Ends in a VM fault (misaligned): checked against the documented fault code, not against qemu. */
#include "opml.h"
static volatile int buf[2] = {1, 2};
int main(void) {
    int v;
    /* Through asm: for a known misaligned C access gcc would emit two halfword loads instead. */
    __asm__ volatile("lw %0, 2(%1)" : "=r"(v) : "r"(buf));
    return v;
}
