/* Ends in a VM fault: a word whose low two bits are not 11 (a compressed encoding) is illegal. */
#include "opml.h"
int main(void) {
    __asm__ volatile(".word 0x00010001");   /* two c.nop halfwords */
    return 0;
}
