/* One instruction at a time through inline asm, on the encodings the compiler rarely emits on its
 * own: immediate edge cases, all six branches on signed/unsigned boundaries, jalr with an odd
 * target and rd == rs1, loads and stores at every offset, register shift amounts above 31,
 * writes to x0, fences, the write ecall's return values and exit_group. Each result is printed. */
#include "opml.h"

static void show(const char *name, u32 v) { print(name); print(" "); print_hex(v); print("\n"); }

#define R1(insn, a) ({ u32 _r; __asm__ volatile(insn " %0, %1" : "=r"(_r) : "r"(a)); _r; })
#define R2(insn, a, b) ({ u32 _r; __asm__ volatile(insn " %0, %1, %2" : "=r"(_r) : "r"(a), "r"(b)); _r; })
#define RI(insn, a, imm) ({ u32 _r; __asm__ volatile(insn " %0, %1, " #imm : "=r"(_r) : "r"(a)); _r; })

static volatile u32 vals[] = {0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffff800, 0x7ff, 0x800};
#define NV (sizeof(vals) / sizeof(vals[0]))

#define BR(op, bit) __asm__ volatile(op " %1, %2, 1f\n\tj 2f\n1:\tori %0, %0, " #bit "\n2:" : "+r"(m) : "r"(a), "r"(b))
static u32 branches(u32 a, u32 b) {
    u32 m = 0;
    BR("beq", 1); BR("bne", 2); BR("blt", 4); BR("bge", 8); BR("bltu", 16); BR("bgeu", 32);
    return m;
}

static u8 mem[16] __attribute__((aligned(16))) = {0x80, 0x01, 0xff, 0x7f, 0x00, 0x80, 0x34, 0x12,
                                                    0xef, 0xbe, 0xad, 0xde, 0x01, 0x00, 0x00, 0x80};

int main(void) {
    u32 x;
    /* lui / auipc */
    __asm__ volatile("lui %0, 0xfffff" : "=r"(x)); show("lui 0xfffff", x);
    __asm__ volatile("lui %0, 0x80000" : "=r"(x)); show("lui 0x80000", x);
    {
        u32 a, b, l;
        __asm__ volatile("1: auipc %0, 0x1\n\tauipc %1, 0xfffff\n\tla %2, 1b" : "=r"(a), "=r"(b), "=r"(l));
        show("auipc +0x1000", a - l); show("auipc -0x1000 (+4)", b - l);
    }
    /* OP-IMM with sign-extended immediates */
    for (u32 i = 0; i < NV; i++) {
        u32 v = vals[i];
        print("v="); print_hex(v); print(":");
        u32 r[] = {RI("addi", v, -2048), RI("addi", v, 2047), RI("slti", v, -1), RI("slti", v, 0),
                   RI("sltiu", v, -1), RI("sltiu", v, 1), RI("xori", v, -1), RI("ori", v, -2048),
                   RI("andi", v, -2048), RI("andi", v, 2047), RI("slli", v, 0), RI("slli", v, 31),
                   RI("srli", v, 0), RI("srli", v, 31), RI("srai", v, 0), RI("srai", v, 31),
                   RI("srai", v, 1), R1("neg", v), R1("seqz", v), R1("snez", v)};
        for (u32 k = 0; k < sizeof r / sizeof r[0]; k++) { print(" "); print_hex(r[k]); }
        print("\n");
    }
    /* register-register on every pair: branches, compares, shifts with amounts >= 32 */
    u32 h = 0;
    for (u32 i = 0; i < NV; i++) {
        print("branches "); print_hex(vals[i]); print(":");
        for (u32 j = 0; j < NV; j++) {
            u32 a = vals[i], b = vals[j];
            print(" "); print_u32(branches(a, b));
            u32 r[] = {R2("slt", a, b), R2("sltu", a, b), R2("sll", a, b), R2("srl", a, b), R2("sra", a, b),
                       R2("sub", a, b), R2("mul", a, b), R2("mulh", a, b), R2("mulhsu", a, b),
                       R2("mulhu", a, b), R2("div", a, b), R2("divu", a, b), R2("rem", a, b),
                       R2("remu", a, b)};
            for (u32 k = 0; k < sizeof r / sizeof r[0]; k++) h = (h ^ r[k]) * 16777619u + k;
        }
        print("\n");
    }
    show("rr hash", h);
    {
        u32 s[] = {32, 33, 63, 0xffffffff, 0x80000000, 0x80000001};
        for (u32 k = 0; k < 6; k++) {
            print("shift by "); print_hex(s[k]); print(":");
            print(" "); print_hex(R2("sll", 0x80000001u, s[k]));
            print(" "); print_hex(R2("srl", 0x80000001u, s[k]));
            print(" "); print_hex(R2("sra", 0x80000001u, s[k]));
            print("\n");
        }
    }
    /* jalr: odd target (bit 0 cleared), rd == rs1 (rs1 read first), negative offset */
    {
        u32 link, expect;
        __asm__ volatile("la %0, 1f + 1\n\t"
                         "jalr %0, 0(%0)\n"
                         "2:\tli %1, 0\n\t"      /* skipped */
                         "j 3f\n"
                         "1:\tla %1, 2b\n"
                         "3:"
                         : "=&r"(link), "=&r"(expect));
        show("jalr odd target, rd==rs1: link - expected", link - expect);
        __asm__ volatile("la %0, 1f + 8\n\t"
                         "jalr %1, -8(%0)\n"
                         "2:\tli %0, 0x123\n"
                         "1:\tla %0, 2b\n\t"
                         "sub %0, %1, %0"
                         : "=&r"(x), "=&r"(link));
        show("jalr negative offset: link - expected", x);
        __asm__ volatile("jal %0, 1f\n1:\tla %1, 1b\n\tsub %0, %0, %1" : "=&r"(x), "=&r"(expect));
        show("jal link - next", x);
    }
    /* loads at every offset, with negative immediates from the end of the buffer */
    {
        u8 *end = mem + 16;
        u32 r[16];
#define LD(insn, off) ({ u32 _r; __asm__ volatile(insn " %0, " #off "(%1)" : "=r"(_r) : "r"(end)); _r; })
        r[0] = LD("lb", -16); r[1] = LD("lb", -15); r[2] = LD("lb", -14); r[3] = LD("lb", -13);
        r[4] = LD("lbu", -16); r[5] = LD("lbu", -14); r[6] = LD("lbu", -13); r[7] = LD("lh", -16);
        r[8] = LD("lh", -14); r[9] = LD("lh", -12); r[10] = LD("lhu", -12); r[11] = LD("lhu", -10);
        r[12] = LD("lw", -16); r[13] = LD("lw", -8); r[14] = LD("lw", -4); r[15] = LD("lh", -2);
        print("loads:");
        for (u32 k = 0; k < 16; k++) { print(" "); print_hex(r[k]); }
        print("\n");
        __asm__ volatile("lw x0, -16(%0)\n\tlb x0, -15(%0)" : : "r"(end));   /* loads into x0 */
        __asm__ volatile("addi x0, x0, 5\n\tlui x0, 1\n\tmv %0, x0" : "=r"(x)); show("x0 after writes", x);
    }
    /* stores at every offset */
    {
        static volatile u32 words[4];
        for (u32 off = 0; off < 4; off++) {
            words[0] = words[1] = 0xa5a5a5a5u;
            __asm__ volatile("sb %1, 0(%0)" : : "r"((u8 *)words + off), "r"(0x123456f1u) : "memory");
            __asm__ volatile("sh %1, 0(%0)" : : "r"((u8 *)words + 4 + (off & 2)), "r"(0xfedc8001u) : "memory");
            print("stores at "); print_u32(off); print(": "); print_hex(words[0]); print(" "); print_hex(words[1]); print("\n");
        }
        __asm__ volatile("sw %1, -4(%0)" : : "r"((u8 *)words + 16), "r"(0xcafef00du) : "memory");
        show("sw negative offset", words[3]);
    }
    /* fences are no-ops */
    __asm__ volatile("fence\n\tfence rw, rw\n\tfence w, r\n\t.word 0x0000100f" ::: "memory");
    /* the write ecall: return values */
    {
        long n0 = sys_write(1, "", 0), nbad = sys_write(-1, "x", 1), n2 = sys_write(2, "to stderr\n", 10);
        print("write returns "); print_i32(n0); print(" "); print_i32(nbad); print(" "); print_i32(n2); print("\n");
    }
    /* exit_group */
    register long a0 __asm__("a0") = 77;
    register long a7 __asm__("a7") = 94;
    __asm__ volatile("ecall" : : "r"(a0), "r"(a7));
    return 1;
}
