/* exec_timed PROGRAM ARGS...: run PROGRAM with GAME_EXEC_MONOTONIC_NS set to the
 * CLOCK_MONOTONIC time just before its execve, so that the game can time its start-up
 * (the dynamic linker, the libraries' constructors, main) to the microsecond instead of
 * at the kernel's clock-tick resolution of /proc/self/stat. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: exec_timed PROGRAM [ARGS...]\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char value[32];
    snprintf(value, sizeof value, "%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    setenv("GAME_EXEC_MONOTONIC_NS", value, 1);
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
