/* Edge cases of every ALU and M-extension operation, on values the compiler cannot fold. */
#include "opml.h"
static volatile i32 vals[] = {0, 1, -1, 2, -2, 7, -7, 0x7fffffff, (i32)0x80000000, 0x12345678, (i32)0xdeadbeef};
#define NV (sizeof(vals) / sizeof(vals[0]))
static u32 h = 2166136261u;
static void mix(u32 v) { h = (h ^ v) * 16777619u; }
int main(void) {
    for (u32 i = 0; i < NV; i++) {
        for (u32 j = 0; j < NV; j++) {
            i32 a = vals[i], b = vals[j];
            u32 ua = (u32)a, ub = (u32)b;
            mix(ua + ub); mix(ua - ub); mix(ua * ub);
            mix((u32)(((i64)a * (i64)b) >> 32));          /* mulh */
            mix((u32)(((u64)ua * (u64)ub) >> 32));        /* mulhu */
            mix((u32)(((i64)a * (i64)(u64)ub) >> 32));    /* mulhsu */
            mix(ub ? ua / ub : 0xffffffffu); mix(ub ? ua % ub : ua);
            mix((b == 0) ? 0xffffffffu : (a == (i32)0x80000000 && b == -1) ? (u32)a : (u32)(a / b));
            mix((b == 0) ? ua : (a == (i32)0x80000000 && b == -1) ? 0 : (u32)(a % b));
            mix(ua << (ub & 31)); mix(ua >> (ub & 31)); mix((u32)(a >> (ub & 31)));
            mix(a < b); mix(ua < ub); mix(ua ^ ub); mix(ua | ub); mix(ua & ub);
        }
    }
    /* The M instructions themselves, through inline asm, with division by zero and overflow. */
    for (u32 i = 0; i < NV; i++) {
        for (u32 j = 0; j < NV; j++) {
            u32 a = (u32)vals[i], b = (u32)vals[j], r;
            __asm__("div %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("divu %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("rem %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("remu %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("mulh %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("mulhsu %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("mulhu %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
            __asm__("sra %0,%1,%2" : "=r"(r) : "r"(a), "r"(b)); mix(r);
        }
    }
    /* Sign extension of loads. */
    static volatile u8 bytes[8] = {0x80, 0x7f, 0xff, 0x00, 0x00, 0x80, 0xff, 0x7f};
    mix((u32)(i32)(i8)bytes[0]); mix((u32)(i32)(i8)bytes[1]); mix(bytes[2]);
    mix((u32)(i32)*(volatile i16 *)&bytes[4]); mix(*(volatile u16 *)&bytes[4]);
    mix((u32)(i32)*(volatile i16 *)&bytes[6]); mix(*(volatile u32 *)&bytes[4]);
    print("arith hash "); print_hex(h); print("\n");
    i32 m = (i32)0x80000000;
    print("INT_MIN / -1 = "); print_i32(m / vals[2] ); print("\n");
    return (int)(h & 0x7f);
}
