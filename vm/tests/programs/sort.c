/* Quicksort through a comparison function pointer (jalr), on signed and unsigned keys. */
#include "opml.h"
#define N 3000
static i32 data[N];
typedef int (*cmp_fn)(i32, i32);
static int asc(i32 a, i32 b) { return a < b ? -1 : a > b; }
static int desc_unsigned(i32 a, i32 b) { return (u32)a > (u32)b ? -1 : (u32)a < (u32)b; }
static void quicksort(i32 *v, int lo, int hi, cmp_fn cmp) {
    while (lo < hi) {
        i32 pivot = v[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cmp(v[i], pivot) < 0) i++;
            while (cmp(v[j], pivot) > 0) j--;
            if (i <= j) { i32 t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { quicksort(v, lo, j, cmp); lo = i; } else { quicksort(v, i, hi, cmp); hi = j; }
    }
}
static u32 check(cmp_fn cmp) {
    u32 bad = 0, sum = 0;
    for (int k = 1; k < N; k++) { bad += cmp(data[k - 1], data[k]) > 0; sum = sum * 31 + (u32)data[k]; }
    print("out of order: "); print_u32(bad); print(", checksum "); print_hex(sum); print("\n");
    return bad;
}
int main(void) {
    u32 x = 12345;
    for (int k = 0; k < N; k++) { x = x * 1103515245u + 12345u; data[k] = (i32)x; }
    cmp_fn fns[2] = {asc, desc_unsigned};
    u32 bad = 0;
    for (int f = 0; f < 2; f++) { quicksort(data, 0, N - 1, fns[f]); bad += check(fns[f]); }
    return (int)bad + 7;
}
