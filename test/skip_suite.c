/*
 * skip_suite.c -- the stand-in for a suite whose subsystem the library was
 * configured without: it says so and exits 77, which the test harness
 * reports as SKIP.
 */
#include <stdio.h>

int main(void)
{
    printf("%s: skipped: %s\n", SKIP_SUITE, SKIP_WHY);
    return 77;
}
