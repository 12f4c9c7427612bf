/* int8 × int8 → int32 matrix multiply, the inner loop of every quantized layer: the benchmark. */
#include "opml.h"
#ifndef REPS
#define REPS 400
#endif
#define N 64
static i8 a[N][N], b[N][N];
static i32 c[N][N];
int main(void) {
    u32 x = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            x = x * 1664525u + 1013904223u; a[i][j] = (i8)(x >> 24);
            x = x * 1664525u + 1013904223u; b[i][j] = (i8)(x >> 24);
        }
    u32 check = 0;
    for (int r = 0; r < REPS; r++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                i32 acc = r;
                for (int k = 0; k < N; k++) acc += (i32)a[i][k] * (i32)b[k][j];
                c[i][j] = acc;
            }
        for (int i = 0; i < N; i++) check = check * 31 + (u32)c[i][(i + r) % N];
    }
    print("matmul "); print_u32(N); print("x"); print_u32(N); print(" x "); print_u32(REPS);
    print(" checksum "); print_hex(check); print("\n");
    return (int)(check & 0x7f);
}
