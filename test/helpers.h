/*
 * helpers.h -- shared fixtures of the Check suites.
 *
 * Every test gets a fresh map (th_map) from th_setup() and th_teardown()
 * frees it and asserts that the process has exactly the descriptors it had
 * before the test: an fd leak fails the test that caused it.
 */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <sys/socket.h>

#include "asyncore.h"

extern asyncore_map *th_map;

/* Check fixtures (tcase_add_checked_fixture). */
void th_setup(void);
void th_teardown(void);

/* Number of open descriptors of this process (/proc/self/fd). */
int th_fd_count(void);

/* True if the host has a working ::1. */
int th_has_ipv6(void);

/* A loopback address of @family with port 0 (AF_INET, AF_INET6) or a fresh
 * path under the temporary directory (AF_UNIX, removed by th_teardown). */
socklen_t th_loopback(int family, struct sockaddr_storage *ss);

/* The address a socket is bound to. */
socklen_t th_sockname(int fd, struct sockaddr_storage *ss);

/* A plain listening socket (blocking) on loopback of @family; its address
 * is stored in @ss.  For peers we did not write through the library. */
int th_raw_listener(int family, struct sockaddr_storage *ss, socklen_t *len);

/* A plain blocking client socket connected to @ss. */
int th_raw_connect(const struct sockaddr_storage *ss, socklen_t len);

/* Accept on a raw listener, waiting at most @seconds; -1 on timeout. */
int th_raw_accept(int listener, double seconds);

/* A TCP socket bound to @ip:@port (numeric, IPv4 or IPv6) and not
 * listening: connecting to it is refused while it is open.  -1 if the
 * address is taken. */
int th_refuser(const char *ip, unsigned port);

/* Run asyncore_poll(th_map, 0.01) until *@flag is non-zero or @seconds
 * passed (or the map is empty).  Returns *@flag. */
int th_loop_until(asyncore_map *map, const int *flag, double seconds);

/* Run the map's loop for about @seconds, whatever happens. */
void th_loop_for(asyncore_map *map, double seconds);

/* A listening dispatcher on loopback of @family with the given handlers;
 * its address is stored in @ss/@len. */
asyncore_dispatcher *th_listener(asyncore_map *map, int family,
                                 const asyncore_handlers *h, void *user,
                                 struct sockaddr_storage *ss, socklen_t *len);

/* Log capture: install on a map to record lines "TYPE: MSG". */
void th_log_capture(asyncore_map *map);
/* How many captured lines contain @needle. */
int th_log_count(const char *needle);
/* All captured lines, newline-separated. */
const char *th_log_text(void);
void th_log_reset(void);

/* Seconds on a monotonic clock. */
double th_now(void);

/* Families to run a loopback scenario over: AF_INET, AF_INET6, AF_UNIX.
 * Use with tcase_add_loop_test(tc, fn, 0, TH_NFAMILIES) and th_family(_i);
 * th_skip_family() is true (and the test should return) where the host
 * lacks the family. */
#define TH_NFAMILIES 3
int th_family(int i);
int th_skip_family(int family);

/* A base of libevent's backend @method ("epoll", "poll", "select"),
 * whatever EVENT_NO* says; the caller frees it. */
struct event_base;
struct event_base *th_base_with_method(const char *method);

/* Build and run a suite; returns the process exit status. */
int th_run_suite(Suite *s);

#endif /* TEST_HELPERS_H */
