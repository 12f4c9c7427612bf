#include "opml.h"
int main(void) {
    print("hello from rv32im\n");
    return 0;
}
