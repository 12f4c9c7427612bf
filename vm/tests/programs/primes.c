/* Sieve of Eratosthenes and recursive Fibonacci: loops, byte stores, recursion on the stack. */
#include "opml.h"
#define N 20000
static u8 composite[N];
static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(void) {
    u32 count = 0, last = 0;
    for (u32 i = 2; i < N; i++) {
        if (composite[i]) continue;
        count++;
        last = i;
        for (u32 j = i * i; j < N; j += i) composite[j] = 1;
    }
    print("primes below "); print_u32(N); print(": "); print_u32(count);
    print(", largest "); print_u32(last); print("\n");
    for (u32 k = 0; k <= 20; k += 5) { print("fib("); print_u32(k); print(") = "); print_u32(fib(k)); print("\n"); }
    return (int)(count % 256);
}
