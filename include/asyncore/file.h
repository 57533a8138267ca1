/*
 * asyncore/file.h -- file_dispatcher: a dispatcher over a pipe, tty or file.
 *
 * The dispatcher works on a duplicate of the descriptor it is given (as
 * asyncore's file_wrapper does), so the caller may close its own.
 * asyncore_recv() and asyncore_send() use read(2) and write(2).  The
 * descriptor is set non-blocking, which affects the caller's descriptor
 * too since they share the open file description.
 *
 * A write to a pipe whose reader is gone raises no SIGPIPE: over a socket
 * it is a send(MSG_NOSIGNAL); over anything else SIGPIPE is blocked in the
 * calling thread around the write(2), and one that the write made pending
 * is consumed before the mask is restored (one pending before is left
 * alone).  The send reports EPIPE as a lost connection (handle_close).
 * The process's signal dispositions are never changed.
 *
 * Regular files, block devices and devices without poll support (such as
 * /dev/null) cannot be watched by epoll; they are treated as always ready,
 * as select() and poll() report them, and are served only by
 * asyncore_loop() (not by a base the caller runs itself).
 */
#ifndef ASYNCORE_FILE_H
#define ASYNCORE_FILE_H

#include <asyncore/dispatcher.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create a file_dispatcher over a duplicate of @fd; it is connected at once.
 * Errors: EINVAL (@handlers NULL or @fd < 0), EBADF (@fd not open),
 * EMFILE (no duplicate could be made, or -- except for a regular file,
 * which is never polled -- the duplicate is FD_SETSIZE or above on a map
 * over libevent's select backend), ENOMEM, ECANCELED (a
 * readable()/writable() hook closed the new dispatcher when first asked;
 * its destroy hook has run).
 */
ASYNCORE_API asyncore_dispatcher *
asyncore_file_dispatcher_new(asyncore_map *map, const asyncore_handlers *handlers,
                             void *user_data, int fd);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_FILE_H */
