/* The few system calls and print helpers the freestanding test programs use (no libc). */
#ifndef OPML_H
#define OPML_H

typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;

static inline long sys_write(int fd, const void *buf, unsigned long len) {
    register long a0 __asm__("a0") = fd;
    register long a1 __asm__("a1") = (long)buf;
    register long a2 __asm__("a2") = len;
    register long a7 __asm__("a7") = 64;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}

static inline void sys_exit(int code) {
    register long a0 __asm__("a0") = code;
    register long a7 __asm__("a7") = 93;
    __asm__ volatile("ecall" : : "r"(a0), "r"(a7) : "memory");
    for (;;) {}
}

static inline unsigned long str_len(const char *s) {
    unsigned long n = 0;
    while (s[n]) n++;
    return n;
}

static inline void print_to(int fd, const char *s) { sys_write(fd, s, str_len(s)); }
static inline void print(const char *s) { print_to(1, s); }

static inline void print_u64(u64 v) {
    char buf[24];
    int i = 23;
    buf[i] = 0;
    do { buf[--i] = '0' + (char)(v % 10); v /= 10; } while (v);
    print(buf + i);
}

static inline void print_u32(u32 v) { print_u64(v); }

static inline void print_i32(i32 v) {
    if (v < 0) { print("-"); print_u64((u64)(-(i64)v)); } else print_u64((u64)v);
}

static inline void print_hex(u32 v) {
    char buf[11] = "0x";
    for (int k = 0; k < 8; k++) buf[2 + k] = "0123456789abcdef"[(v >> (28 - 4 * k)) & 15];
    buf[10] = 0;
    print(buf);
}

#endif
