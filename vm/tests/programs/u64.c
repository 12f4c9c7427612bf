/* 64-bit arithmetic through libgcc: multiply, divide, shifts, printing big numbers. */
#include "opml.h"
static volatile u64 seeds[] = {1, 10, 0xffffffffull, 0x100000000ull, 0xdeadbeefcafebabeull, 18446744073709551615ull};
int main(void) {
    u64 acc = 0;
    for (unsigned i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        u64 s = seeds[i];
        u64 q = s / 7, r = s % 1000003;
        i64 sq = (i64)s / -3;
        acc ^= s * 0x9e3779b97f4a7c15ull + q + r + (u64)sq + (s << 13) + (s >> 7);
        print_u64(s); print(" / 7 = "); print_u64(q); print(", % 1000003 = "); print_u64(r); print("\n");
    }
    u64 f = 1;
    for (u32 k = 1; k <= 20; k++) f *= k;
    print("20! = "); print_u64(f); print("\nacc = "); print_u64(acc); print("\n");
    return (int)(acc % 200);
}
