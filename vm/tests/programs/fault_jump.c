/* Ends in a VM fault (jump): checked against the documented fault code, not against qemu. */
#include "opml.h"
int main(void) {
    void (*f)(void) = (void (*)(void))((unsigned long)main + 2); f();
    return 0;
}
