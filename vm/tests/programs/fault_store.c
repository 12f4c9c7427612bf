/* Ends in a VM fault: a store into the guard page [0, 0x1000). Not compared with qemu. */
#include "opml.h"
static volatile u32 guard_addr = 0xffc;
int main(void) {
    print("before\n");
    *(volatile u32 *)guard_addr = 1;
    return 0;
}
