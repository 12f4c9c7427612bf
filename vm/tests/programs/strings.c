/* Hand-written memcpy/memset/memcmp with byte accesses at every alignment, and string reversal. */
#include "opml.h"
static u8 src[300], dst[300];
static void copy(u8 *d, const u8 *s, u32 n) { while (n--) *d++ = *s++; }
static void fill(u8 *d, u8 v, u32 n) { while (n--) *d++ = v; }
static int compare(const u8 *a, const u8 *b, u32 n) { for (; n; n--, a++, b++) if (*a != *b) return *a - *b; return 0; }
int main(void) {
    for (u32 i = 0; i < sizeof src; i++) src[i] = (u8)(i * 13 + 5);
    u32 errors = 0;
    for (u32 off = 0; off < 8; off++) {
        fill(dst, 0xaa, sizeof dst);
        copy(dst + off, src + (7 - off), 200);
        errors += compare(dst + off, src + (7 - off), 200) != 0;
        errors += dst[off + 200] != 0xaa;
    }
    char text[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    u32 n = (u32)str_len(text);
    for (u32 i = 0; i < n / 2; i++) { char t = text[i]; text[i] = text[n - 1 - i]; text[n - 1 - i] = t; }
    print(text); print("\nerrors: "); print_u32(errors); print("\n");
    return (int)errors;
}
