/* Ends in a VM fault (ecall): checked against the documented fault code, not against qemu. */
#include "opml.h"
int main(void) {
    register long a7 __asm__("a7") = 999; __asm__ volatile("ecall" : : "r"(a7));
    return 0;
}
