/* A long run (about 1.6 billion steps) for the witness-deep-in-a-run benchmark. */
#include "opml.h"
static u32 state[1024];
int main(void) {
    u32 x = 7;
    for (u32 round = 0; round < 200000; round++)
        for (u32 i = 0; i < 1024; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; state[i] += x; }
    u32 sum = 0;
    for (u32 i = 0; i < 1024; i++) sum ^= state[i];
    print("longrun "); print_hex(sum); print("\n");
    return 0;
}
