/* CRC-32 (table-driven) over initialized data and a large zero-initialized buffer. */
#include "opml.h"
static u32 table[256];
static u8 buffer[1 << 16];
static const char message[] = "The quick brown fox jumps over the lazy dog";
static u32 crc32(const u8 *p, u32 n) {
    u32 c = 0xffffffffu;
    while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}
int main(void) {
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    u32 m = crc32((const u8 *)message, sizeof message - 1);
    print("crc32(fox) = "); print_hex(m); print(m == 0x414fa339u ? " ok\n" : " WRONG\n");
    for (u32 i = 0; i < sizeof buffer; i++) buffer[i] = (u8)(i * 7 + (i >> 8));
    print("crc32(buffer) = "); print_hex(crc32(buffer, sizeof buffer)); print("\n");
    return m == 0x414fa339u ? 0 : 1;
}
