/* Ends in a VM fault (ebreak): checked against the documented fault code, not against qemu. */
#include "opml.h"
int main(void) {
    __asm__ volatile("ebreak");
    return 0;
}
