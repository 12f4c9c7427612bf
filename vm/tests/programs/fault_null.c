/* Ends in a VM fault (null): checked against the documented fault code, not against qemu. */
#include "opml.h"
int main(void) {
    return *(volatile int *)0;
    return 0;
}
