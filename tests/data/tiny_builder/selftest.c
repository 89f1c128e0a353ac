/* A builder image's entry point that only answers the builder contract's self-test: it says it
 * builds for x86-tflm, or (with SELFTEST_BROKEN set in the image) that its toolchain is broken.
 * Static, so the image is FROM scratch and a `docker save` archive of it is small. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--self-test") != 0) {
        fputs("this test image only runs its self-test\n", stderr);
        return 2;
    }
    const char *broken = getenv("SELFTEST_BROKEN");
    if (broken && *broken) {
        puts("checking the cross compiler: cc1 not found");
        return 1;
    }
    puts("checking the cross compiler: ok");
    puts("@selftest {\"boards\": [\"x86-tflm\"], \"toolchain\": \"tiny 1.0\"}");
    return 0;
}
