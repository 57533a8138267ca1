#!/bin/sh
# Run one test program under valgrind memcheck (LOG_COMPILER of
# "make check-valgrind").  Check must not fork under valgrind, and without
# forking it has no per-test timeouts, so the whole run is bounded here.
: "${VALGRIND_LIBTOOL:=./libtool}"
CK_FORK=no
export CK_FORK
exec timeout 900 "$VALGRIND_LIBTOOL" --mode=execute valgrind -q \
    --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible \
    --error-exitcode=99 --track-fds=yes "$@"
