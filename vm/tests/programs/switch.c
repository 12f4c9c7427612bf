/* A byte-code interpreter: a dense switch (jump table), halfword and byte memory traffic, stderr. */
#include "opml.h"
enum { PUSH, ADD, SUB, MUL, DUP, SWAP, JNZ, DEC, PRINT, HALT };
static const u16 code[] = {PUSH, 10, PUSH, 1, SWAP, DUP, JNZ, 9, HALT, SWAP, PUSH, 3, MUL, SWAP, DEC, DUP, JNZ, 9, SWAP, PRINT, HALT};
int main(void) {
    i32 stack[64]; int sp = 0; u32 pc = 0; u32 steps = 0;
    for (;;) {
        steps++;
        switch (code[pc++]) {
        case PUSH: stack[sp++] = (i32)code[pc++]; break;
        case ADD: sp--; stack[sp - 1] += stack[sp]; break;
        case SUB: sp--; stack[sp - 1] -= stack[sp]; break;
        case MUL: sp--; stack[sp - 1] *= stack[sp]; break;
        case DUP: stack[sp] = stack[sp - 1]; sp++; break;
        case SWAP: { i32 t = stack[sp - 1]; stack[sp - 1] = stack[sp - 2]; stack[sp - 2] = t; } break;
        case JNZ: { u32 target = code[pc++]; if (stack[--sp]) pc = target; } break;
        case DEC: stack[sp - 1]--; break;
        case PRINT: print("3^10 = "); print_i32(stack[sp - 1]); print("\n"); break;
        case HALT: print_to(2, "halted after "); sys_write(2, "many steps\n", 11); return (int)(steps & 0xff);
        default: print_to(2, "bad opcode\n"); return 99;
        }
    }
}
